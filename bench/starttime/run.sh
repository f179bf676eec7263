#!/usr/bin/env bash
# How long a standalone node takes from its start until it serves: the
# time from exec until /readyz answers 200 and until a SET is answered OK,
# on a new data dir and on the same data dir again, against redis-server
# (appendonly yes, appendfsync always) from exec until a SET is answered,
# in the same run. Each start is stopped with SIGTERM before the next.
#
#   bash bench/starttime/run.sh [STARTS] [NODE_BINARY]   (default 5, built from the tree)
#
# docs/node-benchmarks.md quotes it.
set -euo pipefail
starts=${1:-5}
cd "$(dirname "$0")/../.."
. bench/lib.sh
needs redis-server redis-cli curl python3
work=$(mktemp -d)
proc=
stop() {
    if [ -n "$proc" ]; then
        kill "$proc" 2>/dev/null || true
        wait "$proc" 2>/dev/null || true
    fi
    proc=
}
trap 'stop; rm -rf "$work"' EXIT
node=${2:-}
if [ -z "$node" ]; then
    node=$work/node
    go build -o "$node" ./cmd/node
fi
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }

set_ok() { [ "$(redis-cli -p "$1" set starttime v 2>/dev/null)" = OK ]; }
readyz_ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ]; }

# node_start: one start of the node on $work/data; sets ready_ms and set_ms.
node_start() {
    local c h k g
    c=$(freeport)
    h=$(freeport)
    k=$(freeport)
    g=$(freeport)
    local t0
    t0=$(now)
    "$node" --name st1 --data-dir "$work/data" --client-addr "127.0.0.1:$c" \
        --cluster-addr "127.0.0.1:$k" --gossip-addr "127.0.0.1:$g" \
        --http-addr "127.0.0.1:$h" >"$work/node.log" 2>&1 &
    proc=$!
    retry "node /readyz" 20 0.005 readyz_ok "$h"
    ready_ms=$(ms "$t0" "$(now)")
    retry "node SET" 20 0.005 set_ok "$c"
    set_ms=$(ms "$t0" "$(now)")
    stop
}

# redis_start: one start of redis-server; sets redis_ms.
redis_start() {
    local c
    c=$(freeport)
    local t0
    t0=$(now)
    redis-server --port "$c" --dir "$work/redis" --appendonly yes --appendfsync always \
        --save '' >"$work/redis.log" 2>&1 &
    proc=$!
    retry "redis SET" 20 0.005 set_ok "$c"
    redis_ms=$(ms "$t0" "$(now)")
    stop
}

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A col
for kind in new again; do
    r='' s='' p=''
    for _ in $(seq "$starts"); do
        if [ "$kind" = new ]; then
            rm -rf "$work/data" "$work/redis"
        fi
        mkdir -p "$work/redis"
        node_start
        redis_start
        r+="$ready_ms " s+="$set_ms " p+="$redis_ms "
    done
    col[$kind]="$(median <<<"$r") $(median <<<"$s") $(median <<<"$p")"
    echo "$kind data dir: node /readyz ms: $r; node SET ms: $s; redis SET ms: $p"
done
echo
echo "| data dir | node to /readyz 200 | node to SET OK | redis-server to SET OK |"
echo "|---|---|---|---|"
for kind in new again; do
    read -r a b c <<<"${col[$kind]}"
    echo "| $kind | $a ms | $b ms | $c ms |"
done
echo "(medians of $starts starts each)"
