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
for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
work=$(mktemp -d)
declare -A pid port
stopall() {
    for n in "${!pid[@]}"; do kill -9 "${pid[$n]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap stopall EXIT
node=${2:-}
if [ -z "$node" ]; then
    node=$work/node
    go build -o "$node" ./cmd/node
fi
for n in n1 n2 n3; do
    for k in client cluster gossip http; do port[$n.$k]=$(freeport); done
done

# start NAME [FLAGS...]: starts node NAME on its ports and data dir.
start() {
    local n=$1
    shift
    "$node" --name "$n" --data-dir "$work/$n" --gossip-fast \
        --client-addr "127.0.0.1:${port[$n.client]}" --cluster-addr "127.0.0.1:${port[$n.cluster]}" \
        --gossip-addr "127.0.0.1:${port[$n.gossip]}" --http-addr "127.0.0.1:${port[$n.http]}" \
        "$@" >>"$work/$n.log" 2>&1 &
    pid[$n]=$!
}
status() { curl -s -m 1 "http://127.0.0.1:${port[$1.http]}/v1/status"; }
# check NAME PYTHON: runs PYTHON on NAME's status (as s); prints its value.
check() { status "$1" | python3 -c "import json, sys; s = json.load(sys.stdin); print($2)" 2>/dev/null || true; }
# holds NAME PYTHON: whether check prints True.
holds() { [ "$(check "$1" "$2")" = True ]; }
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port[$1.http]}/readyz")" = 200 ]; }

start n1
retry "n1 ready" 10 0.02 ready n1
start n2 --join "127.0.0.1:${port[n1.gossip]}"
start n3 --join "127.0.0.1:${port[n1.gossip]}"
retry "three voters in every shard" 60 0.02 holds n1 'all(sum(m["suffrage"] == "voter" for m in sh["members"]) == 3 and sh["leader"] for sh in s["shards"])'

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
    retry "three voters and a leader in every shard" 30 0.02 holds "$other" 'all(sum(m["suffrage"] == "voter" for m in sh["members"]) == 3 and sh["leader"] for sh in s["shards"])'
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median %d ms, min %d, max %d, of %d kills\n", a[int((NR+1)/2)], a[1], a[NR], NR}'
grep -h "process is gone" "$work"/n?.log | awk 'END {print NR " elections started at once for a leader whose port refused connections"}'
