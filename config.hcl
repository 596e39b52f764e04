# socketfleet server configuration (HCL v2) — the reference for every block
# and attribute. Validate with:  socket-server validate --config config.hcl
#
# Values are fixed when the file is loaded, except the attributes marked
# RUNTIME below, which are expressions evaluated for every event.
# `validate` checks their syntax and variable names, not the data they will
# meet: an expression that fails on an event's data (e.g. args[0].room when
# the client sent no room) refuses that event ({"ok": false, "error":
# "invalid event data"} to an ack), is logged at warn with its file:line (at
# most one line per rule per 10s, with the count of those left out) and is
# counted in socket_rule_errors_total{namespace,event,rule}. Use try(...) for
# data a client may leave out.
#
# Functions available everywhere:
#   env("NAME")            value of an environment variable; error if unset or empty
#   env("NAME", "default") ... or the default when unset or empty
#   try, can, lower, upper, format, join, split, replace, trimspace, substr,
#   concat, contains, length, coalesce, tostring, tonumber, tobool
#
# Durations are strings with a unit: "300ms", "25s", "1m30s".
# Sizes are a number of bytes (1000000) or a string with a unit:
#   "512B", "16KB" (=16000), "1MB" (=1000000), "1KiB" (=1024), "1MiB" (=1048576).
#
# Variables in RUNTIME expressions:
#   auth    - the client's CONNECT payload (an object, {} when it sent none),
#             chosen by the client: never a proof of identity (use user and
#             data). Fields the auth plugin or api.redact_auth drops
#             (secrets, e.g. auth-jwt's token) are absent here too.
#   query   - handshake query parameters (map of string)
#   headers - handshake request headers, lower-case names (map of string)
#   socket  - { id = "<socket id>", namespace = "/..." }
#   user    - the user id the auth plugin established ("" without auth)
#   data    - the object the auth plugin attached (e.g. JWT claims; {} without auth)
#   args    - the event's arguments, a list (event rules only); a binary
#             attachment appears as { _placeholder = true, num = N }
# In server_event blocks (server-side emits have no socket) only `args`,
# the emit's arguments, is available.

