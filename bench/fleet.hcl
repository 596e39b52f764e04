# `socketbench fleet` (bench/README.md, "Fleet changes"): connection state
# recovery across instances. The Redis adapter in streams mode keeps
# broadcasts in a Redis stream and sessions in Redis, so a client that
# reconnects to any instance within max_disconnection gets its session
# back (same sid, rooms) and the packets it missed. socketbench fleet sets
# LISTEN_ADDR, INSTANCE_ID, REDIS_URL, API_TOKEN and PLUGIN_DIR.
server {
  listen                 = env("LISTEN_ADDR", "127.0.0.1:8081")
  plugin_dir             = env("PLUGIN_DIR", "bin/plugins")
  log_level              = "info"
  memory_report_interval = "0s"
  drain {
    timeout = "5s"
  }
  recovery {
    max_disconnection = "2m"
    skip_auth         = true
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
  url  = env("REDIS_URL", "redis://127.0.0.1:6379")
  mode = "streams"
}
