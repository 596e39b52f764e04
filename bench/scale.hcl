# socketbench scale (bench/README.md, "Scale"): one instance, idle
# WebSocket connections, numbered broadcasts to all of them through the
# backend API, and room churn ("join"/"leave" of args[0]). The heartbeat
# is the default (25 s), so CPU at rest includes it.
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
