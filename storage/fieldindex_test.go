package storage

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/hashicorp/raft"
)

// Random picks of big sets and hashes through a shard's field index
// follow every write: members added, removed, popped, moved, renamed, the
// keys deleted, expired and flushed. Every pick is a member of the set as
// it is (a hash's with its value as it is), the index serves the picks of
// a set left alone (built at the second pick), and its picks are spread
// evenly.
func TestFieldIndexFollowsTheSets(t *testing.T) {
	l := Layout{Dir: t.TempDir()}
	s, err := OpenShard(l, 0, kv.ExecEvents, nil, 8<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	index := uint64(0)
	do := func(args ...string) {
		index++
		s.ApplyBatch([]*raft.Log{opsEntry(t, index, args)})
	}
	read := func(args ...string) *messages.Reply {
		var rep *messages.Reply
		if err := s.View(func(r kv.Reader) error {
			a := make([][]byte, len(args))
			for i, x := range args {
				a[i] = []byte(x)
			}
			rep = kv.Read(r, a, 0)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if e := rep.GetError(); e != "" {
			t.Fatalf("%q: %s", args, e)
		}
		return rep
	}
	fill := func(key string, hash bool, n int) {
		args := []string{"SADD", key}
		if hash {
			args[0] = "HSET"
		}
		for i := range n {
			args = append(args, fmt.Sprintf("m%05d", i))
			if hash {
				args = append(args, fmt.Sprintf("v%d", i))
			}
		}
		do(args...)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	member := func() string { return fmt.Sprintf("m%05d", rng.IntN(900)) }
	fill("s", false, 700)
	fill("h", true, 700)
	served := 0
	for step := range 600 {
		switch r := rng.IntN(100); {
		case r < 10:
			do("SADD", "s", member())
		case r < 20:
			do("SREM", "s", member())
		case r < 25:
			do("SPOP", "s", "3")
		case r < 30:
			do("SMOVE", "s", "s2", member())
		case r < 40:
			do("HSET", "h", member(), fmt.Sprint(step))
		case r < 45:
			do("HDEL", "h", member())
		case r == 46:
			do("RENAME", "s", "s3")
			do("RENAME", "s3", "s")
		case r == 47:
			do("DEL", "s")
			fill("s", false, 600)
		case r == 48:
			do("FLUSHALL")
			fill("s", false, 650)
			fill("h", true, 650)
		}
		// Picks, several in a row: the index is built at the second.
		for range 1 + rng.IntN(4) {
			e := s.index.m[string(kv.RecordKey([]byte("s")))]
			built := e != nil && e.fields != nil
			m := string(read("SRANDMEMBER", "s").GetBulk())
			if read("SISMEMBER", "s", m).GetInteger() != 1 {
				t.Fatalf("step %d: SRANDMEMBER s gave %q, not a member", step, m)
			}
			pair := read("HRANDFIELD", "h", "1", "WITHVALUES").GetPairs().GetItems()
			if len(pair) != 2 {
				t.Fatalf("step %d: HRANDFIELD h 1 WITHVALUES: %v", step, pair)
			}
			f, v := pair[0].GetBulk(), pair[1].GetBulk()
			if got := read("HGET", "h", string(f)); string(got.GetBulk()) != string(v) || got.GetNullBulk() {
				t.Fatalf("step %d: HRANDFIELD gave %s=%s, HGET %v", step, f, v, got)
			}
			if built {
				served++
			}
		}
	}
	if served < 300 {
		t.Fatalf("the index served %d of the picks", served)
	}

	// A set left alone: its picks come from the index, evenly spread.
	do("DEL", "s")
	fill("s", false, 1000)
	read("SRANDMEMBER", "s")
	read("SRANDMEMBER", "s")
	if e := s.index.m[string(kv.RecordKey([]byte("s")))]; e == nil || len(e.fields) != 1000 {
		t.Fatalf("no index of s after two picks: %v", e)
	}
	var quarters [4]int
	const draws = 4000
	for range draws {
		var i int
		fmt.Sscanf(string(read("SRANDMEMBER", "s").GetBulk()), "m%05d", &i)
		quarters[i*4/1000]++
	}
	for q, n := range quarters {
		if n < draws/4*85/100 || n > draws/4*115/100 {
			t.Errorf("%d of %d picks in the %d. quarter (%v)", n, draws, q+1, quarters)
		}
	}
}

// A build that a write outruns is not kept, and the index stays within
// its limit, the least recently used going first.
func TestFieldIndexKeepsNothingStale(t *testing.T) {
	x := newFieldIndex(64 << 10)
	fields := func(n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = fmt.Appendf(nil, "f%05d", i)
		}
		return out
	}
	if got := x.fields([]byte("a"), func() [][]byte { t.Fatal("built at the first pick"); return nil }); got != nil {
		t.Fatalf("the first pick: %d fields", len(got))
	}
	got := x.fields([]byte("a"), func() [][]byte {
		x.applied(map[string][]byte{"a": nil}, nil) // written while it builds
		return fields(100)
	})
	if len(got) != 100 {
		t.Fatalf("the build's own read: %d fields", len(got))
	}
	if e := x.m["a"]; e != nil {
		t.Fatal("a build a write outran was kept")
	}
	// The same with a range deletion over the key, and with a reset.
	for _, outrun := range []func(){
		func() { x.applied(nil, [][2][]byte{{[]byte("a"), []byte("b")}}) },
		x.reset,
	} {
		x.fields([]byte("a"), nil) // the mark
		x.fields([]byte("a"), func() [][]byte { outrun(); return fields(100) })
		if e := x.m["a"]; e != nil && e.fields != nil {
			t.Fatal("a build outrun was kept")
		}
	}
	// Kept when nothing writes; dropped by a write after.
	x.fields([]byte("a"), nil)
	x.fields([]byte("a"), func() [][]byte { return fields(100) })
	if e := x.m["a"]; e == nil || len(e.fields) != 100 {
		t.Fatal("a build nothing outran was not kept")
	}
	x.applied(map[string][]byte{"a": nil, "z": nil}, nil)
	if e := x.m["a"]; e != nil {
		t.Fatal("an index kept over a write of its key")
	}
	// A set whose index would take more than half the limit is read once
	// and then walked, until it is written.
	x.fields([]byte("big"), nil)
	if got := x.fields([]byte("big"), func() [][]byte { return fields(2000) }); len(got) != 2000 {
		t.Fatalf("the build's own read: %d fields", len(got))
	}
	for range 3 {
		if got := x.fields([]byte("big"), func() [][]byte { t.Fatal("a set too big built again"); return nil }); got != nil {
			t.Fatalf("a set too big to index: %d fields", len(got))
		}
	}
	x.applied(map[string][]byte{"big": nil}, nil)
	if e := x.m["big"]; e != nil {
		t.Fatal("a set too big kept its mark over a write")
	}
	// Within the limit: many sets, each about 2 KiB.
	for i := range 200 {
		k := []byte(fmt.Sprintf("k%03d", i))
		x.fields(k, nil)
		x.fields(k, func() [][]byte { return fields(64) })
		if x.bytes > x.limit {
			t.Fatalf("%d bytes indexed, limit %d", x.bytes, x.limit)
		}
	}
	if e := x.m["k199"]; e == nil || e.fields == nil {
		t.Fatal("the newest set's index was evicted")
	}
	sum := 0
	for k, e := range x.m {
		size := fieldIndexEntryOverhead + len(k)
		for _, f := range e.fields {
			size += len(f) + 24
		}
		sum += size
	}
	if sum != x.bytes {
		t.Fatalf("accounted %d bytes, entries hold %d", x.bytes, sum)
	}
}
