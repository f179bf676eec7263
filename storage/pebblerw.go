package storage

import (
	"bytes"
	"errors"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coppice-kv/coppice/kv"
)

// pebbleRW adapts a Pebble reader (DB or indexed batch) and, for a batch,
// its writer to kv.Reader and kv.Writer.
type pebbleRW struct {
	r pebble.Reader
	w *pebble.Batch
}

func (p pebbleRW) Get(key []byte) ([]byte, bool, error) {
	v, closer, err := p.r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, true, nil
}

func (p pebbleRW) Scan(lower, upper []byte, fn func(k, v []byte) bool) error {
	return p.scan(lower, upper, false, fn)
}

func (p pebbleRW) ReverseScan(lower, upper []byte, fn func(k, v []byte) bool) error {
	return p.scan(lower, upper, true, fn)
}

func (p pebbleRW) scan(lower, upper []byte, reverse bool, fn func(k, v []byte) bool) error {
	it, err := p.r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	first, next := it.First, it.Next
	if reverse {
		first, next = it.Last, it.Prev
	}
	for ok := first(); ok; ok = next() {
		if !fn(it.Key(), it.Value()) {
			break
		}
	}
	return errors.Join(it.Error(), it.Close())
}

func (p pebbleRW) Set(key, value []byte) error           { return p.w.Set(key, value, nil) }
func (p pebbleRW) Delete(key []byte) error               { return p.w.Delete(key, nil) }
func (p pebbleRW) DeleteRange(lower, upper []byte) error { return p.w.DeleteRange(lower, upper, nil) }

// cachedReader reads the shard's committed state through its record cache
// and, for keys the cache does not know, its key filter.
type cachedReader struct {
	pebbleRW
	cache  *recordCache
	index  *fieldIndex
	filter *keyFilter
	counts *atomic.Pointer[keyCounts] // the shard's, as of its last commit
}

func (c cachedReader) KeyCounts() (kv.KeyCounts, bool) {
	if c.counts == nil {
		return kv.KeyCounts{}, false
	}
	if k := c.counts.Load(); k != nil {
		return k.public(), true
	}
	return kv.KeyCounts{}, false
}

func (c cachedReader) Get(key []byte) ([]byte, bool, error) {
	cached := c.cache.limit > 0 // no cache with --cache-mib 0
	var gen uint64
	if cached {
		v, ok, known, g := c.cache.get(key)
		if known {
			return v, ok, nil
		}
		gen = g
	}
	if c.filter.absent(key) {
		return nil, false, nil
	}
	v, ok, err := c.pebbleRW.Get(key)
	if err == nil && cached {
		c.cache.fill(gen, key, v, ok)
	}
	return v, ok, err
}

// applyRW is the state machine's view while it applies a batch: its Gets
// see the batch's own writes, then the cache, then the store; it notes
// every key the batch writes for the cache.
type applyRW struct {
	batch  pebbleRW     // the indexed batch: reads see its writes
	store  cachedReader // the committed state
	writes map[string][]byte
	// ranges the batch deleted, [lower, upper); writes holds no key it
	// wrote before a range that covers it. With a range deleted, Gets go
	// to the indexed batch.
	ranges [][2][]byte
	// touched and touchedRanges list every key set or deleted and every
	// range deleted, in order, for CLIENT TRACKING (Shard.modified).
	touched       []string
	touchedRanges [][2][]byte
	// counts are the shard's keyCounts as the batch leaves them, when it
	// keeps them (countsOK); countsChanged says the batch moved them.
	counts        keyCounts
	countsOK      bool
	countsChanged bool
}

func (a *applyRW) KeyCounts() (kv.KeyCounts, bool) { return a.counts.public(), a.countsOK }

// count counts key, which the batch is about to set (set) or delete, in
// or out of the counts if it is a counted key that was absent or present.
// A failed read fails the write, as the engine's own reads fail its
// command (and the batch).
func (a *applyRW) count(key []byte, set bool) error {
	if !a.countsOK {
		return nil
	}
	if record, expiry, _ := kv.CountedKey(key); !record && !expiry {
		return nil
	}
	_, had, err := a.Get(key)
	if err == nil && had != set {
		a.counts.note(key, set)
		a.countsChanged = true
	}
	return err
}

func (a *applyRW) Get(key []byte) ([]byte, bool, error) {
	if len(a.ranges) > 0 {
		return a.batch.Get(key)
	}
	if v, ok := a.writes[string(key)]; ok {
		return append([]byte(nil), v...), v != nil, nil
	}
	return a.store.Get(key)
}

func (a *applyRW) Scan(lower, upper []byte, fn func(k, v []byte) bool) error {
	return a.batch.Scan(lower, upper, fn)
}

func (a *applyRW) ReverseScan(lower, upper []byte, fn func(k, v []byte) bool) error {
	return a.batch.ReverseScan(lower, upper, fn)
}

func (a *applyRW) Set(key, value []byte) error {
	if err := a.count(key, true); err != nil {
		return err
	}
	// A copy: the caller may reuse value; the cache keeps this one.
	k := string(key)
	a.writes[k] = append(make([]byte, 0, len(value)), value...)
	a.touched = append(a.touched, k)
	return a.batch.Set(key, value)
}

func (a *applyRW) Delete(key []byte) error {
	if err := a.count(key, false); err != nil {
		return err
	}
	k := string(key)
	a.writes[k] = nil
	a.touched = append(a.touched, k)
	return a.batch.Delete(key)
}

func (a *applyRW) DeleteRange(lower, upper []byte) error {
	if a.countsOK {
		overlaps, err := a.counts.deletedRange(a.batch, lower, upper)
		if err != nil {
			return err
		}
		a.countsChanged = a.countsChanged || overlaps
	}
	for k := range a.writes {
		if inRange(k, lower, upper) {
			delete(a.writes, k) // the range deletes it; the cache drops it
		}
	}
	a.ranges = append(a.ranges, [2][]byte{bytes.Clone(lower), bytes.Clone(upper)})
	a.touchedRanges = append(a.touchedRanges, a.ranges[len(a.ranges)-1])
	return a.batch.DeleteRange(lower, upper)
}

// inRange reports whether lower <= k < upper.
func inRange(k string, lower, upper []byte) bool {
	return k >= string(lower) && k < string(upper)
}
