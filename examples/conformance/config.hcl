# Profile for the public Socket.IO / Engine.IO conformance test suites.
# See /config.hcl at the repository root for every block and attribute.

server {
  listen          = env("LISTEN_ADDR", ":3000")
  path            = "/socket.io/"
  transports      = ["polling", "websocket"]
  ping_interval   = "300ms"
  ping_timeout    = "200ms"
  connect_timeout = "1s"
  max_payload     = 1000000

  # The Engine.IO suite talks to a raw Engine.IO echo server at this path.
  engineio_echo = "/engine.io/"

  cors {
    allowed_origins = ["*"]
  }
}

namespace "/" {
  # The suite expects the CONNECT payload back as an "auth" event.
  on_connect {
    emit "auth" {
      args = [auth]
    }
  }

  # "message" is echoed to the sender as "message-back", arguments unchanged.
  event "message" {
    reply {
      event = "message-back"
    }
  }

  # "message-with-ack" acknowledges with the received arguments.
  event "message-with-ack" {
    ack = args
  }
}

namespace "/custom" {
  on_connect {
    emit "auth" {
      args = [auth]
    }
  }
}
