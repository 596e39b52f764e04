# `socketbench fleet -instances 1 -config bench/fleet-single.hcl -change
# nginx-restart` (bench/README.md, "Fleet changes"): connection state
# recovery on one instance, no adapter: sessions and the replay buffer in
# its memory. Every client's connection drops (nginx restarts), the
# instance stays, and every client should come back recovered.
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
