#!/usr/bin/env bash
# Starts a local cluster for trying things by hand: one redis-server and
# three socketfleet instances sharing rooms through the Redis adapter plugin,
# all on loopback ports, with one config file (config.hcl beside this
# script). Ctrl-C (or SIGTERM) stops everything.
#
#   examples/cluster/run.sh            # from the repository root, after `make build`
#
# Environment (defaults in brackets): REDIS_PORT [6390], BASE_PORT [8081]
# (instances on BASE_PORT..BASE_PORT+2), API_TOKEN [local-cluster-token-0123],
# BIN [bin/socket-server], PLUGIN_DIR [bin/plugins].
set -euo pipefail
cd "$(dirname "$0")/../.."

REDIS_PORT=${REDIS_PORT:-6390}
BASE_PORT=${BASE_PORT:-8081}
export API_TOKEN=${API_TOKEN:-local-cluster-token-0123}
BIN=${BIN:-bin/socket-server}
export PLUGIN_DIR=${PLUGIN_DIR:-bin/plugins}
export REDIS_URL="redis://127.0.0.1:${REDIS_PORT}"
PATH="$PATH:/usr/sbin"

for f in "$BIN" "$PLUGIN_DIR/adapter-redis"; do
  [ -x "$f" ] || { echo "run.sh: $f not found: run 'make build' first" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "run.sh: redis-server not found (apt-get install -y redis-server)" >&2; exit 1; }

pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --loglevel warning &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

for i in 0 1 2; do
  port=$((BASE_PORT + i))
  LISTEN_ADDR="127.0.0.1:${port}" INSTANCE_ID="sf-${i}" "$BIN" run --config examples/cluster/config.hcl &
  pids+=($!)
done

for i in 0 1 2; do
  port=$((BASE_PORT + i))
  # The port opens once the instance's plugins are up.
  for _ in $(seq 100); do (: <"/dev/tcp/127.0.0.1/${port}") 2>/dev/null && break; sleep 0.1; done
done

cat <<MSG

cluster up: redis on 127.0.0.1:${REDIS_PORT}; instances sf-0..sf-2 on
http://127.0.0.1:${BASE_PORT} .. http://127.0.0.1:$((BASE_PORT + 2))  (API token: ${API_TOKEN})

  curl -s http://127.0.0.1:${BASE_PORT}/health
  curl -s -H "Authorization: Bearer ${API_TOKEN}" "http://127.0.0.1:${BASE_PORT}/api/v1/sockets?room=lobby"
  curl -s -H "Authorization: Bearer ${API_TOKEN}" -d '{"event":"news","args":["hello"],"rooms":["lobby"]}' http://127.0.0.1:$((BASE_PORT + 1))/api/v1/emit

Ctrl-C stops everything.
MSG
wait -n "${pids[@]}" || true
