#!/usr/bin/env bash
# make bench: the standard scenarios against socketfleet ("ours") and the
# Node socket.io reference ("node") in the same run, alternating, ROUNDS
# rounds each; the fanout scenarios also against the floor server
# (bench/floor, "floor"); then the table of medians with the ratios
# ours/node and ours/floor.
#
# Every run gets fresh server processes. Cores (bench/README.md): servers
# (and Redis) on core $SERVER_CPU, the load generator on core $GEN_CPU.
#
# Environment:
#   BENCH_QUICK=1        one round, small numbers, about a minute (development;
#                        results in bench/results/*-quick/, not committed)
#   BENCH_ROUNDS=N       rounds (default 3; 1 with BENCH_QUICK)
#   BENCH_SCENARIOS="fanout-1k idle-10k"   run only these (names below)
#   BENCH_SERVER_CPU=0 BENCH_GEN_CPU=1     the cores
#   BENCH_OUT=DIR        where results go (default bench/results/<UTC time>)
#   BENCH_OURS_BIN=PATH  our server's binary (default bin/socket-server; e.g.
#                        one built from an older commit, for a before/after)
#   BENCH_PORT=N         the servers' ports: N and N+1, Redis on N-2 (default
#                        18181; another port when someone else benches here)
#
# Needs bin/socket-server, bin/plugins, bin/socketbench, bin/floor and
# bench/node/node_modules: `make bench` builds and installs them first.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${BENCH_QUICK:-0}
ROUNDS=${BENCH_ROUNDS:-$([ "$QUICK" = 1 ] && echo 1 || echo 3)}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
GEN_CPU=${BENCH_GEN_CPU:-1}
ALL="fanout-1k fanout-5k idle-10k handshake handshake-jwt cluster-30 cluster-max"
# Not in ALL: fanout-1k-recovery (fanout-1k with connection state recovery
# on both sides: bench/socketfleet-recovery.hcl, Node's RECOVERY=1), and
# cluster-30-streams (cluster-30 over Redis streams with recovery on both
# sides: bench/socketfleet-streams.hcl, Node's streams adapter), and
# fanout-10k (10,000 subscribers at 3 msg/s: the same 30,000 deliveries/s).
SCENARIOS=${BENCH_SCENARIOS:-$ALL}
STAMP=$(date -u +%Y-%m-%dT%H-%M)
OUT=${BENCH_OUT:-bench/results/$STAMP$(if [ "$QUICK" = 1 ]; then echo -quick; fi)}
OURS_BIN=${BENCH_OURS_BIN:-bin/socket-server}
JWT_SECRET_BENCH=socketbench-secret
PORT_A=${BENCH_PORT:-18181}
PORT_B=$((PORT_A + 1)) REDIS_PORT=$((PORT_A - 2))

for f in bin/socket-server bin/plugins/auth-jwt bin/plugins/adapter-redis bin/socketbench bin/floor bench/node/node_modules; do
  [ -e "$f" ] || { echo "missing $f: run make bench" >&2; exit 1; }
done

# 10,000 connections on each side, plus Redis and plugins.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt 12000 ]; then echo "warning: ulimit -n is $(ulimit -n); idle-10k needs > 10,000" >&2; fi

pin() { # pin CPU CMD...: run CMD on one core (unpinned without taskset)
  local cpu=$1; shift
  if command -v taskset >/dev/null; then taskset -c "$cpu" "$@"; else "$@"; fi
}

mkdir -p "$OUT"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (work tree has changes)')"
  echo "ours: $OURS_BIN ($("$OURS_BIN" version 2>/dev/null || echo "version unknown"))"
  echo "uptime: $(uptime)"
  echo "go: $(go version 2>/dev/null) node: $(node --version) redis: $(redis-server --version | awk '{print $3}')"
  echo "socket.io: $(node -p 'require("./bench/node/node_modules/socket.io/package.json").version')"
  echo "cores: servers and redis on $SERVER_CPU, generator on $GEN_CPU; rounds $ROUNDS; quick $QUICK"
  lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|Hypervisor|L2|L3)' || true
  free -h | head -2
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_up() { # wait_up PORT: the Socket.IO endpoint answers
  for _ in $(seq 1 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/socket.io/?EIO=4&transport=polling")" = 200 ] && return 0
    sleep 0.05
  done
  echo "server on port $1 did not come up" >&2; return 1
}

