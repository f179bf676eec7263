package server

import (
	"slices"
	"sync"
)

// blockQueues orders this node's blocked commands as Redis does: the
// clients blocked on a key are served in the order they blocked. Each
// (shard, key, kind) has a queue of the commands waiting there; after
// its first try, a command tries only the keys it is first in line for,
// and the next in line is woken when the first leaves (served, timed
// out, unblocked or gone), so what one write brings goes to the client
// that waited longest, then the next, as in Redis.
//
// The kind keeps apart what does not compete for the same elements:
// list pops ("l"), sorted-set pops ("z"), and each consumer group of
// a stream ("g" and the group's name). XREAD takes nothing from anyone
// and has no queue.
//
// The queues are this node's: clients blocked on another node race with
// the first in line here for what a write brings.
type blockQueues struct {
	mu sync.Mutex
	q  map[blockKey][]*blockWaiter
}

type blockKey struct {
	shard int
	kind  string
	key   string
}

// blockWaiter is one blocked command in the queues of its keys.
type blockWaiter struct {
	keys []blockKey
	// turn has a token when the waiter may have become first in line
	// for one of its keys: it looks again.
	turn chan struct{}
}

// join puts a command waiting on keys at the end of each key's queue.
func (bq *blockQueues) join(shard int, kind string, keys [][]byte) *blockWaiter {
	w := &blockWaiter{turn: make(chan struct{}, 1)}
	bq.mu.Lock()
	defer bq.mu.Unlock()
	if bq.q == nil {
		bq.q = map[blockKey][]*blockWaiter{}
	}
	for _, k := range keys {
		bk := blockKey{shard: shard, kind: kind, key: string(k)}
		if slices.Contains(bq.q[bk], w) {
			continue // a key named twice (BLPOP k k 0) is one place in line
		}
		w.keys = append(w.keys, bk)
		bq.q[bk] = append(bq.q[bk], w)
	}
	return w
}

// first is the set of w's keys it is first in line for.
func (bq *blockQueues) first(w *blockWaiter) map[string]bool {
	bq.mu.Lock()
	defer bq.mu.Unlock()
	heads := map[string]bool{}
	for _, k := range w.keys {
		if bq.q[k][0] == w {
			heads[k.key] = true
		}
	}
	return heads
}

// leave takes w out of every queue, and wakes whoever is first in line
// after it.
func (bq *blockQueues) leave(w *blockWaiter) {
	bq.mu.Lock()
	defer bq.mu.Unlock()
	for _, k := range w.keys {
		q := bq.q[k]
		i := slices.Index(q, w)
		if i < 0 {
			continue
		}
		q = append(q[:i], q[i+1:]...)
		if len(q) == 0 {
			delete(bq.q, k)
			continue
		}
		bq.q[k] = q
		if i == 0 {
			select {
			case q[0].turn <- struct{}{}:
			default: // it has a token already
			}
		}
	}
}
