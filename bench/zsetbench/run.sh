#!/usr/bin/env bash
# A leaderboard of 100000 members (scores 0 to 99999, members
# m:000000000000 to m:000000099999, as redis-benchmark's __rand_int__ with
# -r 100000 writes them): writes that add or move a member, and reads of a
# rank, a page, a count and a random member; and the same members at one
# score, read by lex. Through redis-benchmark (-c 50 -P 1), against
# a standalone coppice node and against redis-server with appendfsync
# always, in one run; with OLD=path/to/node, also against that build, for
# a before and after on this machine.
#
#   bash bench/zsetbench/run.sh [REQUESTS]     (default 5000 a row)
#
# Run from the repository's root. Prints a markdown table of requests per
# second and each node's ratio to Redis's.
set -euo pipefail
. bench/lib.sh
n=${1:-5000}
work=$(mktemp -d)
declare -a pids=()
stop() {
    local p
    exec 2>/dev/null # not the shell's word on each server killed
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap stop EXIT
go build -o "$work/node" ./cmd/node

# The servers: name, then port.
declare -a names=() ports=()
serve_redis() {
    local p
    p=$(freeport)
    redis-server --port "$p" --save '' --appendonly yes --appendfsync always --dir "$work" >"$work/redis.log" 2>&1 &
    pids+=($!)
    names+=(redis) ports+=("$p")
}
serve_node() { # serve_node NAME BINARY
    local p
    p=$(freeport)
    "$2" --data-dir "$work/$1" --client-addr "127.0.0.1:$p" --cluster-addr "127.0.0.1:$(freeport)" \
        --gossip-addr "127.0.0.1:$(freeport)" --http-addr "127.0.0.1:$(freeport)" >"$work/$1.log" 2>&1 &
    pids+=($!)
    names+=("$1") ports+=("$p")
}
serve_redis
serve_node coppice "$work/node"
if [ -n "${OLD:-}" ]; then serve_node old "$OLD"; fi

# The sets, 100 ZADDs of 1000 members each, inline: lb, and ac, the same
# members all of score 0 (an autocomplete index, read by lex).
python3 - >"$work/fill" <<'PY'
for key, score in (("lb", lambda i: i), ("ac", lambda i: 0)):
    for c in range(100):
        print("ZADD %s " % key + " ".join("%d m:%012d" % (score(i), i) for i in range(c * 1000, c * 1000 + 1000)))
PY
for i in "${!ports[@]}"; do
    retry "${names[$i]} answers" 30 0.1 redis-cli -p "${ports[$i]}" PING >/dev/null
    redis-cli -p "${ports[$i]}" DEL lb ac >/dev/null
    redis-cli -p "${ports[$i]}" --pipe <"$work/fill" >/dev/null
    for key in lb ac; do
        got=$(redis-cli -p "${ports[$i]}" ZCARD "$key")
        if [ "$got" != 100000 ]; then
            echo "${names[$i]}: ZCARD $key is $got after the fill, want 100000" >&2
            exit 1
        fi
    done
done

rps() { # rps PORT COMMAND...: redis-benchmark's requests per second
    local to=$1
    shift
    timeout 600 redis-benchmark -p "$to" -q -n "$n" -c 50 -P 1 -r 100000 "$@" </dev/null |
        tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1
}

header="| command (set of 100000) |"
rule="|---|"
for s in "${names[@]}"; do header+=" $s rps |"; rule+="---|"; done
for s in "${names[@]:1}"; do header+=" $s / redis |"; rule+="---|"; done
echo "$header"
echo "$rule"
rows=(
    "ZINCRBY lb 1 m:__rand_int__"
    "ZADD lb __rand_int__ m:__rand_int__"
    "ZRANK lb m:__rand_int__"
    "ZREVRANK lb m:__rand_int__"
    "ZRANGE lb 50000 50009"
    "ZREVRANGE lb 0 9"
    "ZCOUNT lb 1000 99000"
    "ZRANGEBYSCORE lb -inf +inf LIMIT 50000 10"
    "ZRANDMEMBER lb"
    "ZRANGEBYLEX ac [m:000000090000 + LIMIT 0 10"
    "ZREVRANGEBYLEX ac [m:000000010000 - LIMIT 0 10"
    "ZLEXCOUNT ac [m:000000010000 (m:000000090000"
)
for row in "${rows[@]}"; do
    line="| \`$row\` |"
    declare -a got=()
    for i in "${!ports[@]}"; do
        # shellcheck disable=SC2086 # the row is words
        r=$(rps "${ports[$i]}" $row)
        if [ -z "$r" ]; then
            echo "${names[$i]}: redis-benchmark gave no rate for $row" >&2
            exit 1
        fi
        got+=("$r")
        line+=" $r |"
    done
    for r in "${got[@]:1}"; do line+=" $(python3 -c "print('%.2fx' % ($r / ${got[0]}))") |"; done
    echo "$line"
done
