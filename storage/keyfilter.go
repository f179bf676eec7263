package storage

import (
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// keyFilter is a Bloom filter of every key a shard's store holds, so that
// a lookup of a key that is not there (a SET of a new key reads the old
// record first) usually ends without a Pebble Get: that Get is a skiplist
// search in the memtable with a cache miss on every level, 11% of a
// node's CPU under redis-benchmark SET with fresh keys
// (docs/node-benchmarks.md).
//
// It holds a superset of the store's keys: the state machine adds each key
// before the batch that writes it commits, and deletions never take keys
// out. Until a build has read the whole store (after opening it, after a
// restore replaced it, or when keys added since the last build far
// outnumber what that build found) it is not ready and says every key may
// be present. Each layer is a blocked Bloom filter (the bits of a key in
// one 64-byte block, one cache miss per layer) of about 10 bits per key,
// 1-2% false positives; when a layer is full a twice larger one is added.
type keyFilter struct {
	mu     sync.RWMutex
	ready  bool
	gen    uint64     // bumped by clear: a build of an older generation stops
	layers [][]uint64 // each a whole number of 8-word (512-bit) blocks
	room   int        // keys the last layer takes before another is added
	added  int        // keys added since the filter was last cleared
	built  int        // keys the last completed build found in the store

	skips atomic.Uint64 // lookups it answered "absent"
}

const (
	filterBitsPerKey = 10
	filterHashes     = 7
	filterFirstKeys  = 1 << 16
	// filterRebuildMin: keys added before a rebuild is considered (keys
	// deleted stay in the filter; a rebuild drops them).
	filterRebuildMin = 1 << 20
)

func newKeyFilter() *keyFilter {
	f := &keyFilter{}
	f.clear()
	return f
}

// clear empties f, makes it not ready and returns the generation a build
// must carry. Called with mu held, or before f is shared.
func (f *keyFilter) clear() uint64 {
	f.ready = false
	f.gen++
	f.layers, f.added = nil, 0
	f.grow(filterFirstKeys)
	return f.gen
}

// grow adds a layer for keys keys. Called with mu held.
func (f *keyFilter) grow(keys int) {
	f.layers = append(f.layers, make([]uint64, (keys*filterBitsPerKey+511)/512*8))
	f.room = keys
}

// block is h's block of layer l, and bitAt its i-th bit's word in that
// block and mask.
func block(l []uint64, h uint64) []uint64 {
	b, _ := bits.Mul64(h, uint64(len(l)/8)) // uniform over the blocks
	return l[b*8 : b*8+8 : b*8+8]
}

func bitAt(x uint64) (word int, mask uint64) {
	bit := x >> 55 // 0..511
	return int(bit >> 6), 1 << (bit & 63)
}

// next steps the sequence of h's bit positions (start: seed(h)).
func seed(h uint64) uint64 { return bits.RotateLeft64(h, 32) | 1 }
func next(x uint64) uint64 { return x * 0x9e3779b97f4a7c15 }

// has reports whether h may be in f. Called with mu held (read or write).
func (f *keyFilter) has(h uint64) bool {
	for _, l := range f.layers {
		b, x, in := block(l, h), seed(h), true
		for range filterHashes {
			x = next(x)
			w, m := bitAt(x)
			if b[w]&m == 0 {
				in = false
				break
			}
		}
		if in {
			return true
		}
	}
	return false
}

// add records that the store may hold key.
func (f *keyFilter) add(key []byte) {
	h := xxhash.Sum64(key)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addHash(h)
}

// addHash adds h unless f may already hold it. Called with mu held.
func (f *keyFilter) addHash(h uint64) {
	if f.has(h) {
		return
	}
	if f.room == 0 {
		last := f.layers[len(f.layers)-1]
		f.grow(2 * len(last) * 64 / filterBitsPerKey)
	}
	b, x := block(f.layers[len(f.layers)-1], h), seed(h)
	for range filterHashes {
		x = next(x)
		w, m := bitAt(x)
		b[w] |= m
	}
	f.room--
	f.added++
}

// absent reports whether key is certainly not in the store.
func (f *keyFilter) absent(key []byte) bool {
	h := xxhash.Sum64(key)
	f.mu.RLock()
	out := f.ready && !f.has(h)
	f.mu.RUnlock()
	if out {
		f.skips.Add(1)
	}
	return out
}

// reset clears f (the store was replaced) and returns the generation for
// the build of the new store.
func (f *keyFilter) reset() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clear()
}

// rebuildDue reports whether so many keys were added since the last build
// that a rebuild (which drops deleted keys) is worth it; if so it clears
// f and returns the generation for the build.
func (f *keyFilter) rebuildDue() (gen uint64, due bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ready || f.added < max(filterRebuildMin, 4*f.built) {
		return 0, false
	}
	return f.clear(), true
}

// addBuilt adds keys a build of generation gen read from the store; it
// reports false when f was cleared since (the build must stop).
func (f *keyFilter) addBuilt(gen uint64, keys [][]byte) bool {
	hs := make([]uint64, len(keys))
	for i, k := range keys {
		hs[i] = xxhash.Sum64(k)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen != gen {
		return false
	}
	for _, h := range hs {
		f.addHash(h)
	}
	return true
}

// finishBuild makes f ready if it was not cleared since the build of
// generation gen began; found is how many keys that build read.
func (f *keyFilter) finishBuild(gen uint64, found int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen == gen {
		f.ready, f.built = true, found
	}
}
