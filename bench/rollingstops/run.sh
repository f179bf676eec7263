#!/usr/bin/env bash
# Rolling SIGTERM stops of a local 3-node cluster under writes: how long
# each orderly stop takes, whether one hangs, and how long the cluster
# takes to be whole again after the restart.
#
#   bash bench/rollingstops/run.sh [ROUNDS]      (default 20)
#   SIGNAL=KILL bash bench/rollingstops/run.sh   (kill -9 instead: no
#                                                  hand-over, no clean stop)
#   WIPE=1 SIGNAL=KILL bash ...                    (and its data dir lost:
#                                                  it restarts empty, joins
#                                                  a peer, and syncs)
#   DAMAGE=1 bash ...                              (every table of the
#                                                  stopped node's shards gets
#                                                  a byte flipped, bit rot: it
#                                                  restarts, a read of every
#                                                  key meets the damage, and
#                                                  each damaged shard is
#                                                  rebuilt from its group)
#   DAMAGE=raftlog bash ...                        (every table of its Raft
#                                                  log store instead: it
#                                                  restarts joining a peer,
#                                                  meets the damage, starts
#                                                  again and rebuilds the
#                                                  store, keeping its data;
#                                                  one round: a second damage
#                                                  within 10 minutes of a
#                                                  rebuild is refused)
#   FOUND=1 ...                                    (the three found the
#                                                  cluster together with
#                                                  --bootstrap-expect 3, each
#                                                  joining the other two, and
#                                                  restart with the same flags:
#                                                  with WIPE=1, n1, the
#                                                  founder, rejoins rather
#                                                  than found again)
#   BIN=path/to/node bash ...                      (that binary, not one
#                                                  built from the tree)
#
# Three cmd/node processes on loopback (ports 21379-23946, data under
# $WORK, default a new temp dir), --gossip-fast, 4 shards. Each round stops
# every node in turn with SIGTERM while redis-benchmark writes through a
# peer (-c 20) and through the stopping node (-c 10), restarts it, and
# waits until the peer sees three voters and a leader in every shard. A
# stop still running after 3 s gets SIGQUIT (its goroutines go to its
# log) and ends the run with exit 1. Prints each stop's time, then a
# summary: each shard's data checksum, equal on the three nodes (or exit
# 1), the slowest stops and returns (restart until every shard has
# three voters and a leader again, seen from a peer, and the restarted
# node is ready), actors killed on
# their shutdown time, the hand-overs that failed, and the votes and
# pre-votes refused by groups that started on empty stores (WIPE: the
# restarted node before it caught up). Needs redis-benchmark, curl and
# python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
ROUNDS=${1:-20}
SIGNAL=${SIGNAL:-TERM}
WIPE=${WIPE:-}
FOUND=${FOUND:-}
DAMAGE=${DAMAGE:-}
WORK=${WORK:-$(mktemp -d)}
BIN=${BIN:-}
if [ -z "$BIN" ]; then
  BIN=$WORK/node
  go build -o "$BIN" ./cmd/node