# port_free PORT: nothing listens on it (waits up to 5 s)
port_free() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || return 0
    sleep 0.05
  done
  return 1
}

# start_server LABEL CONFIG PORT [VAR=value...]: prints the pid
start_server() {
  local label=$1 config=$2 port=$3; shift 3
  port_free "$port" || { echo "port $port still taken before starting $label" >&2; return 1; }
  if [ "$label" = ours ]; then
    env LISTEN_ADDR=127.0.0.1:$port "$@" \
      taskset -c "$SERVER_CPU" "$OURS_BIN" run --config "bench/socketfleet$config.hcl" >>"$OUT/server-$label.log" 2>&1 &
  elif [ "$label" = floor ]; then
    taskset -c "$SERVER_CPU" bin/floor -addr "127.0.0.1:$port" >>"$OUT/server-$label.log" 2>&1 &
  else
    (cd bench/node && exec env PORT="$port" "$@" taskset -c "$SERVER_CPU" node server.js) >>"$OUT/server-$label.log" 2>&1 &
  fi
  local pid=$!
  PIDS+=("$pid")
  wait_up "$port" >&2
  # Answered by this server, not by one still on its way out.
  if gone "$pid"; then echo "server $label on port $port exited at start (see $OUT/server-$label.log)" >&2; return 1; fi
  echo "$pid"
}

start_redis() {
  taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --loglevel warning >>"$OUT/redis.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
  echo "$pid"
}

# gone PID: exited (a zombie counts: nobody may be reaping it soon)
gone() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 0; [[ $s == Z* ]]; }

# stop PID...: SIGTERM twice (socketfleet drains on the first and exits at
# once on the second), SIGKILL after 10 s; waits for their children
# (plugins) to be gone too.
stop() {
  local all=() p
  for p in "$@"; do all+=("$p" $(pgrep -P "$p" || true)); done
  kill -TERM "$@" 2>/dev/null || true
  sleep 0.1
  kill -TERM "$@" 2>/dev/null || true
  for _ in $(seq 1 200); do
    local alive=0
    for p in "${all[@]}"; do gone "$p" || alive=1; done
    [ $alive = 0 ] && return 0
    sleep 0.05
  done
  kill -9 "${all[@]}" 2>/dev/null || true
  # A killed process with 10,000 sockets takes a moment to go: the next
  # server must not find the port still taken.
  for _ in $(seq 1 100); do
    local alive=0
    for p in "${all[@]}"; do gone "$p" || alive=1; done
    [ $alive = 0 ] && return 0
    sleep 0.05
  done
}

# gen NAME LABEL SCENARIO ARGS...: the generator on its core; the JSON
# line goes to NAME.jsonl, the summary to NAME.log and the terminal.
gen() {
  local name=$1 label=$2 scenario=$3; shift 3
  echo "--- $name $label (round $round), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/$name.log"
  pin "$GEN_CPU" bin/socketbench "$scenario" --name "$name" --label "$label" "$@" \
    >>"$OUT/$name.jsonl" 2> >(tee -a "$OUT/$name.log" >&2) || echo "socketbench $name $label failed" | tee -a "$OUT/$name.log"
  sleep 0.2 # let the stderr tee finish
}

# Numbers of each scenario: full, or small with BENCH_QUICK.
if [ "$QUICK" = 1 ]; then
  N1K=100 N5K=500 N10K=1000 DUR=2s WARM=500ms HS_DUR=2s HOLD=1s NCL=100
else
  N1K=1000 N5K=5000 N10K=10000 DUR=15s WARM=3s HS_DUR=10s HOLD=5s NCL=1000
