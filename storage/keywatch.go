package storage

import (
	"slices"
	"sync"
	"sync/atomic"
)

// keyWatches wake those who wait for keys to be written: a client blocked
// in BLPOP waits until an entry applied here writes one of its lists. A
// watch fires once, at the first applied entry that writes one of its
// keys (or replaces the whole store: a snapshot restored), and is gone.
type keyWatches struct {
	n  atomic.Int32 // len(set): applies skip the lock when none
	mu sync.Mutex
	// set holds each watch with its keys.
	set map[*keyWatch]struct{}
}

type keyWatch struct {
	keys [][]byte
	ch   chan struct{}
}

// Watch returns a channel closed once an entry applied after the call
// writes (sets or deletes) one of keys, the store's own keys (for the
// engine: a key's record), and a func that drops the watch.
func (s *Shard) Watch(keys [][]byte) (<-chan struct{}, func()) {
	ws := &s.watches
	w := &keyWatch{keys: keys, ch: make(chan struct{})}
	ws.mu.Lock()
	if ws.set == nil {
		ws.set = map[*keyWatch]struct{}{}
	}
	ws.set[w] = struct{}{}
	ws.n.Store(int32(len(ws.set)))
	ws.mu.Unlock()
	return w.ch, func() {
		ws.mu.Lock()
		ws.drop(w, false)
		ws.mu.Unlock()
	}
}

// drop removes w, closing its channel if fire; ws.mu is held.
func (ws *keyWatches) drop(w *keyWatch, fire bool) {
	if _, ok := ws.set[w]; !ok {
		return
	}
	delete(ws.set, w)
	ws.n.Store(int32(len(ws.set)))
	if fire {
		close(w.ch)
	}
}

// written fires the watches of the keys in writes or in one of ranges,
// [lower, upper) deleted (FLUSHDB), or all of them with all.
func (ws *keyWatches) written(writes map[string][]byte, ranges [][2][]byte, all bool) {
	if ws.n.Load() == 0 {
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := range ws.set {
		for _, k := range w.keys {
			_, ok := writes[string(k)]
			if ok || all || slices.ContainsFunc(ranges, func(r [2][]byte) bool { return inRange(string(k), r[0], r[1]) }) {
				ws.drop(w, true)
				break
			}
		}
	}
}
