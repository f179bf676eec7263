package storage

import (
	"sync"

	"github.com/hashicorp/raft"
)

// logCache keeps a shard's latest Raft log entries in memory in front of
// its store: at most maxEntries entries and maxBytes bytes of their data,
// the oldest dropped first. Raft reads each new entry back once per
// follower to replicate it, and a follower reads each back to apply it:
// from the store that is a Pebble lookup, a decode and a copy per entry
// (from raft-wal, the store before RaftLogs, it was a pread(2), about a
// tenth of a busy node's CPU: docs/storage.md).
//
// It replaces raft.LogCache, which bounds only the count: 1024 entries of
// up to 4 MB each (a batch of large values) could hold 4 GB of one shard's
// log in memory. An entry bigger than maxBytes is not kept.
//
// The cache holds a run of consecutive indexes; an entry that does not
// follow the run (a follower's log rewritten after a conflict), and any
// DeleteRange, starts it over, so it never answers for an entry the store
// no longer has.
type logCache struct {
	raft.LogStore

	mu sync.RWMutex
	// ring[(start+i) % len(ring)] is entry first+i, for i < n.
	ring     []*raft.Log
	start, n int
	first    uint64
	bytes    int
	maxBytes int
}

func newLogCache(store raft.LogStore, maxEntries, maxBytes int) *logCache {
	return &logCache{LogStore: store, ring: make([]*raft.Log, maxEntries), maxBytes: maxBytes}
}

func logSize(l *raft.Log) int { return len(l.Data) + len(l.Extensions) }

func (c *logCache) GetLog(index uint64, log *raft.Log) error {
	c.mu.RLock()
	if c.n > 0 && index >= c.first && index-c.first < uint64(c.n) {
		*log = *c.ring[(c.start+int(index-c.first))%len(c.ring)]
		c.mu.RUnlock()
		return nil
	}
	c.mu.RUnlock()
	return c.LogStore.GetLog(index, log)
}

// ScanLogs calls fn with each entry from..to (raft.LogScanner): those in
// the cache from it, the others from the store, by its ScanLogs when it
// has one.
func (c *logCache) ScanLogs(from, to uint64, fn func(*raft.Log) error) error {
	if from > to {
		return nil
	}
	// The cached part of from..to, copied, as GetLog copies.
	var cached []*raft.Log
	c.mu.RLock()
	if c.n > 0 {
		lo, hi := max(from, c.first), min(to, c.first+uint64(c.n)-1)
		for i := lo; i <= hi; i++ {
			l := *c.ring[(c.start+int(i-c.first))%len(c.ring)]
			cached = append(cached, &l)
		}
	}
	c.mu.RUnlock()
	if len(cached) == 0 {
		return c.scanStore(from, to, fn)
	}
	lo, hi := cached[0].Index, cached[len(cached)-1].Index
	if from < lo {
		if err := c.scanStore(from, lo-1, fn); err != nil {
			return err
		}
	}
	for _, l := range cached {
		if err := fn(l); err != nil {
			return err
		}
	}
	if hi < to {
		return c.scanStore(hi+1, to, fn)
	}
	return nil
}

// scanStore reads from..to from the store under the cache.
func (c *logCache) scanStore(from, to uint64, fn func(*raft.Log) error) error {
	if s, ok := c.LogStore.(raft.LogScanner); ok {
		return s.ScanLogs(from, to, fn)
	}
	for i := from; i <= to; i++ {
		l := new(raft.Log)
		if err := c.LogStore.GetLog(i, l); err != nil {
			return err
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	return nil
}

func (c *logCache) StoreLog(l *raft.Log) error { return c.StoreLogs([]*raft.Log{l}) }

// StoreLogs stores logs, then keeps copies of them (a leader's entries
// are fields of their Apply futures, which the cache would keep alive
// with their channels); on an error it keeps nothing.
func (c *logCache) StoreLogs(logs []*raft.Log) error {
	if err := c.LogStore.StoreLogs(logs); err != nil {
		return err
	}
	copies := make([]raft.Log, len(logs))
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, l := range logs {
		copies[i] = *l
		c.add(&copies[i])
	}
	return nil
}

func (c *logCache) DeleteRange(min, max uint64) error {
	c.mu.Lock()
	c.reset()
	c.mu.Unlock()
	return c.LogStore.DeleteRange(min, max)
}

// add appends l to the run, dropping the oldest entries to make room.
// Called with mu held.
func (c *logCache) add(l *raft.Log) {
	size := logSize(l)
	switch {
	case size > c.maxBytes:
		c.reset() // not kept, and the run cannot go on past it
		return
	case c.n > 0 && l.Index != c.first+uint64(c.n):
		c.reset()
	}
	for c.n == len(c.ring) || c.bytes+size > c.maxBytes {
		c.dropOldest()
	}
	if c.n == 0 {
		c.first, c.start = l.Index, 0
	}
	c.ring[(c.start+c.n)%len(c.ring)] = l
	c.n++
	c.bytes += size
}

func (c *logCache) dropOldest() {
	c.bytes -= logSize(c.ring[c.start])
	c.ring[c.start] = nil
	c.start = (c.start + 1) % len(c.ring)
	c.first++
	c.n--
}

func (c *logCache) reset() {
	clear(c.ring)
	c.start, c.n, c.first, c.bytes = 0, 0, 0, 0
}
