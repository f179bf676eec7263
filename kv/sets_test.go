package kv

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/coppice-kv/coppice/messages"
)

// A set's members are field keys: deleting, overwriting, renaming,
// copying or expiring a set leaves none behind, and SCAN's TYPE knows it.
// (Replies are Redis's: testdata/diff/sets.txt.)
func TestSetsLeaveNothingBehind(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		args := []string{"SADD", "s"}
		for i := range 2 * smallHash {
			args = append(args, "m"+strconv.Itoa(i))
		}
		h.is(":"+strconv.Itoa(2*smallHash), args...)
		h.is(":3", "SADD", "small", "a", "b", "c")
		h.is("+set", "TYPE", "s")
		h.is(`["0" ["small"]]`, "SCAN", "0", "MATCH", "sm*", "TYPE", "set")
		h.is(":1", "COPY", "s", "s2")
		h.is("+OK", "RENAME", "s2", "s3")
		h.is(":"+strconv.Itoa(2*smallHash), "SCARD", "s3")
		h.is("+OK", "SET", "small", "now a string") // over a set
		h.is(":1", "SADD", "x", "m")
		h.is(":1", "HSET", "x2", "f", "v")
		h.is(":1", "SUNIONSTORE", "x2", "x") // a set over a hash
		h.is("+set", "TYPE", "x2")
		h.is(":4", "DEL", "s", "s3", "small", "x")
		at := strconv.FormatInt(h.now+1000, 10)
		h.is(":1", "PEXPIREAT", "x2", at)
		if n, err := ExpireDue(h.w, h.now+2000, 10); err != nil || n != 1 {
			t.Fatalf("ExpireDue: %d, %v", n, err)
		}
		if d := dump(t, h.w); d != "" {
			t.Errorf("left in the store: %s", d)
		}
	})
}

// SPOP's choice is a function of the command (its time and key) and the
// set, so every replica that applies it pops the same members; another
// time may pop others.
func TestSPopIsTheSameOnEveryReplica(t *testing.T) {
	pop := func(now int64) string {
		w := newMemStore()
		add := [][]byte{[]byte("SADD"), []byte("s")}
		for i := range 50 {
			add = append(add, []byte(strconv.Itoa(i)))
		}
		if r := Exec(w, &messages.Command{Args: add, NowMs: now}); r.GetInteger() != 50 {
			t.Fatalf("SADD: %v", r)
		}
		r := Exec(w, &messages.Command{Args: [][]byte{[]byte("SPOP"), []byte("s"), []byte("5")}, NowMs: now})
		return render(r)
	}
	a, b := pop(1_000_000), pop(1_000_000)
	if a != b {
		t.Fatalf("two replicas popped %s and %s", a, b)
	}
	for now := int64(1_000_001); pop(now) == a; now++ {
		if now > 1_000_100 {
			t.Fatalf("SPOP pops %s at every time", a)
		}
	}
}

// SScan pages through a set as HScan through a hash: members in order,
// the empty one first, each once; a hash is WRONGTYPE to it.
func TestSScanPages(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		args := []string{"SADD", "s", ""}
		for i := range smallScanHash + 2 {
			args = append(args, fmt.Sprintf("m%03d", i))
		}
		h.is(":"+strconv.Itoa(smallScanHash+3), args...)
		var got []string
		var after []byte
		for calls := 0; ; calls++ {
			if calls > 1000 {
				t.Fatal("SScan does not end")
			}
			members, next, wrong, err := SScan(h.w, []byte("s"), after, 1, nil, h.now)
			if err != nil || wrong != nil || len(members) != 1 {
				t.Fatalf("call %d after %q: %q, %v, %v", calls, after, members, wrong, err)
			}
			got = append(got, string(members[0]))
			if next == nil {
				break
			}
			after = next
		}
		if len(got) != smallScanHash+3 || got[0] != "" || got[1] != "m000" {
			t.Fatalf("%d members: %q ...", len(got), got[:3])
		}
		h.is(":1", "HSET", "h", "f", "v")
		if _, _, wrong, _ := SScan(h.w, []byte("h"), nil, 5, nil, h.now); wrong != errWrongType {
			t.Fatalf("a hash: %v", wrong)
		}
		if _, _, wrong, _ := HScan(h.w, []byte("s"), nil, 5, nil, h.now); wrong != errWrongType {
			t.Fatalf("HScan of a set: %v", wrong)
		}
	})
}

// SPOP's choice is part of the log's meaning: every replica, of every
// version, must pop the same members. It is the first count of a
// math/rand/v2 shuffle of the members in order, seeded by the command's
// time and the key, as it was when SPOP read the whole set.
func TestSPopChoosesAsTheShuffleOfAllMembers(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		for _, c := range []struct{ n, count int }{{2, 1}, {5, 1}, {5, 4}, {130, 1}, {130, 7}, {1000, 1}, {1000, 3}, {1000, 300}, {1000, 999}} {
			key := fmt.Sprintf("s%d-%d", c.n, c.count)
			args := []string{"SADD", key}
			for i := range c.n {
				args = append(args, fmt.Sprintf("m%x", i*7919)) // not in insertion order
			}
			h.do(args...)
			for round := range 3 {
				h.now += 17
				var members []string
				for _, it := range h.do("SMEMBERS", key).GetSet().GetItems() {
					members = append(members, string(it.GetBulk()))
				}
				slices.Sort(members)
				f := fnv.New64a()
				f.Write([]byte(key))
				rng := rand.New(rand.NewPCG(uint64(h.now), f.Sum64()))
				rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
				var got []string
				for _, it := range h.do("SPOP", key, fmt.Sprint(c.count)).GetSet().GetItems() {
					got = append(got, string(it.GetBulk()))
				}
				if want := members[:c.count]; !slices.Equal(got, want) {
					t.Fatalf("%s, round %d: SPOP %d popped %q, the shuffle %q", key, round, c.count, got, want)
				}
				h.do(append([]string{"SADD", key}, got...)...)
			}
		}
	})
}
