package storage

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// opsExec runs the commands the cache test sends: SET k v, DEL k,
// DELRANGE lo hi, and INCR k (a read of the batch's view, then a write).
func opsExec(w kv.Writer, c *messages.Command, _ *kv.EventLog) *messages.Reply {
	a := c.Args
	var err error
	switch string(a[0]) {
	case "SET":
		err = w.Set(a[1], a[2])
	case "DEL":
		err = w.Delete(a[1])
	case "DELRANGE":
		err = w.DeleteRange(a[1], a[2])
	case "INCR":
		var v []byte
		var ok bool
		if v, ok, err = w.Get(a[1]); err == nil {
			n := 0
			if ok {
				fmt.Sscan(string(v), &n)
			}
			err = w.Set(a[1], []byte(fmt.Sprint(n+1)))
		}
	}
	if err != nil {
		return &messages.Reply{Value: &messages.Reply_Error{Error: err.Error()}}
	}
	return &messages.Reply{Value: &messages.Reply_Status{Status: "OK"}}
}

func opsEntry(t *testing.T, index uint64, cmds ...[]string) *raft.Log {
	var b messages.CommandBatch
	for _, c := range cmds {
		var args [][]byte
		for _, s := range c {
			args = append(args, []byte(s))
		}
		b.Commands = append(b.Commands, &messages.Command{Args: args})
	}
	data, err := proto.Marshal(&b)
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

// Random batches of writes, range deletions and read-modify-writes: after
// each, every key read through the cache (as clients read) is what Pebble
// holds, and INCR inside a batch saw the batch's own earlier writes.
func TestCacheMirrorsTheStore(t *testing.T) {
	t.Run("cache", func(t *testing.T) { mirrorsTheStore(t, 1<<20) })
	t.Run("filter only", func(t *testing.T) { mirrorsTheStore(t, 0) })
}

// mirrorsTheStore checks reads through a shard with a cache of
// cacheBytes, and its key filter, against Pebble.
func mirrorsTheStore(t *testing.T, cacheBytes int) {
	l := Layout{Dir: t.TempDir()}
	s, err := OpenShard(l, 0, opsExec, nil, cacheBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitFilterReady(t, s)
	rng := rand.New(rand.NewPCG(1, 2))
	key := func() string { return fmt.Sprintf("k%02d", rng.IntN(40)) }
	counts := map[string]int{} // the INCR-only keys' expected values
	for i := uint64(1); i <= 400; i++ {
		var batch [][]string
		for n := rng.IntN(8) + 1; n > 0; n-- {
			switch r := rng.IntN(100); {
			case r < 45:
				batch = append(batch, []string{"SET", key(), fmt.Sprint(rng.IntN(1000))})
			case r < 70:
				batch = append(batch, []string{"DEL", key()})
			case r < 75:
				lo, hi := key(), key()
				if lo > hi {
					lo, hi = hi, lo
				}
				batch = append(batch, []string{"DELRANGE", lo, hi})
			default:
				c := fmt.Sprintf("c%d", rng.IntN(5))
				batch = append(batch, []string{"INCR", c})
				counts[c]++
			}
		}
		s.ApplyBatch([]*raft.Log{opsEntry(t, i, batch...)})
		// Read through the cache, twice (the first may fill it), and
		// straight from Pebble.
		for k := 0; k < 40; k++ {
			name := fmt.Sprintf("k%02d", k)
			want, wantOK := readStore(t, s, name)
			for pass := 0; pass < 2; pass++ {
				if got, ok := readCached(t, s, name); ok != wantOK || got != want {
					t.Fatalf("batch %d %v: %s through the cache = %q,%v; the store holds %q,%v", i, batch, name, got, ok, want, wantOK)
				}
			}
		}
	}
	for c, n := range counts {
		if got, _ := readCached(t, s, c); got != fmt.Sprint(n) {
			t.Fatalf("%s = %s after %d INCRs", c, got, n)
		}
	}
	if cacheBytes > 0 && s.cache.hits.Load() == 0 {
		t.Fatal("no read was answered by the cache")
	}
	if s.filter.skips.Load() == 0 {
		t.Fatal("no read was answered by the key filter")
	}
}

func readCached(t *testing.T, s *Shard, k string) (string, bool) {
	t.Helper()
	var v []byte
	var ok bool
	err := s.View(func(r kv.Reader) (err error) {
		v, ok, err = r.Get([]byte(k))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(v), ok
}

func readStore(t *testing.T, s *Shard, k string) (string, bool) {
	t.Helper()
	v, ok, err := pebbleRW{r: s.db}.Get([]byte(k))
	if err != nil {
		t.Fatal(err)
	}
	return string(v), ok
}

// A reader that read the store before a batch was applied must not put
// its now-old value into the cache.
func TestCacheRefusesAStaleFill(t *testing.T) {
	c := newRecordCache(1 << 20)
	_, _, _, gen := c.get([]byte("k")) // a reader misses k, reads Pebble...
	c.applied(map[string][]byte{"k": []byte("new")}, nil)
	c.fill(gen, []byte("k"), []byte("old"), true)
	if v, ok, known, _ := c.get([]byte("k")); !known || !ok || string(v) != "new" {
		t.Fatalf("k = %q,%v,%v; want the batch's value", v, ok, known)
	} else {
		v[0] = 'X' // the reader's copy is its own
	}
	filled := []byte("mine")
	_, _, _, g := c.get([]byte("f"))
	c.fill(g, []byte("f"), filled, true)
	filled[0] = 'X' // nor does the cache keep the reader's slice
	for _, k := range []string{"k", "f"} {
		if v, _, _, _ := c.get([]byte(k)); string(v) != map[string]string{"k": "new", "f": "mine"}[k] {
			t.Fatalf("%s = %q after a reader changed its copy", k, v)
		}
	}
	_, _, _, gen = c.get([]byte("other"))
	c.applied(map[string][]byte{"j": nil}, nil)
	c.fill(gen, []byte("other"), []byte("x"), true)
	if _, _, known, _ := c.get([]byte("other")); known {
		t.Fatal("a fill begun before a batch was taken")
	}
	if _, ok, known, _ := c.get([]byte("j")); !known || ok {
		t.Fatal("a deleted key is not known absent")
	}
	// A range deletion drops the keys it covers and keeps the others; a
	// key written in the same batch (after the range) is taken in.
	c.applied(map[string][]byte{"g": []byte("after")}, [][2][]byte{{[]byte("f"), []byte("k")}})
	for k, want := range map[string]string{"f": "unknown", "j": "unknown", "g": "after", "k": "new"} {
		v, _, known, _ := c.get([]byte(k))
		if got := map[bool]string{false: "unknown", true: string(v)}[known]; got != want {
			t.Fatalf("after deleting [f, k): %s = %s, want %s", k, got, want)
		}
	}
}

// The cache stays within its limit, and a value too big for it is not
// cached.
func TestCacheStaysWithinItsLimit(t *testing.T) {
	const limit = 64 << 10
	c := newRecordCache(limit)
	for i := 0; i < 5000; i++ {
		c.applied(map[string][]byte{fmt.Sprint(i): make([]byte, 100)}, nil)
		if c.bytes > limit {
			t.Fatalf("after %d puts: %d bytes cached, limit %d", i+1, c.bytes, limit)
		}
	}
	if len(c.m) < 100 {
		t.Fatalf("%d entries left of 5000 puts in %d bytes", len(c.m), limit)
	}
	c.applied(map[string][]byte{"big": make([]byte, limit/8)}, nil)
	if _, _, known, _ := c.get([]byte("big")); known {
		t.Fatal("a value of an eighth of the cache was cached")
	}
	_, _, _, gen := c.get([]byte("read"))
	c.fill(gen, []byte("read"), make([]byte, limit/8), true)
	if _, _, known, _ := c.get([]byte("read")); known {
		t.Fatal("a value of an eighth of the cache read from the store was cached")
	}
	c.applied(map[string][]byte{"0": []byte("x"), "1": nil}, nil)
	// Overwrites in place, bigger and smaller, of a key that is cached.
	last := fmt.Sprint(4999)
	for _, n := range []int{3000, 10, 0, 2000} {
		c.applied(map[string][]byte{last: make([]byte, n)}, nil)
		if v, exists, known, _ := c.get([]byte(last)); !known || !exists || len(v) != n || c.bytes > limit {
			t.Fatalf("overwritten with %d bytes: %d bytes, exists %v, known %v; %d bytes cached", n, len(v), exists, known, c.bytes)
		}
		// The recency ring holds every entry once, the overwritten first.
		seen := 0
		for e := c.lru.next; e != &c.lru && seen <= len(c.m); e = e.next {
			if e.next.prev != e || c.m[e.key] != e {
				t.Fatalf("overwritten with %d bytes: the ring is broken at %q", n, e.key)
			}
			seen++
		}
		if seen != len(c.m) || c.lru.next.key != last {
			t.Fatalf("overwritten with %d bytes: the ring holds %d of %d entries, %q first", n, seen, len(c.m), c.lru.next.key)
		}
	}
	sum := 0
	for k, e := range c.m {
		sum += len(k) + len(e.v) + cacheOverhead
	}
	if sum != c.bytes {
		t.Fatalf("accounted %d bytes, entries hold %d", c.bytes, sum)
	}
}

// Eviction spares what is in use: keys read between every store stay
// cached while many more cold keys pass through. (Evicting at random left
// none of them; the least recently used of 5 sampled entries lost up to 15
// of them: map iteration samples neighbours, not a random set.)
func TestCacheKeepsWhatIsUsed(t *testing.T) {
	const entries, hot, cold = 1000, 100, 5000
	c := newRecordCache(entries * entrySize(len("k0000"), 32))
	for i := range entries {
		c.applied(map[string][]byte{fmt.Sprintf("k%04d", i): make([]byte, 32)}, nil)
	}
	for i := range cold {
		for h := range hot {
			c.get([]byte(fmt.Sprintf("k%04d", h)))
		}
		c.applied(map[string][]byte{fmt.Sprintf("c%04d", i): make([]byte, 32)}, nil)
	}
	kept := 0
	for h := range hot {
		if _, _, known, _ := c.get([]byte(fmt.Sprintf("k%04d", h))); known {
			kept++
		}
	}
	if kept != hot {
		t.Fatalf("%d of %d keys in use are still cached after %d stores", kept, hot, cold)
	}
}

// A cache of size 0 (--cache-mib 0) holds nothing.
func TestNoCache(t *testing.T) {
	c := newRecordCache(0)
	c.applied(map[string][]byte{"k": []byte("v")}, nil)
	_, _, _, gen := c.get([]byte("j"))
	c.fill(gen, []byte("j"), []byte("v"), true)
	if _, _, known, _ := c.get([]byte("k")); known || len(c.m) != 0 {
		t.Fatalf("a cache of 0 bytes holds %d entries", len(c.m))
	}
}
