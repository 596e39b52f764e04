# The example plugin wired into a server, every path relative to this
# file's folder. From here:
#
#   go build -o auth-apikey .
#   socket-server validate --config config.hcl
#   socket-server run --config config.hcl
server {
  listen = env("LISTEN_ADDR", "127.0.0.1:8081")
}

auth "apikey" {
  command   = "./auth-apikey" # the binary built above
  keys_file = "keys.txt"
}

namespace "/" {
  on_connect {
    emit "me" { args = [user] }
  }
}