# The server block is optional; every attribute has the default shown.
server {
  # Address to listen on, "host:port". Default ":8081".
  listen = env("LISTEN_ADDR", ":8081")

  # Socket.IO endpoint path. Default "/socket.io/"; a trailing "/" is added.
  path = "/socket.io/"

  # Allowed transports: a non-empty subset of "polling" and "websocket".
  transports = ["polling", "websocket"]

  # Engine.IO heartbeat: the server pings every ping_interval and closes the
  # connection when no pong arrives within ping_timeout.
  ping_interval = "25s"
  ping_timeout  = "20s"

  # Time allowed to complete a polling -> websocket upgrade.
  upgrade_timeout = "10s"

  # Time a new Engine.IO session has to send its Socket.IO CONNECT packet.
  connect_timeout = "45s"

  # Default timeout for acknowledgements the server asks from clients.
  ack_timeout = "10s"

  # Largest accepted message (a whole polling payload or one WebSocket frame).
  max_payload = "1MB"

  # Binary attachments allowed in one packet.
  max_attachments = 10

  # Packets queued per connection; a client that falls further behind is
  # disconnected as a slow consumer.
  send_queue = 1024

  # Optional raw Engine.IO echo endpoint (for the Engine.IO test suite).
  # Omitted or "" = off.
  # engineio_echo = "/engine.io/"

  # Name of this instance (logs, instance cookie). Empty or omitted = the
  # INSTANCE_ID environment variable, else "instance-" + 8 random hex digits.
  instance_id = env("INSTANCE_ID", "")

  # Logging: level trace|debug|info|warn|error (the LOG_LEVEL environment
  # variable overrides it) and format "json" or "text".
  log_level  = "info"
  log_format = "json"

  # Where plugin binaries are looked up: <plugin_dir>/<kind>-<name>, e.g.
  # bin/plugins/auth-jwt for auth "jwt" (log_sink "x" -> logsink-x).
  plugin_dir = "bin/plugins"

  # A log line with rss, heap_total and heap_used every interval; "0s" = off.
  memory_report_interval = "60s"

  # Graceful shutdown. On SIGTERM/SIGINT the instance answers /ready with
  # 503 at once, refuses new handshakes, emits `event` with
  # {message, code} to every socket, then closes the connections at random
  # moments spread over `timeout` (at least 10 ms per connection, so a few
  # clients are not kept waiting) so that they reconnect elsewhere a few at
  # a time. What is left at the deadline is closed. A second signal exits
  # at once. Keep `timeout` below your orchestrator's termination grace
  # period (Kubernetes: terminationGracePeriodSeconds, default 30s).
  drain {
    timeout = "25s"
    event   = "server:maintenance"
    message = "Server maintenance, please reconnect"
    code    = "SERVER_DRAINING"
  }

  # Limits against hostile clients: what one client can make an instance
  # hold or do. Each hit is counted (socket_limits_hit_total{limit}, and
  # /health's limits_hit). The values shown are the defaults; the whole
  # block is optional.
  limits {
    # Packets per second per connection (a token bucket), and how many may
    # come at once. Over it the connection is closed ("rate limit
    # exceeded"). Browsers send a few per second; 0 turns the limit off.
    packet_rate  = 100
    packet_burst = 200
    # Rooms one socket may be in (its own id aside). A join past it is
    # refused whole (the ack says "too many rooms").
    max_rooms = 1000
    # A binary packet's attachments must all arrive within this, or the
    # connection is closed ("attachment timeout").
    attachment_timeout = "10s"
    # A polling POST body must arrive within this: 408, and the session is
    # closed (the client reconnects).
    body_timeout = "10s"
    # A request head (request line and headers) above this gets 431. At
    # least 4KiB.
    max_head_bytes = "16KiB"
    # What a session keeps of its handshake (URI and headers, for auth
    # plugins, event rules and /api/v1/sockets): over it the largest
    # headers are dropped whole; a URI alone above it gets 414.
    max_handshake_bytes = "8KiB"
    # A keep-alive HTTP connection with no request under way is closed
    # after this (a long-poll GET waiting for packets is under way).
    idle_timeout = "60s"

    # Per client address (an IPv4 address; an IPv6 address counts by its
    # /64, which one host usually holds): Engine.IO sessions open at once,
    # and new sessions (handshakes) per second with a burst (a token
    # bucket). Over either, the handshake (polling or WebSocket) gets 429
    # with Retry-After; open sessions are not touched, and a polling
    # session's upgrade to WebSocket is not a new handshake. 0 turns a
    # limit off. The defaults leave room for many users behind one NAT and
    # for a reconnect storm after a restart (clients back off and retry).
    max_connections_per_ip = 256
    handshake_rate_per_ip  = 20
    handshake_burst_per_ip = 200
    # Client addresses (CIDRs, or single addresses) no per-IP limit applies
    # to. By default loopback: the repository's tests and benchmarks open
    # 10,000 connections at thousands a second from 127.0.0.1, and a
    # sidecar or health check on the same host is not an attacker. So
    # behind a proxy on the same host, set trusted_proxy_header, or every
    # client behind it is exempt. [] limits loopback too.
    per_ip_exempt = ["127.0.0.0/8", "::1/128"]
    # Addresses the per-IP table holds at most (about 100 bytes each). An
    # address with no session and a full bucket is dropped (at its last
    # close, or by a sweep every 10 s, or at most once a second while the
    # table is full); when the table is still full, a handshake from an
    # address not in it gets 503 with Retry-After.
    max_tracked_ips = 100000
    # Behind a proxy every client has the proxy's address. Name the header
    # the proxy writes the client address into and the per-IP limits use
    # it: the right-most entry not in trusted_proxies (the usual rule: the
    # entries to its left are the client's to forge), or the left-most
    # when all are. The header is read only from a peer in trusted_proxies
    # (CIDRs); without trusted_proxies, from every peer, so then the
    # instance must be reachable only through the proxy. The header holds
    # a comma-separated list of addresses (X-Forwarded-For, X-Real-IP);
    # RFC 7239 "Forwarded" is not supported. Unset (the default), no
    # header is ever believed: the client is the TCP peer.
    # trusted_proxy_header = "X-Forwarded-For"
    # trusted_proxies      = ["10.0.0.0/8"]
  }

  # Connection state recovery, as Socket.IO's connectionStateRecovery:
  # the CONNECT reply carries a private session id, every broadcast an
  # offset (appended as the event's last argument), and a client whose
  # connection dropped comes back (socket.io-client does it by itself) with
  # its socket id, rooms and data, and is sent what it missed. On a single
  # instance sessions and recent broadcasts are kept in memory; with an
  # adapter, the adapter keeps them (adapter "redis" needs mode =
  # "streams"), connected sockets' sessions included, so the clients of an
  # instance that crashed recover on the others. Omit the block to turn it
  # off (no pid, no offsets, as in Node).
  recovery {
    max_disconnection = "2m"   # how long a disconnected socket stays recoverable
    skip_auth         = true   # a recovered socket skips the auth plugin (its identity is restored)
    # buffer_size    = "64MB"  # single instance: replay buffer per namespace; the oldest broadcasts
    # buffer_entries = 100000  # go first when full (counted), even if younger than max_disconnection
  }

  # Reload: SIGHUP, `socket-server reload --config FILE` (POST
  # /api/v1/reload) or, with watch, a change of this file's contents makes
  # the instance read it again and swap it in whole, without dropping a
  # socket; a file with an error, or changing what cannot change at run
  # time (listen, path, limits, recovery, adding an adapter, ...), is
  # refused and the running config goes on (README: Reloading the config).
  # reload {
  #   watch    = false  # reload when the file changes
  #   interval = "1s"   # how often it is looked at
  # }

  # Optional memory-based load shedding: above a threshold new handshakes
  # get HTTP 503 with Retry-After (and /ready says 503) while connected
  # sockets keep working. Thresholds are sizes ("2GB") or a percentage of
  # `limit` ("80%"); `limit` defaults to the cgroup memory limit, else the
  # machine's memory. Omit the block to never shed.
  # load_shedding {
  #   max_heap       = "80%"   # live Go heap (as the last collection found it; garbage does not count)
  #   max_rss        = "90%"   # resident memory of the process
  #   limit          = "4GB"
  #   check_interval = "1s"
  #   retry_after    = "10s"
  # }

  # Cross-origin requests (polling) and the WebSocket Origin check.
  cors {
    # Exact origins such as "https://chat.example.com", or "*" for any.
    # Empty = same-origin and non-browser clients only.
    allowed_origins = ["*"]
    # Allow credentialed (cookie) requests; only with exact origins (validate
    # refuses credentials = true with "*").
    credentials = false
  }

  # Optional: set the "io" cookie carrying the session id on the handshake.
  # Omit the block to send no cookie. Shown with its defaults.
  # session_cookie {
  #   name      = "io"
  #   path      = "/"
  #   http_only = true
  #   secure    = false
  #   same_site = "lax"     # "lax" | "strict" | "none" (needs secure = true)
  #   max_age   = "0s"      # "0s" = a session cookie
  # }

  # Optional: a cookie whose value is this instance's id, so a stock load
  # balancer can route a client back to the same instance. Same attributes
  # as session_cookie; default name "sf_instance".
  # instance_cookie {
  #   name = "sf_instance"
  # }

  # Optional: the HTTP API for backends (emit to rooms, fetch sockets, list
  # rooms, join/leave/disconnect sockets, server-side emit; cluster-wide
  # with an adapter that carries requests). Off when the block is omitted.
  # Served on this listener under /api/v1/; every call needs the header
  # "Authorization: Bearer <token>" (401 otherwise). See the README's
  # "Backend HTTP API" section for the endpoints.
  # api {
  #   # Required, at least 16 characters; keep it out of the file:
  #   # generate one with `openssl rand -hex 32` and set API_TOKEN.
  #   token = env("API_TOKEN")
  #
  #   # Top-level fields of each socket's CONNECT payload (auth) that sockets
  #   # do not keep, besides those the auth plugin names (auth-jwt: token).
  #   # Dropped at CONNECT, after the auth plugin has seen them: GET
  #   # /api/v1/sockets, fetchSockets from other instances (Node's too) and
  #   # event rules (`auth`) all see the payload without them. Default [].
  #   redact_auth = ["password", "api_key"]
  # }

  # Optional: TLS on this listener (https:// and wss://, HTTP/1.1 only) and
  # on the metrics plugin's own listener. Off (plain HTTP) when omitted;
  # terminate TLS at the load balancer instead when there is one (see
  # docs/operations.md, "TLS: here or at the load balancer").
  # The files are watched: a replaced pair (both files, any order) is used
  # by new handshakes within about a second, and on SIGHUP; connections keep
  # the session they have. A pair that does not load keeps the old one in
  # service (logged; tls_certificate_reloads_total{result="error"}).
  # tls {
  #   cert_file   = "/etc/socketfleet/tls/fullchain.pem" # PEM, leaf first; relative = next to this file
  #   key_file    = "/etc/socketfleet/tls/privkey.pem"   # PEM private key of the leaf
  #   min_version = "1.2"                                # "1.2" (default) or "1.3"
  #   metrics     = true                                 # false: the metrics listener stays plain HTTP
  # }
}

