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

// Pebble counts memtables against its block cache: shards whose
// memtables have grown to their share of the budget still keep the
// blocks they read, up to --block-cache-mib of them.
func TestFullMemtablesLeaveTheBlockCacheItsBlocks(t *testing.T) {
	shared := NewStores(StoresConfig{Shards: 2, MemTables: 8 << 20, BlockCache: 4 << 20})
	t.Cleanup(shared.Close)
	l := Layout{Dir: t.TempDir()}
	var shards []*Shard
	for id := range 2 {
		s, err := OpenShard(l, id, setExec, nil, 0, shared)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		shards = append(shards, s)
	}
	value := bytes.Repeat([]byte("v"), 1000)
	write := func(s *Shard, from int) {
		for k := from; k < from+3000; k++ {
			if err := s.db.Set(fmt.Appendf(nil, "k%05d", k), value, pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Pebble's memtables start at 256 KiB and double at each flush up to
	// their size: after these, each store's is its 4 MiB share, and it
	// keeps the one it flushed, to recycle.
	for _, s := range shards {
		write(s, 0)
		write(s, 10000)
		if err := s.db.Flush(); err != nil {
			t.Fatal(err)
		}
		write(s, 20000)
		if m := s.db.Metrics(); m.MemTable.Size < 4<<20 {
			t.Fatalf("shard %d: memtables of %d bytes, want its 4 MiB share", s.ID(), m.MemTable.Size)
		}
	}
	a := shards[0]
	get := func() {
		t.Helper()
		v, closer, err := a.db.Get([]byte("k00000"))
		if err != nil || !bytes.Equal(v, value) {
			t.Fatalf("k00000: %v", err)
		}
		closer.Close()
	}
	get() // reads the table's blocks, from the file
	before := shared.cache.Metrics()
	get()
	after := shared.cache.Metrics()
	if after.Misses != before.Misses || after.Hits == before.Hits || after.Size == 0 {
		t.Errorf("a second read of a flushed key missed the block cache: %d misses, then %d; %d hits, then %d; %d bytes of blocks held",
			before.Misses, after.Misses, before.Hits, after.Hits, after.Size)
	}
	if st := shared.Stats(); st.BlockCacheSize != 4<<20 {
		t.Errorf("block cache size %d, want the 4 MiB configured for blocks", st.BlockCacheSize)
	}
}
