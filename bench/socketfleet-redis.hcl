# bench/socketfleet.hcl plus the Redis adapter plugin, for the cluster
# scenario: run two instances with their own LISTEN_ADDR on one REDIS_URL;
# a publish on one reaches the room's members on both. The Node reference
# uses @socket.io/redis-adapter with the same key.
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

adapter "redis" {
  url = env("REDIS_URL", "redis://127.0.0.1:6379")
  key = env("REDIS_PREFIX", "socket.io")
}
