#!/usr/bin/env bash
# Random picks of a big set and a big hash (100000 elements each) on a
# standalone node: SRANDMEMBER and HRANDFIELD, with and without a count,
# through redis-benchmark -c 10. Prints each row's requests per second and
# the node's CPU per request (user and system, from /proc). With a second
# binary, runs the same against it, alternating, for a before and after
# on this machine.
#
#   bash bench/randompicks/run.sh [ROUNDS] [OTHER_NODE_BINARY]
#
# Run from the repository's root.
set -euo pipefail
. bench/lib.sh
rounds=${1:-2}
other=${2:-}
needs redis-benchmark redis-cli curl
n=${RANDOMPICKS_N:-3000}
built=$(mktemp -d)
trap 'rm -rf "$built"' EXIT
go build -o "$built/node" ./cmd/node
# The set and the hash, as RESP for redis-cli --pipe: 1000 elements a command.
python3 -c "
import sys
def cmd(args):
    sys.stdout.write('*%d\r\n' % len(args) + ''.join('\$%d\r\n%s\r\n' % (len(a), a) for a in args))
for i in range(0, 100000, 1000):
    cmd(['SADD', 'bigset'] + ['member:%06d' % j for j in range(i, i + 1000)])
    cmd(['HSET', 'bighash'] + [x for j in range(i, i + 1000) for x in ('field:%06d' % j, 'value:%06d' % j)])
" >"$built/fill.resp"

# measure NAME BINARY: one node of BINARY, every row once.
measure() (
    cluster3 "$2"
    start n1
    retry "n1 ready" 10 0.02 ready n1
    local to=${port[n1.client]}
    redis-cli -p "$to" --pipe <"$built/fill.resp" >/dev/null
    local row args
    for row in "SRANDMEMBER" "HRANDFIELD" "SRANDMEMBER 10" "HRANDFIELD 5 WITHVALUES"; do
        case $row in
        "SRANDMEMBER") args=(srandmember bigset) ;;
        "HRANDFIELD") args=(hrandfield bighash) ;;
        "SRANDMEMBER 10") args=(srandmember bigset 10) ;;
        "HRANDFIELD 5 WITHVALUES") args=(hrandfield bighash 5 withvalues) ;;
        esac
        benchrow "$1" "$row" "$n" "${pid[n1]}" -- -p "$to" -c 10 "${args[@]}"
    done
)

echo "| build | row | requests/s | node CPU us per request |"
echo "|---|---|---|---|"
for _ in $(seq "$rounds"); do
    measure tree "$built/node"
    if [ -n "$other" ]; then measure other "$other"; fi
done
