package storage

import (
	"slices"
	"sync"
	"sync/atomic"
)

// recordCache holds recently read or written values of a shard's keys,
// and keys known to be absent, in front of Pebble. A Get from Pebble's
// memtable is a skiplist search, a cache miss on every level: it was a
// quarter of a standalone node's CPU under GET -c 50 and most of SET's
// read of the old record (docs/node-benchmarks.md). The cache answers
// those with one map lookup.
//
// It mirrors Pebble exactly for the keys it holds, because the state
// machine is the only writer: ApplyBatch hands it every key its batch set
// or deleted after the batch commits and before the applied index moves
// (so a reader waiting for an index finds the cache at least that new),
// a range deletion drops the cached keys it covers, and a restore empties
// it. A reader that missed fills the cache with what it read from Pebble
// only if no batch was applied meanwhile (gen), so it never puts back a
// value a write has replaced.
type recordCache struct {
	mu    sync.Mutex
	m     map[string]*cached
	bytes int
	limit int
	gen   uint64
	// lru is a ring through every entry, most recently used first after
	// the sentinel: eviction takes lru.prev.
	lru cached

	hits, misses atomic.Uint64
}

// CacheStats is what a shard's read cache did: lookups answered and
// missed, and the bytes it holds; and its key filter: lookups answered
// "absent" without reading the store, whether it is ready (built), and
// why its last build failed, if it did.
type CacheStats struct {
	Hits, Misses, Bytes, FilterSkips uint64
	FilterReady                      bool
	FilterError                      string
}

func (c *recordCache) stats() CacheStats {
	c.mu.Lock()
	b := c.bytes
	c.mu.Unlock()
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Bytes: uint64(b)}
}

// cached is one key's value; absent marks a key known not to exist;
// prev and next place it in the cache's recency ring.
type cached struct {
	key        string
	v          []byte
	absent     bool
	prev, next *cached
}

// unlink takes e out of the recency ring.
func (e *cached) unlink() {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

// front puts e at the ring's front (most recently used). Called with mu
// held.
func (c *recordCache) front(e *cached) {
	e.prev, e.next = &c.lru, c.lru.next
	c.lru.next.prev = e
	c.lru.next = e
}

// cacheOverhead approximates a map entry's own bytes.
const cacheOverhead = 64

func newRecordCache(limit int) *recordCache {
	c := &recordCache{m: map[string]*cached{}, limit: limit}
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	return c
}

// get returns key's value (a copy), whether it exists, and whether the
// cache knew; when it did not, gen is the generation to hand fill after
// reading Pebble.
func (c *recordCache) get(key []byte) (v []byte, exists, known bool, gen uint64) {
	c.mu.Lock()
	e, ok := c.m[string(key)]
	gen = c.gen
	var absent bool
	if ok {
		e.unlink()
		c.front(e)
		v, absent = e.v, e.absent // e.v is never written to: copied below
	}
	c.mu.Unlock()
	if !ok {
		c.misses.Add(1)
		return nil, false, false, gen
	}
	c.hits.Add(1)
	if absent {
		return nil, false, true, gen
	}
	return append([]byte(nil), v...), true, true, gen
}

// fill records what a reader read from Pebble at generation gen (from
// get), unless a batch has been applied since. v is copied: the reader
// keeps it.
func (c *recordCache) fill(gen uint64, key, v []byte, exists bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if _, ok := c.m[string(key)]; ok || c.tooBig(entrySize(len(key), len(v))) {
		return // known already, or not to be cached (and not worth a copy)
	}
	if exists {
		v = append([]byte(nil), v...)
	}
	c.put(string(key), v, !exists)
}

// applied takes in what a committed batch did: first the ranges it
// deleted, [lower, upper), whose cached keys are dropped; then the keys it
// wrote outside them or after them (a nil value: deleted; the values are
// the cache's to keep). Later fills of reads begun before it are refused.
func (c *recordCache) applied(writes map[string][]byte, ranges [][2][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if len(ranges) > 0 { // one pass over the cache, only for a range deletion
		for k := range c.m {
			if slices.ContainsFunc(ranges, func(r [2][]byte) bool { return inRange(k, r[0], r[1]) }) {
				c.drop(k)
			}
		}
	}
	for k, v := range writes {
		c.put(k, v, v == nil)
	}
}

// reset empties the cache (the store was replaced).
func (c *recordCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.m)
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	c.bytes = 0
}

// entrySize is what an entry counts against the limit.
func entrySize(keyLen, valueLen int) int { return keyLen + valueLen + cacheOverhead }

// tooBig reports whether an entry of size bytes (entrySize) is too big
// to be worth the room; such a value is not cached.
func (c *recordCache) tooBig(size int) bool { return size > c.limit/16 }

// drop removes key's entry, if any. Called with mu held.
func (c *recordCache) drop(key string) {
	if e, ok := c.m[key]; ok {
		delete(c.m, key)
		e.unlink()
		c.bytes -= entrySize(len(key), len(e.v))
	}
}

// put stores key's value (v itself: the caller hands it over), evicting
// entries to stay under the limit. Called with mu held.
func (c *recordCache) put(key string, v []byte, absent bool) {
	if absent {
		v = nil
	}
	size := entrySize(len(key), len(v))
	e, ok := c.m[key]
	switch {
	case c.tooBig(size):
		c.drop(key)
		return
	case ok: // in place, most recently used: no allocation, one map lookup
		c.bytes -= entrySize(len(key), len(e.v))
		e.v, e.absent = v, absent
		e.unlink()
	default:
		e = &cached{key: key, v: v, absent: absent}
	}
	for c.bytes+size > c.limit && c.lru.prev != &c.lru { // e is out of the ring
		c.drop(c.lru.prev.key) // the least recently used
	}
	if !ok {
		c.m[key] = e
	}
	c.front(e)
	c.bytes += size
}
