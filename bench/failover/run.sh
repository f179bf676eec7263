#!/usr/bin/env bash
# How long the shards a killed node led have no leader: a local 3-node
# cluster (--gossip-fast, 4 shards); each round kills the leader of shard
# 0 with SIGKILL and times, from the kill, until another node's
# /v1/status shows every shard led by a live node; then starts the killed
# node again and waits for its /readyz before the next round.
#
#   bash bench/failover/run.sh [ROUNDS] [NODE_BINARY]   (default 5, built from the tree)
#
# The times include the status polls (about 20 ms each). README ("The
# cluster") and docs/faults.md quote it.
set -euo pipefail
rounds=${1:-5}
cd "$(dirname "$0")/../.."
. bench/lib.sh
needs curl python3
cluster3 "${2:-}"

form3

times=()
for r in $(seq "$rounds"); do
    victim=$(check n1 '[sh["leader"] for sh in s["shards"] if sh["id"] == 0][0]')
    other=n1
    [ "$victim" = n1 ] && other=n2
    led=$(check "$other" "sum(sh['leader'] == '$victim' for sh in s['shards'])")
    t0=$(date +%s%N)
    kill -9 "${pid[$victim]}"
    wait "${pid[$victim]}" 2>/dev/null || true
    retry "a live leader in every shard" 30 0.02 holds "$other" "all(sh['leader'] not in ('', '$victim') for sh in s['shards'])"
    ms=$((($(date +%s%N) - t0) / 1000000))
    times+=("$ms")
    echo "round $r: killed $victim (leader of $led shards): every shard led again after $ms ms"
    start "$victim" --join "127.0.0.1:${port[$other.gossip]}"
    retry "$victim ready again" 30 0.02 ready "$victim"
    retry "three voters and a leader in every shard" 30 0.02 holds "$other" "$three_voters"
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median %d ms, min %d, max %d, of %d kills\n", a[int((NR+1)/2)], a[1], a[NR], NR}'
grep -h "process is gone" "$work"/n?.log | awk 'END {print NR " elections started at once for a leader whose port refused connections"}'