fi
echo "work dir $WORK"
declare -A PID
start() { # name index [index of the node to join: default n1, none for n1]
  local args=(--name "$1" --data-dir "$WORK/$1" --client-addr "127.0.0.1:2${2}379" --cluster-addr "127.0.0.1:2${2}380"
    --http-addr "127.0.0.1:2${2}381" --gossip-addr "127.0.0.1:2${2}946" --gossip-fast --log-level debug)
  local join=${3:-1}
  if [ -n "$FOUND" ]; then
    local seeds=()
    for j in 1 2 3; do if [ "$j" != "$2" ]; then seeds+=("127.0.0.1:2${j}946"); fi; done
    args+=(--join "$(IFS=,; echo "${seeds[*]}")" --bootstrap-expect 3)
  elif [ "$join" != "$2" ]; then args+=(--join "127.0.0.1:2${join}946"); fi
  "$BIN" "${args[@]}" >>"$WORK/$1.log" 2>&1 &
  PID[$1]=$!
}
voters() { # every shard has three voters and a leader, seen from node $1
  for _ in $(seq 300); do
    if curl -sf "127.0.0.1:2${1}381/v1/status" 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
ok = d["shards"] and all(s.get("leader") and sum(m["suffrage"] == "voter" for m in s["members"]) == 3 for s in d["shards"])
sys.exit(0 if ok else 1)' 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "no three voters with a leader in every shard, seen from n$1, after 60 s" >&2
  return 1
}
ready() { # node $1 answers /readyz with 200: every shard has a leader and it applied what was committed
  for _ in $(seq 300); do
    if curl -sf "127.0.0.1:2${1}381/readyz" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "n$1 not ready after 60 s" >&2
  return 1
}
same() { # every shard's replicas hold the same data: equal checksums at an equal applied index
  for _ in $(seq 300); do
    if python3 - <<'PY'
import json, sys, urllib.request
sums = [json.load(urllib.request.urlopen(f"http://127.0.0.1:2{i}381/v1/checksums", timeout=10)) for i in (1, 2, 3)]
shards = list(zip(*sums))
if any(len({(c["applied_index"], c.get("error")) for c in s}) != 1 for s in shards):
    sys.exit(1)  # still applying (or a shard answered an error): ask again
bad = [s for s in shards if len({c["crc32c"] for c in s}) != 1]
for s in bad:
    print("shard", s[0]["shard"], "differs at applied index", s[0]["applied_index"], [c["crc32c"] for c in s], file=sys.stderr)
for s in shards if not bad else []:
    print("shard", s[0]["shard"], "applied", s[0]["applied_index"], "keys", s[0]["keys"], "crc32c", s[0]["crc32c"], "on all three")
sys.exit(2 if bad else 0)
PY
    then return 0; elif [ $? = 2 ]; then return 1; fi
    sleep 0.2
  done
  echo "the replicas never stood at the same applied index in 60 s" >&2
  return 1
}
damage() { # flip the byte at 2/5 of every table of node $1's shard stores (or Raft log store); print how many
  local tables="$WORK/$1/shards/*/kv/*.sst"
  if [ "$DAMAGE" = raftlog ]; then tables="$WORK/$1/raftlog/db/*.sst"; fi
  python3 - "$tables" <<'PY'
import glob, sys
n = 0
for f in glob.glob(sys.argv[1]):
    b = bytearray(open(f, "rb").read())
    b[len(b) * 2 // 5] ^= 0xFF
    open(f, "wb").write(b)
    n += 1
print(n)
PY
}
stopall() {
  for n in n1 n2 n3; do kill -TERM "${PID[$n]}" 2>/dev/null || true; done
  pkill -P $$ redis-benchmark 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stopall EXIT
if [ -n "$FOUND" ]; then
  start n3 3
  start n2 2
  start n1 1
else
  start n1 1
  ready 1
  start n2 2
  start n3 3
fi
voters 1
for round in $(seq "$ROUNDS"); do
  for i in 1 2 3; do
    o=$((i % 3 + 1))
    redis-benchmark -p "2${o}379" -t set -n 100000000 -c 20 -d 64 -r 100000 -q >/dev/null 2>&1 &
    b1=$!
    redis-benchmark -p "2${i}379" -t set,get -n 100000000 -c 10 -d 64 -r 100000 -q >/dev/null 2>&1 &
    b2=$!
    sleep 1
    t0=$(date +%s%N)
    kill "-$SIGNAL" "${PID[n$i]}"
    while kill -0 "${PID[n$i]}" 2>/dev/null; do
      if (( $(date +%s%N) - t0 > 3000000000 )); then
        kill -QUIT "${PID[n$i]}"
        echo "round $round n$i: still stopping after 3 s: SIGQUIT, goroutines in $WORK/n$i.log" >&2
        kill "$b1" "$b2" 2>/dev/null || true
        exit 1
      fi
      sleep 0.05
    done
    t1=$(date +%s%N)
    if [ -n "$WIPE" ]; then
      rm -rf "${WORK:?}/n$i" # a lost disk: the node comes back empty and joins a peer
      start "n$i" "$i" "$o" # (FOUND: with its own flags)
    elif [ "$DAMAGE" = raftlog ]; then
      echo "round $round n$i: $(damage "n$i") tables damaged" >>"$WORK/damage.txt"
      start "n$i" "$i" "$o" # with --join, n1 too: a node without it cannot rebuild the store
    elif [ -n "$DAMAGE" ]; then
      echo "round $round n$i: $(damage "n$i") tables damaged" >>"$WORK/damage.txt"
      start "n$i" "$i"
      # A read of every key of every shard there (answered with an error
      # for a damaged one), once the node answers.
      for _ in $(seq 300); do curl -s -o /dev/null "127.0.0.1:2${i}381/v1/checksums" && break; sleep 0.2; done
    else
      start "n$i" "$i"
    fi
    voters "$o"
    ready "$i"
    t2=$(date +%s%N)
    printf 'round %d n%d stop %d ms back %d ms\n' "$round" "$i" $(( (t1 - t0) / 1000000 )) $(( (t2 - t1) / 1000000 )) | tee -a "$WORK/stops.txt"
    kill "$b1" "$b2" 2>/dev/null || true
    wait "$b1" "$b2" 2>/dev/null || true
  done
done
echo "replicas after the last round:"
same
echo "slowest stops:"
sort -k5 -n -r "$WORK/stops.txt" | head -3
echo "slowest returns:"
sort -k8 -n -r "$WORK/stops.txt" | head -3
echo "actors killed on their shutdown time: $(cat "$WORK"/n?.log | grep -c CHILD_KILLED || true)"
echo "hand-overs: $(cat "$WORK"/n?.log | grep -c 'leadership handed over before stopping' || true) done, $(cat "$WORK"/n?.log | grep -c 'leadership not handed over' || true) failed"
echo "votes and pre-votes refused by groups that started on empty stores: $(cat "$WORK"/n?.log | grep -c 'request since this server started on empty stores' || true)"
if [ "$DAMAGE" = raftlog ]; then
  echo "tables damaged: $(awk '{n += $4} END {print n}' "$WORK/damage.txt"); Raft log stores rebuilt: $(cat "$WORK"/n?.log | grep -c 'Raft log store damaged: rebuilding it empty' || true); nodes stopped by a store failure: $(cat "$WORK"/n?.log | grep -c 'a store failed; the node stops' || true); started again in the process: $(cat "$WORK"/n?.log | grep -c 'starting again, to rebuild' || true)"
elif [ -n "$DAMAGE" ]; then
  echo "tables damaged: $(awk '{n += $4} END {print n}' "$WORK/damage.txt"); shard stores rebuilt from their groups: $(cat "$WORK"/n?.log | grep -c 'shard store damaged: emptying it' || true); nodes stopped by a store failure: $(cat "$WORK"/n?.log | grep -c 'a store failed; the node stops' || true)"
fi
if [ -n "$FOUND" ]; then
  founded=$(cat "$WORK"/n?.log | grep -c 'founded the cluster' || true)
  echo "clusters founded: $founded"
  if [ "$founded" != 1 ]; then echo "founded $founded times, want once" >&2; exit 1; fi
fi
