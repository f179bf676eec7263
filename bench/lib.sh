# shellcheck shell=bash
# Helpers for the bench scripts, which source it from the repository's
# root: . bench/lib.sh

# python3 runs the interpreter itself: the python3 a version manager puts
# first on the PATH may be a shim (pyenv's costs about 0.3 s a call), which
# the scripts' timed status polls would count.
PYTHON3=$(command python3 -c 'import sys; print(sys.executable)')
python3() { "$PYTHON3" "$@"; }

# freeport prints a free TCP port on loopback.
freeport() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# retry WHAT SECONDS INTERVAL CMD...: runs CMD every INTERVAL seconds until
# it succeeds; if it has not within SECONDS, says so, naming WHAT, and
# exits 1.
retry() {
    local what=$1 secs=$2 every=$3
    shift 3
    local deadline=$(($(date +%s%N) + secs * 1000000000))
    until "$@"; do
        if [ "$(date +%s%N)" -ge "$deadline" ]; then
            echo "$what: not within $secs s" >&2
            exit 1
        fi
        sleep "$every"
    done
}

# cluster3 [NODE_BINARY]: for the scripts that run a local 3-node cluster:
# a work dir ($work; at exit every node is killed and it is removed), the
# node binary ($node: the one given, or one built from the tree), free
# loopback ports for n1, n2, n3 (port[NAME.client|cluster|gossip|http]),
# and the functions below.
cluster3() {
    work=$(mktemp -d)
    declare -gA pid port
    trap cluster3_stop EXIT
    node=${1:-}
    if [ -z "$node" ]; then
        node=$work/node
        go build -o "$node" ./cmd/node
    fi
    local n k
    for n in n1 n2 n3; do
        for k in client cluster gossip http; do port[$n.$k]=$(freeport); done
    done
}

cluster3_stop() {
    local n
    for n in "${!pid[@]}"; do kill -9 "${pid[$n]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}

# start NAME [FLAGS...]: starts node NAME on its ports and data dir
# (--gossip-fast), in the background (pid[NAME]; log $work/NAME.log).
start() {
    local n=$1
    shift
    "$node" --name "$n" --data-dir "$work/$n" --gossip-fast \
        --client-addr "127.0.0.1:${port[$n.client]}" --cluster-addr "127.0.0.1:${port[$n.cluster]}" \
        --gossip-addr "127.0.0.1:${port[$n.gossip]}" --http-addr "127.0.0.1:${port[$n.http]}" \
        "$@" >>"$work/$n.log" 2>&1 &
    pid[$n]=$!
}

# ready NAME: whether node NAME's /readyz answers 200.
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port[$1.http]}/readyz")" = 200 ]; }
status() { curl -s -m 1 "http://127.0.0.1:${port[$1.http]}/v1/status"; }
# check NAME PYTHON: runs PYTHON on NAME's status (as s); prints its value.
check() { status "$1" | python3 -c "import json, sys; s = json.load(sys.stdin); print($2)" 2>/dev/null || true; }
# holds NAME PYTHON: whether check prints True.
holds() { [ "$(check "$1" "$2")" = True ]; }

# needs TOOL...: exits 1, naming it, if a TOOL is not on the PATH.
needs() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 1; }
    done
}

# three_voters (for holds): every shard has three voters and a leader.
# shellcheck disable=SC2034 # used by the scripts that source this file
three_voters='all(sum(m["suffrage"] == "voter" for m in sh["members"]) == 3 and sh["leader"] for sh in s["shards"])'

# form3: starts n1, then n2 and n3 joining it, and waits until every
# shard has three voters and a leader.
form3() {
    start n1
    retry "n1 ready" 10 0.02 ready n1
    start n2 --join "127.0.0.1:${port[n1.gossip]}"
    start n3 --join "127.0.0.1:${port[n1.gossip]}"
    retry "three voters in every shard" 60 0.02 holds n1 "$three_voters"
}

# cpu PID...: the processes' user and system time together, in clock ticks.
cpu() {
    local t=0 p
    for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$t"
}

# benchrow BUILD ROW REQUESTS PID... -- ARGS...: runs redis-benchmark -q
# -n REQUESTS ARGS (bounded to 10 minutes) and prints a table row: BUILD,
# ROW, its requests per second and the CPU the processes PID... spent per
# request, in microseconds.
benchrow() {
    local build=$1 row=$2 reqs=$3 pids=() before rps ticks
    shift 3
    while [ "$1" != -- ]; do pids+=("$1"); shift; done
    shift
    before=$(cpu "${pids[@]}")
    rps=$(timeout 600 redis-benchmark -q -n "$reqs" "$@" </dev/null |
        tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
    ticks=$(($(cpu "${pids[@]}") - before))
    python3 -c "print('| $build | $row | $rps | %.1f |' % ($ticks * 1e6 / $(getconf CLK_TCK) / $reqs))"
}
