# bench/soak.hcl as the server before issue 13 (b7b0e7e) takes it: no
# limits block, no recovery, the classic adapter. For the contrast run only.
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
  api {
    token = env("API_TOKEN")
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
  url  = env("REDIS_URL", "redis://127.0.0.1:6379")
  key  = env("REDIS_PREFIX", "socket.io")
}

metrics "prometheus" {
  environment = ""
}