fi

# run_one NAME LABEL: one scenario against one server, fresh processes.
run_one() {
  local name=$1 label=$2 a b r url
  url=http://127.0.0.1:$PORT_A
  case $name in
    fanout-1k|fanout-5k|fanout-10k|fanout-1k-recovery)
      local n=$N1K rate=30 variant="" env=RECOVERY=
      [ "$name" = fanout-5k ] && n=$N5K rate=6
      [ "$name" = fanout-10k ] && n=$N10K rate=3
      [ "$name" = fanout-1k-recovery ] && variant=-recovery env=RECOVERY=1
      a=$(start_server "$label" "$variant" "$PORT_A" "$env")
      gen "$name" "$label" fanout --url "$url" -n "$n" --rate "$rate" --warmup "$WARM" --duration "$DUR" --server-pid "$a"
      stop "$a" ;;
    idle-10k)
      a=$(start_server "$label" "" "$PORT_A")
      sleep 1 # a settled baseline RSS
      gen "$name" "$label" connect --url "$url" -n "$N10K" -c 200 --hold "$HOLD" --server-pid "$a"
      stop "$a" ;;
    handshake)
      a=$(start_server "$label" "" "$PORT_A")
      gen "$name" "$label" handshake --url "$url" -c 200 --warmup "$WARM" --duration "$HS_DUR" --server-pid "$a"
      stop "$a" ;;
    handshake-jwt)
      a=$(start_server "$label" -jwt "$PORT_A" JWT_SECRET=$JWT_SECRET_BENCH)
      gen "$name" "$label" handshake --url "$url" -c 200 --warmup "$WARM" --duration "$HS_DUR" \
        --jwt-secret "$JWT_SECRET_BENCH" --server-pid "$a"
      stop "$a" ;;
    cluster-30|cluster-max|cluster-30-streams)
      local rate=30 dur=$DUR variant=-redis streams=REDIS_STREAMS= rec=RECOVERY=
      [ "$name" = cluster-max ] && rate=0
      [ "$name" = cluster-30-streams ] && variant=-streams streams=REDIS_STREAMS=1 rec=RECOVERY=1
      r=$(start_redis)
      a=$(start_server "$label" "$variant" "$PORT_A" REDIS_URL=redis://127.0.0.1:$REDIS_PORT "$streams" "$rec")
      b=$(start_server "$label" "$variant" "$PORT_B" REDIS_URL=redis://127.0.0.1:$REDIS_PORT "$streams" "$rec")
      sleep 0.5 # adapters subscribed
      gen "$name" "$label" cluster --url "$url,http://127.0.0.1:$PORT_B" -n "$NCL" --rate "$rate" \
        --warmup "$WARM" --duration "$dur" --server-pid "$a,$b" --redis-pid "$r"
      stop "$a" "$b"
      stop "$r" ;;
    *) echo "unknown scenario $name" >&2; exit 2 ;;
  esac
}

# Rounds rotate which server goes first, so drift over the run hits all.
# The floor implements the fanout contract only (bench/floor has no
# recovery), so it runs in the plain fanout scenarios.
for round in $(seq 1 "$ROUNDS"); do
  for name in $SCENARIOS; do
    case $name in
      fanout-1k|fanout-5k|fanout-10k)
        case $((round % 3)) in
          1) order="ours node floor" ;;
          2) order="node floor ours" ;;
          0) order="floor ours node" ;;
        esac ;;
      *) if [ $((round % 2)) = 1 ]; then order="ours node"; else order="node ours"; fi ;;
    esac
    for label in $order; do run_one "$name" "$label"; done
  done
done

echo "uptime at the end: $(uptime)" >> "$OUT/machine.txt"
echo
bin/socketbench table --c floor --targets bench/targets.txt $(for n in $SCENARIOS; do echo "$OUT/$n.jsonl"; done) | tee "$OUT/table.md"
echo
echo "results: $OUT"
