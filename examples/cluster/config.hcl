# One config for every instance of the local cluster: what differs between
# instances comes from the environment (run.sh sets it).
server {
  listen      = env("LISTEN_ADDR", "127.0.0.1:8081")
  instance_id = env("INSTANCE_ID", "")
  plugin_dir  = env("PLUGIN_DIR", "bin/plugins")
  log_format  = "text"

  cors {
    allowed_origins = ["*"]
  }

  # Backend HTTP API on the same port, under /api/v1/.
  api {
    token = env("API_TOKEN")
  }
}

adapter "redis" {
  url = env("REDIS_URL", "redis://127.0.0.1:6379")
  key = env("REDIS_PREFIX", "socket.io")
}

namespace "/" {
  event "join" {
    join {
      room = try(args[0].room, args[0])
    }
  }

  event "leave" {
    leave {
      room = try(args[0].room, args[0])
    }
  }

  event "chat:message" {
    broadcast {
      to = args[0].room
    }
  }
}
