#!/usr/bin/env bash
# bench/sql_pgbench.sh - what watching PostgreSQL costs: pgbench throughput
# with and without the agent, side by side, as a ratio.
#
# The one idea: one private PostgreSQL 15 (pinned to CPU 0 with the agent,
# as on a busy host), pgbench on CPU 1; pairs of runs bare / watched (the
# server by port and pgbench by pid: server and client spans) in
# interleaved order, and the median of the per-pair ratios with the raw
# values beside it. Absolute tps on a shared VM mean little; ratios survive.
#
#   flock /tmp/sonde-live.lock bench/sql_pgbench.sh [BUILD_DIR]   (root)
#
# Environment: SQL_BENCH_REPS (default 3), SQL_BENCH_SECONDS per run (5),
# SQL_BENCH_MODE (pgbench -M: simple|extended|prepared, default prepared),
# SQL_BENCH_CLIENTS (4).
#
# Output: BENCH lines (name, median, unit, raw=...), like bench/run.sh.
set -uo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" 2>/dev/null && pwd) || { echo "no build directory" >&2; exit 1; }
SONDE=$BUILD/sonde
PGBIN=/usr/lib/postgresql/15/bin
REPS=${SQL_BENCH_REPS:-3}
SECS=${SQL_BENCH_SECONDS:-5}
MODE=${SQL_BENCH_MODE:-prepared}
CLIENTS=${SQL_BENCH_CLIENTS:-4}
PORT=15432
WORK=$(mktemp -d /tmp/sonde-sqlbench.XXXXXX)
PG_PID=

[ "$(id -u)" = 0 ] || { echo "sql_pgbench: needs root (eBPF)" >&2; exit 77; }
for b in "$SONDE" "$PGBIN/postgres" pgbench taskset runuser; do
  command -v "$b" >/dev/null 2>&1 || [ -x "$b" ] || { echo "sql_pgbench: $b missing" >&2; exit 77; }
done

cleanup() {
  [ -n "$PG_PID" ] && kill "$PG_PID" 2>/dev/null && wait "$PG_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

chmod 755 "$WORK"
chown postgres:postgres "$WORK"
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/data" -A trust -U postgres --no-sync >/dev/null || exit 1
taskset -c 0 runuser -u postgres -- "$PGBIN/postgres" -D "$WORK/data" -p $PORT -k "$WORK" \
  -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off >"$WORK/pg.log" 2>&1 &
PG_PID=$!
for _ in $(seq 1 100); do
  pg_isready -h 127.0.0.1 -p $PORT -q 2>/dev/null && break
  sleep 0.1
done
pgbench -h 127.0.0.1 -p $PORT -U postgres -i -s 5 -q postgres >/dev/null 2>&1 || { echo "pgbench -i failed" >&2; exit 1; }

# One pgbench -S run; prints its tps. With $1 = watched, under the agent.
run() {
  local out=$WORK/run.out agent=
  if [ "$1" = watched ]; then
    mkfifo "$WORK/go" 2>/dev/null
    taskset -c 1 sh -c "read go < $WORK/go; exec pgbench -h 127.0.0.1 -p $PORT -U postgres -n -S \
      -M $MODE -c $CLIENTS -j 1 -T $SECS postgres" >"$out" 2>&1 &
    local cl=$!
    taskset -c 0 "$SONDE" --print none -v --open-port $PORT --pid $cl >"$WORK/agent.log" 2>&1 &
    agent=$!
    for _ in $(seq 1 150); do grep -q ready "$WORK/agent.log" && break; sleep 0.1; done
    echo go >"$WORK/go"
    wait $cl
    kill -TERM $agent; wait $agent
    # operations the plugin saw per transaction pgbench made (2: client + server)
    sed -n 's/.*\[sql\] info: \([0-9]*\) operations.*/\1/p' "$WORK/agent.log" >"$WORK/ops"
    sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out" >"$WORK/txns"
  else
    taskset -c 1 pgbench -h 127.0.0.1 -p $PORT -U postgres -n -S -M $MODE -c $CLIENTS -j 1 -T $SECS \
      postgres >"$out" 2>&1
  fi
  sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out" | head -1
}

bare=() watched=() ratios=() perop=()
for i in $(seq 1 "$REPS"); do
  if [ $((i % 2)) = 1 ]; then b=$(run bare); w=$(run watched); else w=$(run watched); b=$(run bare); fi
  bare+=("$b") watched+=("$w")
  perop+=("$(awk -v o="$(cat "$WORK/ops")" -v t="$(cat "$WORK/txns")" 'BEGIN { printf "%.3f", (t > 0 ? o / t : 0) }')")
  ratios+=("$(awk -v w="$w" -v b="$b" 'BEGIN { printf "%.3f", (b > 0 ? w / b : 0) }')")
done

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
join() { local IFS=,; echo "$*"; }
echo "BENCH sql_pgbench_${MODE}_tps_bare $(median "${bare[@]}") tps raw=$(join "${bare[@]}")"
echo "BENCH sql_pgbench_${MODE}_tps_watched $(median "${watched[@]}") tps raw=$(join "${watched[@]}")"
echo "BENCH sql_pgbench_${MODE}_ops_per_txn $(median "${perop[@]}") operations raw=$(join "${perop[@]}")"
echo "BENCH sql_pgbench_${MODE}_ratio $(median "${ratios[@]}") watched/bare raw=$(join "${ratios[@]}")"