# A namespace block declares a Socket.IO namespace and what its events do.
# The label is the namespace name and starts with "/". Namespace "/" exists
# even when not declared (with no event rules). Clients may connect only to
# declared namespaces.
namespace "/" {
  # What to do with events that have no event block: "drop" (ignore them,
  # the default) or "disconnect" (disconnect the socket).
  unknown_events = "drop"

  # Optional, at most once: packets sent to a socket right after it connects.
  # on_connect {
  #   # Zero or more emit blocks, sent in order. The label is the event name;
  #   # args (RUNTIME, a list; default []) are its arguments. May use auth,
  #   # query, headers and socket.
  #   emit "welcome" {
  #     args = [{ id = socket.id }]
  #   }
  # }

  # An event block handles one event name (unique per namespace). Its
  # actions run in the order max_size, rate_limit, join, leave, broadcast(s),
  # server_emit(s), emit_to_sender_user(s), reply, ack.
  # Optional attributes of every event block:
  #   max_size   = "4KB"   largest accepted packet for this event
  #   rate_limit = "10/s"  per socket, "N/s" or "N/m"; excess events are dropped
  #   rate_burst = 20      bucket size (default: the per-second rate, rounded up, min 1)
  #   ack        = args    RUNTIME: arguments of the acknowledgement sent when
  #                        the client asked for one; `args` = the received
  #                        arguments unchanged
  #
  # join / leave (each at most once):
  #   room  - RUNTIME, required: a room name or a list of room names
  #   allow - RUNTIME, optional: list of glob templates ('*' any run of
  #           characters, '?' one character) the room must match; omitted =
  #           any room. Each template is evaluated per socket, so it can name
  #           the user the auth plugin established, e.g. "user:${user}"
  #           (not auth.*: the client chooses those).
  #   When the client asked for an acknowledgement (and there is no ack
  #   attribute) it gets {"ok": true}, or {"ok": false, "error": "..."}.
  #
  # broadcast (any number):
  #   to             - RUNTIME: room name or list of names; omitted = the whole namespace
  #   event          - event name to send; default = the received event name
  #   args           - RUNTIME: list of arguments; default (or `args`) = the
  #                    received arguments unchanged, binary included
  #   except_sender  - do not send to the sender; default false
  #   require_member - the sender must be in the target room(s); default true
  #                    (no effect when `to` is omitted)
  #
  # server_emit (any number): a server-side emit to every instance of the
  # cluster, this one included, and to the Node servers on the same adapter
  # (their io.on(event) fires). What an instance then does is its
  # server_event block of that name (below). Sent in the background: the
  # event rule does not wait for the other instances.
  #   event - event name; default = the received event name
  #   args  - RUNTIME: list of arguments; default (or `args`) = the received
  #           arguments unchanged, binary included
  #
  # emit_to_sender_user (any number): emit to every socket of the sender's
  # user, on every instance: to room "user:<id>", where <id> is the user id
  # the auth plugin established (`user`). The core does not put sockets in
  # that room: the auth plugin's rooms must (e.g. auth-jwt's rooms_claim
  # holding "user:<id>"), or a join rule with allow = ["user:${user}"]. The
  # sender gets it too when it is in the room. A socket without a user id
  # (no auth plugin) sends nothing.
  #   event         - event name to send; default = the received event name
  #   args          - RUNTIME: list of arguments; default (or `args`) = the
  #                   received arguments unchanged, binary included
  #   except_sender - do not send to the sender itself; default false
  #
  # reply (at most once): emit an event back to the sender only.
  #   event - required: event name
  #   args  - RUNTIME: default (or `args`) = the received arguments unchanged

