package storage

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

// countingStore counts the reads that reach the store.
type countingStore struct {
	*raft.InmemStore
	gets int
}

func (s *countingStore) GetLog(index uint64, log *raft.Log) error {
	s.gets++
	return s.InmemStore.GetLog(index, log)
}

func logEntry(index uint64, size int) *raft.Log {
	data := bytes.Repeat([]byte{byte(index)}, size)
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

// check reads first..last through c and wants each entry whole, and the
// reads that reached the store.
func checkLogs(t *testing.T, c *logCache, s *countingStore, first, last uint64, size int, storeReads int) {
	t.Helper()
	before := s.gets
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := c.GetLog(i, &l); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if l.Index != i || !bytes.Equal(l.Data, logEntry(i, size).Data) {
			t.Fatalf("entry %d: got index %d, %d bytes", i, l.Index, len(l.Data))
		}
	}
	if got := s.gets - before; got != storeReads {
		t.Fatalf("entries %d..%d: %d reads reached the store, want %d", first, last, got, storeReads)
	}
}

func TestLogCacheKeepsTheLatestWithinItsBounds(t *testing.T) {
	s := &countingStore{InmemStore: raft.NewInmemStore()}
	c := newLogCache(s, 8, 1000)
	// Small entries: bounded by the count.
	for i := uint64(1); i <= 20; i++ {
		if err := c.StoreLogs([]*raft.Log{logEntry(i, 10)}); err != nil {
			t.Fatal(err)
		}
	}
	checkLogs(t, c, s, 13, 20, 10, 0)
	checkLogs(t, c, s, 1, 12, 10, 12)

	// Bigger entries: bounded by the bytes (three of 300 fit in 1000).
	var batch []*raft.Log
	for i := uint64(21); i <= 30; i++ {
		batch = append(batch, logEntry(i, 300))
	}
	if err := c.StoreLogs(batch); err != nil {
		t.Fatal(err)
	}
	if c.bytes > c.maxBytes || c.n != 3 {
		t.Fatalf("%d entries, %d bytes kept (limit %d)", c.n, c.bytes, c.maxBytes)
	}
	checkLogs(t, c, s, 28, 30, 300, 0)
	checkLogs(t, c, s, 21, 27, 300, 7)

	// An entry bigger than the whole budget is not kept; the next are.
	if err := c.StoreLogs([]*raft.Log{logEntry(31, 5000), logEntry(32, 10)}); err != nil {
		t.Fatal(err)
	}
	checkLogs(t, c, s, 32, 32, 10, 0)
	checkLogs(t, c, s, 31, 31, 5000, 1)
	if c.bytes != 10 {
		t.Fatalf("%d bytes kept, want 10", c.bytes)
	}
}

// A log rewritten from an earlier index (a follower's conflict) or
// trimmed is never answered from the cache's older copy.
func TestLogCacheFollowsTheStore(t *testing.T) {
	s := &countingStore{InmemStore: raft.NewInmemStore()}
	c := newLogCache(s, 8, 1<<20)
	for i := uint64(1); i <= 6; i++ {
		c.StoreLog(logEntry(i, 10))
	}
	// The tail from 4 on is replaced by entries of another size.
	if err := c.DeleteRange(4, 6); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := c.GetLog(5, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("a deleted entry: %v", err)
	}
	for i := uint64(4); i <= 6; i++ {
		c.StoreLog(logEntry(i, 20))
	}
	checkLogs(t, c, s, 4, 6, 20, 0)
	checkLogs(t, c, s, 1, 3, 10, 3)
	// Entries that do not follow the run start it over.
	c.StoreLogs([]*raft.Log{logEntry(10, 30), logEntry(11, 30)})
	checkLogs(t, c, s, 10, 11, 30, 0)
	if c.n != 2 || c.first != 10 {
		t.Fatalf("run %d entries from %d, want 2 from 10", c.n, c.first)
	}
	// A failed store keeps nothing.
	failing := &logCache{LogStore: failStore{s.InmemStore}, ring: make([]*raft.Log, 4), maxBytes: 100}
	if err := failing.StoreLog(logEntry(12, 1)); err == nil || failing.n != 0 {
		t.Fatalf("a failed store: %v, %d kept", err, failing.n)
	}
}

type failStore struct{ *raft.InmemStore }

func (failStore) StoreLogs([]*raft.Log) error { return fmt.Errorf("disk full") }

// A cache over a store that reads only entry by entry scans a range from
// both: the cached part without reaching the store.
func TestLogCacheScansOverAPlainStore(t *testing.T) {
	s := &countingStore{InmemStore: raft.NewInmemStore()}
	c := newLogCache(s, 8, 1000)
	for i := uint64(1); i <= 20; i++ {
		if err := c.StoreLogs([]*raft.Log{logEntry(i, 10)}); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint64
	err := c.ScanLogs(5, 20, func(l *raft.Log) error {
		if !bytes.Equal(l.Data, logEntry(l.Index, 10).Data) {
			return fmt.Errorf("entry %d holds %v", l.Index, l.Data)
		}
		got = append(got, l.Index)
		return nil
	})
	if err != nil || len(got) != 16 || got[0] != 5 || got[15] != 20 {
		t.Fatalf("5..20: %v, %v", got, err)
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("5..20 out of order: %v", got)
		}
	}
	if s.gets != 8 { // 5..12; 13..20 are cached
		t.Fatalf("%d reads reached the store, want 8", s.gets)
	}
	if err := c.ScanLogs(19, 21, func(*raft.Log) error { return nil }); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("19..21: %v, want raft.ErrLogNotFound", err)
	}
}

// The cache keeps copies of the entries it is given (a leader's are
// fields of their Apply futures), and a group's cache is bounded by its
// share of the node's budget.
func TestLogCacheKeepsCopiesWithinItsShare(t *testing.T) {
	s := &countingStore{InmemStore: raft.NewInmemStore()}
	c := newLogCache(s, 8, 1000)
	given := logEntry(1, 10)
	if err := c.StoreLogs([]*raft.Log{given}); err != nil {
		t.Fatal(err)
	}
	given.Term = 99 // the caller's struct, not the cache's
	var l raft.Log
	if err := c.GetLog(1, &l); err != nil || l.Term != 1 || s.gets != 0 {
		t.Fatalf("entry 1: term %d, %v, %d store reads; want the cached copy of term 1", l.Term, err, s.gets)
	}

	r := testLogs(t, t.TempDir())
	for _, c := range []struct {
		total  int64
		groups int
		want   int
	}{
		{0, 5, DefaultLogCache / 5},
		{64 << 20, 257, MinLogCache},
		{1 << 30, 2, MaxLogCache},
		{8 << 20, 4, 2 << 20},
	} {
		r.SplitLogCache(c.total, c.groups)
		g := testGroup(t, r, 1)
		if got := g.(*groupStore).cache.maxBytes; got != c.want {
			t.Errorf("%d bytes over %d groups: a group's cache holds %d bytes, want %d", c.total, c.groups, got, c.want)
		}
		g.Close()
	}
}
