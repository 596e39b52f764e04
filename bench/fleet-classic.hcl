# `socketbench fleet -config bench/fleet-classic.hcl` (bench/README.md,
# "Fleet changes"): the contrast run. Redis pub/sub ("classic") and no
# recovery block, so a client that reconnects gets a fresh session and
# whatever was published meanwhile is lost. socketbench fleet sets
# LISTEN_ADDR, INSTANCE_ID, REDIS_URL, API_TOKEN and PLUGIN_DIR.
server {
  listen                 = env("LISTEN_ADDR", "127.0.0.1:8081")
  plugin_dir             = env("PLUGIN_DIR", "bin/plugins")
  log_level              = "info"
  memory_report_interval = "0s"
  # A rolling restart should not take minutes: the drain paces its closes
  # over at most this (10 ms per connection below it).
  drain {
    timeout = "5s"
  }
  api {
    token = env("API_TOKEN")
  }
}

namespace "/" {
  event "join" {
    join {
      room = args[0]
    }
  }
}

adapter "redis" {
  url = env("REDIS_URL", "redis://127.0.0.1:6379")
}