  # join: the client sends a room name or {room = "..."}.
  event "join" {
    max_size   = "1KB"
    rate_limit = "5/s"
    join {
      room = try(args[0].room, args[0])
      # Any room name may be joined. To restrict, list patterns, e.g.
      # allow = ["lobby", "room:*", "user:${user}"]
      # (`user`: the id the auth plugin established, not a client's claim)
      allow = ["*"]
      # Another connected socket's id is that socket's private room (what
      # is sent to it alone). A join refuses it whatever `allow` says, "*"
      # included (the ack says "room is another socket's id"). Only a join
      # block that says so explicitly may join it (and its room must still
      # match `allow`): the joiner then receives that socket's private
      # messages too. Default false.
      # allow_socket_ids = true
    }
  }

  # leave: the client sends a room name or {room = "..."}.
  event "leave" {
    max_size = "1KB"
    leave {
      room = try(args[0].room, args[0])
    }
  }

  # A chat message {room = "...", ...} goes to everyone in that room,
  # including the sender, who must have joined it first.
  event "chat:message" {
    max_size   = "16KB"
    rate_limit = "20/s"
    broadcast {
      to             = args[0].room
      except_sender  = false
      require_member = true
    }
  }

  # A server_event block says what this instance does when a server-side
  # emit of that name arrives (from a server_emit action of any instance,
  # POST /api/v1/server-emit, or io.serverSideEmit() on a Node server on
  # the same adapter). Server-side emits with no block are ignored and
  # counted. Expressions see only `args` (no socket).
  #   broadcast (any number) - to LOCAL sockets only: every instance gets the
  #                            server-side emit and delivers to its own.
  #     to    - RUNTIME: room name or list of names; omitted = the whole namespace
  #     event - event name to send; default = the server event's name
  #     args  - RUNTIME: list; default (or `args`) = the emit's arguments unchanged
  #   ack    - RUNTIME, one value: this instance's answer when the sender
  #            asked for acknowledgements; default null
  #
  # For example, an announcement any client may send to a room on every
  # instance:
  # event "announce" {
  #   rate_limit = "1/s"
  #   server_emit {}
  # }
  # server_event "announce" {
  #   broadcast {
  #     to    = args[0].room
  #     event = "announcement"
  #     args  = [args[0].text]
  #   }
  #   ack = { ok = true }
  # }
}

