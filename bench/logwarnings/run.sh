#!/usr/bin/env bash
# What a local 3-node cluster (--gossip-fast, 4 shards) logs as warnings
# and errors through ordinary operations, none of them a fault: it forms
# (n2 and n3 join n1), takes writes (redis-benchmark SET, 10 clients,
# through n1) while n2 is stopped with SIGTERM and started again (a
# rolling restart's step), and n3 leaves (node leave). Prints the counts
# over the three nodes' logs, then each line with the count of its kind
# (its message and group, without the values).
#
#   bash bench/logwarnings/run.sh [NODE_BINARY]   (default: built from the tree)
#
# docs/faults.md quotes it.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
needs curl python3 redis-benchmark
cluster3 "${1:-}"
form3
redis-benchmark -p "${port[n1.client]}" -t set -n 30000 -c 10 -r 10000 -q >/dev/null 2>&1 &
writer=$!
trap 'kill $writer 2>/dev/null || true; cluster3_stop' EXIT
sleep 1 # the writes under way before the restart
kill -TERM "${pid[n2]}"
wait "${pid[n2]}" || true
start n2 --join "127.0.0.1:${port[n1.gossip]}"
retry "n2 ready after its restart" 30 0.1 ready n2
# The leader balancing gives the restarted node its shards back (the
# transfers whose elections are part of what is counted) before n3 leaves.
retry "n2 leading a shard again" 60 0.1 holds n1 'any(sh["leader"] == "n2" for sh in s["shards"])'
"$node" leave --http "127.0.0.1:${port[n3.http]}" >/dev/null
wait "${pid[n3]}" || true
wait "$writer" || true
warnings=0 errors=0
for n in n1 n2 n3; do
    warnings=$((warnings + $(grep -c 'level=WARN' "$work/$n.log" || true)))
    errors=$((errors + $(grep -c 'level=ERROR' "$work/$n.log" || true)))
done
echo "warnings $warnings, errors $errors"
for n in n1 n2 n3; do
    grep -E 'level=(WARN|ERROR)' "$work/$n.log" |
        sed -E 's/^time=[^ ]+ //; s/ (peer|remote|from|server-id|time|error|last-index|previous-index|node|leader|leader-id|stream|backoff time)=.*//' || true
done | sort | uniq -c | sort -rn
