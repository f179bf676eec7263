package kv

import (
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
