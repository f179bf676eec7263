package storage

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// The memtable budget is split between the shards, within its bounds.
func TestStoresSplitTheMemtableBudget(t *testing.T) {
	for _, c := range []struct {
		cfg  StoresConfig
		want uint64
	}{
		{StoresConfig{Shards: 4}, 32 << 20},
		{StoresConfig{Shards: 16}, 16 << 20},
		{StoresConfig{Shards: 64}, 4 << 20},
		{StoresConfig{Shards: 256}, MinMemTable},
		{StoresConfig{Shards: 8, MemTables: 64 << 20}, 8 << 20},
		{StoresConfig{Shards: 1, MemTables: 1 << 30}, MaxMemTable},
		{StoresConfig{}, MaxMemTable},
	} {
		s := NewStores(c.cfg)
		if got := s.MemTableSize(); got != c.want {
			t.Errorf("%+v: each memtable %d bytes, want %d", c.cfg, got, c.want)
		}
		s.Close()
	}
}

// Shards on Stores flush at their share of the memtable budget, and read
// their tables through one block cache; a shard on its own does neither.
func TestShardsShareTheirMemoryBudget(t *testing.T) {
	shared := NewStores(StoresConfig{Shards: 8, MemTables: 8 << 20, BlockCache: 4 << 20})
	t.Cleanup(shared.Close)
	l := Layout{Dir: t.TempDir()}
	open := func(id int, with *Stores) *Shard {
		s, err := OpenShard(l, id, setExec, nil, 0, with)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b, alone := open(0, shared), open(1, shared), open(2, nil)
	value := bytes.Repeat([]byte("v"), 1000)
	for _, s := range []*Shard{a, b, alone} {
		for k := range 3000 { // 3 MB: three times a shared store's 1 MiB
			if err := s.db.Set(fmt.Appendf(nil, "k%05d", k), value, pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, s := range []*Shard{a, b} {
		if m := s.db.Metrics(); m.Flush.Count == 0 {
			t.Errorf("shard %d on Stores of 1 MiB memtables holds 3 MB unflushed (%d bytes in memtables)", s.ID(), m.MemTable.Size)
		}
	}
	if m := alone.db.Metrics(); m.Flush.Count != 0 {
		t.Errorf("the shard on its own (32 MiB memtables) flushed %d times under 3 MB", m.Flush.Count)
	}
	// Reads of the flushed tables of both shards go through the one
	// cache; the shard on its own has its own.
	before := shared.cache.Metrics()
	for _, s := range []*Shard{a, b, alone} {
		if err := s.db.Flush(); err != nil {
			t.Fatal(err)
		}
		v, closer, err := s.db.Get([]byte("k00000"))
		if err != nil || !bytes.Equal(v, value) {
			t.Fatalf("shard %d: k00000: %v", s.ID(), err)
		}
		closer.Close()
		after := shared.cache.Metrics()
		switch {
		case s == alone && after != before:
			t.Errorf("the shard on its own read through the shared cache: %+v, then %+v", before, after)
		case s != alone && after.Misses+after.Hits <= before.Misses+before.Hits:
			t.Errorf("shard %d read a flushed table, and not through the shared cache: %+v, then %+v", s.ID(), before, after)
		}
		before = after
	}
}
