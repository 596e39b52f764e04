# socketfleet's side of the benchmark contract (bench/README.md); the Node
# reference server (bench/node/server.js) implements the same events.
#
#   join     args[0] is a room name or {room}: join it; ack {ok: true}
#   publish  args[0].room: the received arguments, unchanged, go to everyone
#            in that room as "publish" (the sender need not be a member)
#
# This variant (bench/tls.sh): the same over TLS, the key pair named by
# TLS_CERT and TLS_KEY.
server {
  listen                 = env("LISTEN_ADDR", "127.0.0.1:8081")
  plugin_dir             = env("PLUGIN_DIR", "bin/plugins")
  log_level              = "warn"
  memory_report_interval = "0s"
  # The defaults, written out because the Node server uses the same.
  ping_interval = "25s"
  ping_timeout  = "20s"
  max_payload   = "1MB"
  cors {
    allowed_origins = ["*"]
  }
  # socketbench's --rate 0 runs (cluster-max, fanout at full speed) send as
  # fast as deliveries allow, thousands a second on one connection: the
  # per-connection packet limit (100/s by default) would cut them, and the
  # Node reference has none.
  limits {
    packet_rate = 0
  }
  tls {
    cert_file = env("TLS_CERT")
    key_file  = env("TLS_KEY")
  }
}

namespace "/" {
  event "join" {
    join {
      room = try(args[0].room, args[0])
    }
  }

  event "publish" {
    broadcast {
      to             = args[0].room
      require_member = false
    }
  }
}
