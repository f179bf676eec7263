#!/usr/bin/env bash
# Writes that change nothing, on a local 3-node cluster (4 shards, their
# leaders spread): workers polling an empty queue (RPOP, also pipelined
# 16 deep) and a lock taken already (SET NX), through redis-benchmark
# --cluster -c 50, each
# client on the node that leads its key's shard ({tag}). Prints each row's
# requests per second and the three nodes' CPU per request (user and
# system, from /proc). With a second binary, runs the same against it,
# alternating, for a before and after on this machine.
#
#   bash bench/noopwrites/run.sh [ROUNDS] [OTHER_NODE_BINARY]
#
# Run from the repository's root.
set -euo pipefail
. bench/lib.sh
rounds=${1:-2}
other=${2:-}
needs redis-benchmark redis-cli curl
n=40000
built=$(mktemp -d)
trap 'rm -rf "$built"' EXIT
go build -o "$built/node" ./cmd/node

# measure NAME BINARY: one cluster of BINARY, every row once.
measure() (
    cluster3 "$2"
    form3
    retry "leaders spread" 60 0.2 holds n1 'len(set(sh["leader"] for sh in s["shards"])) == 3'
    local to=${port[n1.client]}
    # The locks, one per node's {tag}, held for good.
    redis-benchmark -p "$to" --cluster -c 3 -n 300 set 'lock:{tag}' holder >/dev/null
    local row args reqs
    for row in "RPOP empty -P 1" "RPOP empty -P 16" "SET NX held -P 1"; do
        case $row in
        "RPOP empty -P 1") args=(-P 1 rpop 'queue:{tag}') reqs=$n ;;
        "RPOP empty -P 16") args=(-P 16 rpop 'queue:{tag}') reqs=$((5 * n)) ;;
        "SET NX held -P 1") args=(-P 1 set 'lock:{tag}' token NX PX 30000) reqs=$n ;;
        esac
        benchrow "$1" "$row" "$reqs" "${pid[n1]}" "${pid[n2]}" "${pid[n3]}" -- -p "$to" --cluster -c 50 "${args[@]}"
    done
)

echo "| build | row | requests/s | CPU us per request, 3 nodes |"
echo "|---|---|---|---|"
for _ in $(seq "$rounds"); do
    measure tree "$built/node"
    if [ -n "$other" ]; then measure other "$other"; fi
done
