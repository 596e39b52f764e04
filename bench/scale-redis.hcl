# bench/scale.hcl plus the Redis adapter: socketbench scale's fleet of
# three instances on one Redis (bench/README.md, "Scale"); a broadcast
# through one instance's backend API reaches the connections of all.
server {
  listen                 = env("LISTEN_ADDR", "127.0.0.1:8081")
  plugin_dir             = env("PLUGIN_DIR", "bin/plugins")
  log_level              = "warn"
  memory_report_interval = "0s"
  ping_interval          = "25s"
  ping_timeout           = "20s"
  api {
    token = env("API_TOKEN")
  }
  # The generator connects from a handful of loopback addresses:
  # loopback is exempt from the per-address limits by default.
}

namespace "/" {
  event "join" {
    join {
      room = args[0]
    }
  }
  event "leave" {
    leave {
      room = args[0]
    }
  }
}

adapter "redis" {
  url = env("REDIS_URL", "redis://127.0.0.1:6379")
  key = env("REDIS_PREFIX", "socket.io")
}
