#!/usr/bin/env bash
# How long a whole cluster takes to serve again once all its nodes are
# started together: a local 3-node cluster (--gossip-fast, 4 shards) is
# formed from --join and given a key; then, each round, all three nodes
# are stopped (SIGNAL, default KILL: a power cut; TERM: a maintenance
# stop) and started again at once on their data dirs, and the time from
# their start until every node's /readyz answers 200 (every shard led and
# applied) is taken, and until a GET through each node returns the key.
#
#   SIGNAL=KILL bash bench/clusterstart/run.sh [ROUNDS] [NODE_BINARY]   (default 5, built from the tree)
#
# README ("The cluster") and docs/faults.md quote it.
set -euo pipefail
rounds=${1:-5}
signal=${SIGNAL:-KILL}
cd "$(dirname "$0")/../.."
. bench/lib.sh
needs curl redis-cli python3
cluster3 "${2:-}"
nodes=(n1 n2 n3)
allready() { for n in "${nodes[@]}"; do ready "$n" || return 1; done; }
allget() { for n in "${nodes[@]}"; do [ "$(redis-cli -p "${port[$n.client]}" get clusterstart 2>/dev/null)" = v ] || return 1; done; }
now() { date +%s%N; }
ms() { echo $((($2 - $1) / 1000000)); }

form3
[ "$(redis-cli -p "${port[n1.client]}" set clusterstart v)" = OK ]

readys=() gets=()
for r in $(seq "$rounds"); do
    for n in "${nodes[@]}"; do kill -s "$signal" "${pid[$n]}"; done
    for n in "${nodes[@]}"; do wait "${pid[$n]}" 2>/dev/null || true; done
    t0=$(now)
    start n1 --join "127.0.0.1:${port[n2.gossip]}"
    start n2 --join "127.0.0.1:${port[n1.gossip]}"
    start n3 --join "127.0.0.1:${port[n1.gossip]}"
    retry "every node ready" 30 0.005 allready
    readys+=("$(ms "$t0" "$(now)")")
    retry "the key read through every node" 30 0.005 allget
    gets+=("$(ms "$t0" "$(now)")")
    echo "round $r: every node ready after ${readys[-1]} ms, the key read through each after ${gets[-1]} ms"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "median %d ms, min %d, max %d", a[int((NR+1)/2)], a[1], a[NR]}'; }
echo "SIGNAL=$signal, $rounds rounds: every node ready: $(median "${readys[@]}"); the key through each: $(median "${gets[@]}")"
grep -h "rejecting pre-vote request since we have a leader" "$work"/n?.log | awk 'END {print NR " pre-votes refused for a live leader"}'
