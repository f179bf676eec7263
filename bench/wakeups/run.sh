#!/usr/bin/env bash
# What a SET costs the machine's scheduler: system-wide wake-ups, context
# switches, inter-processor interrupts and the system calls around them,
# per command, for a standalone coppice node and a redis-server with
# appendfsync always, each under the same redis-benchmark load (SET -c 50
# -P 1 -d 64), counted by perf over the same window, one after the other.
# Needs perf (Debian's linux-perf) and root, or perf_event_paranoid <= -1.
#
#   bash bench/wakeups/run.sh [SECONDS]      (default 5)
#
# docs/node-benchmarks.md quotes it.
set -euo pipefail
secs=${1:-5}
cd "$(dirname "$0")/../.."
for tool in perf redis-server redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
stopall() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap stopall EXIT
go build -o "$work/node" ./cmd/node
. bench/lib.sh
pong() { [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; }
# serving PORT: waits (20 s) until the server answers PING.
serving() { retry "the server on port $1 answering PING" 20 0.1 pong "$1"; }

events=sched:sched_wakeup,sched:sched_switch,ipi:ipi_send_cpu,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_wait

# measure NAME PORT: the counts per command over secs seconds of load.
measure() {
    local name=$1 p=$2
    redis-benchmark -p "$p" -t set -c 50 -n 100000000 -d 64 -r 100000 -q >/dev/null 2>&1 &
    local bench=$!
    sleep 2
    local c0 c1
    c0=$(redis-cli -p "$p" info stats | tr -d '\r' | sed -n 's/^total_commands_processed://p')
    perf stat -a -x, -e "$events" -o "$work/$name.csv" -- sleep "$secs"
    c1=$(redis-cli -p "$p" info stats | tr -d '\r' | sed -n 's/^total_commands_processed://p')
    kill "$bench"; wait "$bench" 2>/dev/null || true
    local n=$((c1 - c0))
    printf '%s: %d commands in %ss (%d/s)\n' "$name" "$n" "$secs" $((n / secs))
    awk -F, -v n="$n" -v name="$name" '$3 ~ /:/ { printf "  %-28s %8.3f per command\n", $3, $1 / n }' "$work/$name.csv"
}

rport=$(freeport)
redis-server --port "$rport" --appendonly yes --appendfsync always --save '' --dir "$work" >/dev/null 2>&1 &
pids+=($!)
serving "$rport"
measure redis "$rport"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

nport=$(freeport)
mkdir "$work/data"
"$work/node" --name w1 --data-dir "$work/data" --client-addr "127.0.0.1:$nport" --http-addr 127.0.0.1:0 \
    --cluster-addr 127.0.0.1:0 --gossip-addr "127.0.0.1:$(freeport)" >"$work/node.log" 2>&1 &
pids+=($!)
serving "$nport"
measure coppice "$nport"
