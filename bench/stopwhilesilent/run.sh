#!/usr/bin/env bash
# How long a node takes to stop (SIGTERM) while one of its peers is
# silent: a local 3-node cluster (--gossip-fast, 4 shards) under writes
# (redis-benchmark SET, 10 clients, through the third node). Each round
# takes the leader of shard 0 (the victim) and one other node (the silent
# one); stops the silent one with SIGSTOP (its connections stay open and
# nothing answers on them, as on a peer cut off without a reset), waits
# 0.5 s, sends SIGTERM to the victim and times until its process has
# exited; then SIGCONT to the silent node, starts the victim again and
# waits until every shard has three voters and a leader.
#
# With SILENT=both, both other nodes are stopped, and the writes go
# through the victim: no group has a quorum, and the writes under way on
# the victim's client port cannot commit.
#
#   [SILENT=both] bash bench/stopwhilesilent/run.sh [ROUNDS] [NODE_BINARY]   (default 5, built from the tree)
#
# docs/faults.md quotes it.
set -euo pipefail
rounds=${1:-5}
mode=${SILENT:-one}
cd "$(dirname "$0")/../.."
. bench/lib.sh
needs curl python3 redis-benchmark
cluster3 "${2:-}"
form3
writer=
trap 'kill $writer 2>/dev/null || true; cluster3_stop' EXIT

times=()
for r in $(seq "$rounds"); do
    victim=$(check n1 '[sh["leader"] for sh in s["shards"] if sh["id"] == 0][0]')
    others=()
    for n in n1 n2 n3; do [ "$n" = "$victim" ] || others+=("$n"); done
    silent=${others[$((r % 2))]} third=${others[$(((r + 1) % 2))]}
    led=$(check "$third" "sum(sh['leader'] == '$victim' for sh in s['shards'])")
    silenced=("$silent") via=$third
    if [ "$mode" = both ]; then
        silenced=("${others[@]}") via=$victim
    fi
    redis-benchmark -p "${port[$via.client]}" -t set -d 64 -r 100000 -c 10 -n 100000000 -q >/dev/null 2>&1 &
    writer=$!
    for n in "${silenced[@]}"; do kill -STOP "${pid[$n]}"; done
    sleep 0.5 # the victim's requests to the silent nodes under way, unanswered
    t0=$(date +%s%N)
    kill -TERM "${pid[$victim]}"
    rc=0
    wait "${pid[$victim]}" || rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    times+=("$ms")
    echo "round $r: $victim (leader of $led shards) stopped in $ms ms, exit $rc, ${silenced[*]} stopped"
    for n in "${silenced[@]}"; do kill -CONT "${pid[$n]}"; done
    kill "$writer" 2>/dev/null || true
    wait "$writer" 2>/dev/null || true
    start "$victim"
    retry "$victim ready again" 30 0.02 ready "$victim"
    retry "three voters and a leader in every shard" 60 0.02 holds "$third" "$three_voters"
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median %d ms, min %d, max %d, of %d stops\n", a[int((NR+1)/2)], a[1], a[NR], NR}'
