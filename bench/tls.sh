#!/usr/bin/env bash
# bench/tls.sh: what TLS costs our server, plain ws:// next to wss://
# (bench/socketfleet-tls.hcl, a P-256 certificate from a CA made here with
# openssl), alternating, ROUNDS rounds each; fresh processes every run,
# pinned as in run.sh. Scenarios (BENCH_SCENARIOS, default all three):
#   fanout     fanout-1k: 1,000 WebSocket subscribers, 30 messages/s (30,000
#              deliveries/s): server CPU per delivery
#   idle       connect -n 2000 -c 200 --hold 3s: RSS per idle connection
#   handshake  handshake -c 200 for 10 s: server CPU per handshake (every
#              TLS connection a full handshake: socketbench keeps no sessions)
#
# Environment: BENCH_ROUNDS (default 2), BENCH_QUICK=1 (small numbers),
# BENCH_SERVER_CPU/BENCH_GEN_CPU (0/1), BENCH_OUT (default
# bench/results/<UTC time>-tls). Needs bin/socket-server, bin/socketbench
# (make build; go build -o bin/socketbench ./cmd/socketbench) and openssl.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${BENCH_QUICK:-0}
ROUNDS=${BENCH_ROUNDS:-2}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
GEN_CPU=${BENCH_GEN_CPU:-1}
OUT=${BENCH_OUT:-bench/results/$(date -u +%Y-%m-%dT%H-%M)-tls}
PORT=${BENCH_PORT:-18191}
SCENARIOS=${BENCH_SCENARIOS:-fanout idle handshake}
if [ "$QUICK" = 1 ]; then N=100 NIDLE=200 DUR=2s WARM=500ms HS_DUR=2s; else N=1000 NIDLE=2000 DUR=15s WARM=3s HS_DUR=10s; fi

for f in bin/socket-server bin/socketbench; do
  [ -e "$f" ] || { echo "missing $f: make build && go build -o bin/socketbench ./cmd/socketbench" >&2; exit 1; }
done
command -v openssl >/dev/null || { echo "missing openssl: apt-get install openssl" >&2; exit 1; }
pin() { local cpu=$1; shift; if command -v taskset >/dev/null; then taskset -c "$cpu" "$@"; else "$@"; fi; }

mkdir -p "$OUT"
CERTS=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$CERTS"; }
trap cleanup EXIT

ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$CERTS/ca.key" -out "$CERTS/ca.pem" -subj /CN=bench-ca -days 1 2>/dev/null
openssl req "${ec[@]}" -keyout "$CERTS/key.pem" -out "$CERTS/leaf.csr" -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$CERTS/ext.cnf"
openssl x509 -req -in "$CERTS/leaf.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca.key" -set_serial 1 -days 1 \
  -out "$CERTS/cert.pem" -extfile "$CERTS/ext.cnf" 2>/dev/null

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (work tree has changes)')"
  echo "uptime: $(uptime)"
  echo "cores: server on $SERVER_CPU, generator on $GEN_CPU; rounds $ROUNDS; scenarios $SCENARIOS"
} | tee "$OUT/machine.txt"

up() { # up SCHEME: the polling handshake answers 200
  for _ in $(seq 1 200); do
    [ "$(curl -s --cacert "$CERTS/ca.pem" -o /dev/null -w '%{http_code}' "$1://127.0.0.1:$PORT/socket.io/?EIO=4&transport=polling")" = 200 ] && return 0
    sleep 0.05
  done
  return 1
}

for round in $(seq 1 "$ROUNDS"); do
  for scen in $SCENARIOS; do
    for mode in plain tls; do
      cfg=bench/socketfleet.hcl scheme=http ca=()
      [ $mode = tls ] && cfg=bench/socketfleet-tls.hcl scheme=https ca=(--tls-ca "$CERTS/ca.pem")
      env LISTEN_ADDR=127.0.0.1:$PORT TLS_CERT="$CERTS/cert.pem" TLS_KEY="$CERTS/key.pem" \
        taskset -c "$SERVER_CPU" bin/socket-server run --config "$cfg" >>"$OUT/server-$mode.log" 2>&1 &
      PID=$!
      up $scheme || { echo "server ($mode) did not come up; see $OUT/server-$mode.log" >&2; exit 1; }
      common=(--url "$scheme://127.0.0.1:$PORT" "${ca[@]}" --server-pid "$PID" --label "$mode")
      case $scen in
        fanout) args=(fanout -n "$N" --rate 30 --warmup "$WARM" --duration "$DUR" --name fanout-1k) ;;
        idle) sleep 1; args=(connect -n "$NIDLE" -c 200 --hold 3s --name idle) ;;
        handshake) args=(handshake -c 200 --warmup "$WARM" --duration "$HS_DUR" --name handshake) ;;
        *) echo "unknown scenario $scen" >&2; exit 2 ;;
      esac
      echo "--- $scen $mode (round $round) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/$scen.log"
      pin "$GEN_CPU" bin/socketbench "${args[@]}" "${common[@]}" >>"$OUT/$scen.jsonl" 2> >(tee -a "$OUT/$scen.log" >&2)
      kill -TERM "$PID"; sleep 0.1; kill -TERM "$PID" 2>/dev/null || true
      wait "$PID" 2>/dev/null || true
      PID=
      sleep 0.5
    done
  done
done
echo "results: $OUT" >&2