# Plugins. Each plugin kind is selected by a block whose label names the
# plugin; the plugin runs as its own process (hashicorp/go-plugin over gRPC)
# found at <plugin_dir>/<kind>-<name>. Attributes every plugin block takes:
#   command      - explicit path of the binary instead of the lookup; a
#                  relative path is relative to this file's folder (so are
#                  the files plugins read, e.g. auth-jwt's public_key_file)
#   sha256       - pin: the binary's SHA-256 (hex) is checked before launch
#   call_timeout - bound on one call into the plugin (default "2s")
# Every other attribute is the plugin's own, checked against the schema the
# plugin declares (socket-server validate reports mistakes with positions).
# Kinds: auth, adapter, sharding, metrics (one each) and log_sink (several).
#
# auth "jwt" {
#   secret      = env("JWT_SECRET")
#   audience    = "chat"
#   rooms_claim = "rooms"
# }
#
# adapter "redis" {                    # broadcasts and cluster requests across instances (Node-compatible)
#   url              = env("REDIS_URL", "redis://127.0.0.1:6379")
#   key              = env("REDIS_PREFIX", "socket.io")
#   mode             = "classic"        # or "sharded" (Redis 7 SPUBLISH; subscription_mode, cluster_nodes),
#                                       # or "streams" (Redis Streams, as @socket.io/redis-streams-adapter:
#                                       # what server.recovery needs across instances)
#   queue            = 10000            # broadcasts held while Redis is away; beyond, dropped and counted
#   requests_timeout = "5s"             # fetch sockets & co. wait this long for the other servers
# }
# sharding "hash" {                    # md5 of the user id, or algorithm = "rendezvous"
#   shards = 4
#   shard  = env("SHARD")
#   urls   = ["wss://s0.example", "wss://s1.example", "wss://s2.example", "wss://s3.example"]
# }
# metrics "prometheus" {               # /metrics on this port...
#   environment = env("ENVIRONMENT", "production")
#   listen      = "127.0.0.1:9100"       # ...or on its own listener (metrics blocks only)
# }
# log_sink "elasticsearch" {
#   url = env("ELASTICSEARCH_URL", "http://127.0.0.1:9200")
# }
# log_sink "stdout" {                  # NDJSON appended to a file
#   path = "socket-server.ndjson"
# }
#
# Each plugin's README (plugins/<kind>-<name>/README.md) lists its attributes.
#
# With an auth plugin every CONNECT is checked once; a refused client gets
# CONNECT_ERROR with the plugin's reason, and while the plugin is down new
# connections are refused with "authentication unavailable" (connected
# sockets stay). The plugin's user id and data are `user` and `data` in
# RUNTIME expressions.

# The Socket.IO Admin UI (off without this block): the /admin namespace the
# official UI (@socket.io/admin-ui 0.5) speaks, fleet-wide through the
# adapter, and the UI itself at /admin/ (README, "The Admin UI").
# admin {
#   username      = "admin"
#   password_hash = env("ADMIN_PASSWORD_HASH") # bcrypt, cost >= 10; never the password itself
#   read_only     = false          # true: the UI sees, and emit/join/leave/disconnect are refused
#   mode          = "production"   # or "development": every socket, room and event reported
#   ui            = true           # serve the UI's files at /admin/ (embedded by `make ui`)
#   # ui_dir      = "admin-ui"     # ...or from this folder
#   # auth        = false          # instead of username/password_hash: no login at all
# }
