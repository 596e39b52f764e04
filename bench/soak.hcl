# `make soak` (bench/README.md, "Soak"): one of two instances on one Redis,
# each with its own LISTEN_ADDR. socketbench soak writes API_TOKEN (for
# /health's plugin pids), REDIS_URL and PLUGIN_DIR into the environment.
# The limits are tighter than the defaults so that each hostile client is
# cut within seconds; the publisher (a few messages a second) and the
# subscribers stay far below packet_rate.
server {
  listen                 = env("LISTEN_ADDR", "127.0.0.1:8081")
  plugin_dir             = env("PLUGIN_DIR", "bin/plugins")
  log_level              = "warn"
  memory_report_interval = "0s"
  cors {
    allowed_origins = ["*"]
  }
  limits {
    packet_rate  = 100
    packet_burst = 200
    max_rooms    = 20
    body_timeout = "2s"
    idle_timeout = "5s"
  }
  api {
    token = env("API_TOKEN")
  }
  # Streams mode with recovery: a killed adapter plugin reads on from the
  # last offset its instance delivered, so a plugin kill loses nothing.
  recovery {}
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
  url  = env("REDIS_URL", "redis://127.0.0.1:6379")
  key  = env("REDIS_PREFIX", "socket.io")
  mode = "streams"
}

metrics "prometheus" {
  environment = ""
}
