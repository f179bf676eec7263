package storage

import (
	"fmt"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coppice-kv/coppice/internal/testwait"
)

// TestCompactionPoolSharesItsLimit: six shards that each need compacting
// (eight overlapping tables in L0, where Pebble compacts from four) under
// a pool that runs one compaction at a time: every shard is compacted,
// never two at once, and once they are the pool waits for nothing.
func TestCompactionPoolSharesItsLimit(t *testing.T) {
	shared := NewStores(StoresConfig{Shards: 6, Compactions: 1})
	t.Cleanup(shared.Close)
	pool := shared.pool
	l := Layout{Dir: t.TempDir()}
	var shards []*Shard
	for i := range 6 {
		s, err := OpenShard(l, i, setExec, nil, 0, shared)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		shards = append(shards, s)
	}
	for flush := range 8 {
		for _, s := range shards {
			for k := range 200 {
				if err := s.db.Set(fmt.Appendf(nil, "k%03d", k), fmt.Appendf(nil, "v%d", flush), pebble.NoSync); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	testwait.For(t, 30*time.Second, 10*time.Millisecond, "every shard's L0 compacted", func() error {
		for i, s := range shards {
			if n := s.db.Metrics().Levels[0].TablesCount; n >= 4 {
				return fmt.Errorf("shard %d has %d tables in L0", i, n)
			}
		}
		return nil
	})
	if st := pool.Stats(); st.Peak != 1 || st.Limit != 1 || st.Started < uint64(len(shards)) {
		t.Fatalf("stats %+v: want at most 1 at once (the limit), a compaction of each shard at least", st)
	}
	testwait.For(t, 10*time.Second, 10*time.Millisecond, "the pool idle", func() error {
		pool.mu.Lock()
		armed := pool.armed
		pool.mu.Unlock()
		if st := pool.Stats(); st.Running != 0 || st.Waiting != 0 || armed {
			return fmt.Errorf("stats %+v, recheck armed %v", st, armed)
		}
		return nil
	})
}

// TestCompactionPoolHasNoTicker: Pebble's own scheduler keeps a goroutine
// per store that wakes every 100 ms; shards on a pool have none.
func TestCompactionPoolHasNoTicker(t *testing.T) {
	granters := func() int {
		var b strings.Builder
		if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, g := range strings.Split(b.String(), "\n\n") {
			if strings.Contains(g, "periodicGranter") {
				var count int
				fmt.Sscanf(g, "%d @", &count)
				n += count
			}
		}
		return n
	}
	// An earlier test's store ends its granter only after its Close
	// returns: counted here and gone by the count below, it made this
	// test fail now and then.
	testwait.For(t, 10*time.Second, 10*time.Millisecond, "the granters of earlier tests' stores to end", func() error {
		if n := granters(); n != 0 {
			return fmt.Errorf("%d still running", n)
		}
		return nil
	})
	open := func(shared *Stores) {
		l := Layout{Dir: t.TempDir()}
		for i := range 3 {
			s, err := OpenShard(l, i, setExec, nil, 0, shared)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
		}
	}
	shared := NewStores(StoresConfig{Shards: 3})
	t.Cleanup(shared.Close)
	open(shared)
	if n := granters(); n != 0 {
		t.Fatalf("3 shards on a pool added %d periodic granters, want none", n)
	}
	open(nil)
	if n := granters(); n != 3 {
		t.Fatalf("3 shards on their own added %d periodic granters, want 3 (the check sees them)", n)
	}
}
