#!/usr/bin/env bash
# Big read replies on a standalone node (4 shards): LRANGE of 100 and 600
# elements of 64 bytes (redis-benchmark's lrange_100 and lrange_600),
# HGETALL of a hash of 100 fields, SMEMBERS of a set of 100 and ZRANGE of
# a sorted set of 100, each through redis-benchmark -c 50. Prints each
# row's requests per second and the node's CPU per request (user and
# system, from /proc). With a second binary, runs the same against it,
# alternating, for a before and after on this machine.
#
#   bash bench/bigreplies/run.sh [ROUNDS] [OTHER_NODE_BINARY]
#
# Run from the repository's root.
set -euo pipefail
. bench/lib.sh
rounds=${1:-2}
other=${2:-}
needs redis-benchmark redis-cli curl
n=${BIGREPLIES_N:-30000}
built=$(mktemp -d)
trap 'rm -rf "$built"' EXIT
go build -o "$built/node" ./cmd/node

# measure NAME BINARY: one node of BINARY, every row once.
measure() (
    cluster3 "$2"
    start n1
    retry "n1 ready" 10 0.02 ready n1
    local to=${port[n1.client]} i list=() hash=() set=() zset=()
    for i in $(seq 0 599); do list+=("$(printf '%064d' "$i")"); done
    for i in $(seq 0 99); do
        hash+=("field:$i" "$(printf '%064d' "$i")")
        set+=("member:$i")
        zset+=("$i" "member:$i")
    done
    redis-cli -p "$to" rpush list "${list[@]}" >/dev/null
    redis-cli -p "$to" hset hash "${hash[@]}" >/dev/null
    redis-cli -p "$to" sadd set "${set[@]}" >/dev/null
    redis-cli -p "$to" zadd zset "${zset[@]}" >/dev/null
    local row args
    for row in "LRANGE 100" "LRANGE 600" "HGETALL 100" "SMEMBERS 100" "ZRANGE 100"; do
        case $row in
        "LRANGE 100") args=(lrange list 0 99) ;;
        "LRANGE 600") args=(lrange list 0 599) ;;
        "HGETALL 100") args=(hgetall hash) ;;
        "SMEMBERS 100") args=(smembers set) ;;
        "ZRANGE 100") args=(zrange zset 0 -1) ;;
        esac
        benchrow "$1" "$row" "$n" "${pid[n1]}" -- -p "$to" -c 50 "${args[@]}"
    done
)

echo "| build | row | requests/s | node CPU us per request |"
echo "|---|---|---|---|"
for _ in $(seq "$rounds"); do
    measure tree "$built/node"
    if [ -n "$other" ]; then measure other "$other"; fi
done
