package storage

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// CompactionPool schedules the compactions of all of a node's shard
// stores (pebble.Options.Experimental.CompactionScheduler). Pebble's
// default scheduler, one per store, runs a goroutine that wakes every
// 100 ms for good, even with nothing to compact: with a thousand shards,
// ten thousand wake-ups a second on an idle node. And each store may run
// its compactions whatever the others run, so a burst of writes across
// many shards started as many compactions at once, on a machine with two
// cores. The pool holds no goroutine: it grants when a store asks
// (TrySchedule), when a compaction ends, when a flush raises a store's
// allowance, and, only while some store waits, every poolRecheck. It runs
// at most its limit of compactions at once across the stores, each store
// within its own allowance (GetAllowedWithoutPermission), the most
// pressing first (pebble.WaitingCompaction).
//
// Pebble's locking contract (pebble.CompactionScheduler): a store calls
// TrySchedule and UpdateGetAllowedWithoutPermission holding its own mutex,
// so the pool never calls into a store from those, and never while
// holding its own mutex, but GetAllowedWithoutPermission, which Pebble
// allows.
type CompactionPool struct {
	limit int

	mu       sync.Mutex
	running  int
	peak     int                     // the most running at once
	started  uint64                  // compactions begun, in all
	waiting  map[*poolStore]struct{} // stores that asked and were refused
	granting bool                    // a grant pass runs
	again    bool                    // something changed during the pass
	armed    bool                    // a recheck is due
}

// poolRecheck is how often the pool looks again at the stores waiting
// while none of its other prompts comes (a store's allowance grows with
// its compaction debt, and nothing tells the pool but a flush).
const poolRecheck = 100 * time.Millisecond

// NewCompactionPool returns a pool that runs up to limit compactions at
// once (0: the larger of 4 and GOMAXPROCS).
func NewCompactionPool(limit int) *CompactionPool {
	if limit <= 0 {
		limit = max(4, runtime.GOMAXPROCS(0))
	}
	return &CompactionPool{limit: limit, waiting: map[*poolStore]struct{}{}}
}

// CompactionStats is what a CompactionPool's stores compact.
type CompactionStats struct {
	// Running is the compactions running now, Peak the most that ran at
	// once, Limit the pool's limit, Started the compactions begun.
	Running, Peak, Limit int
	Started              uint64
	// Waiting is the stores that asked for one more and wait for a slot
	// (or for their own allowance).
	Waiting int
}

// Stats returns the pool's counters.
func (p *CompactionPool) Stats() CompactionStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return CompactionStats{Running: p.running, Peak: p.peak, Limit: p.limit, Started: p.started, Waiting: len(p.waiting)}
}

// startLocked counts a compaction of s begun.
func (p *CompactionPool) startLocked(s *poolStore) {
	p.running++
	s.running++
	p.started++
	p.peak = max(p.peak, p.running)
}

// scheduler returns the scheduler of one more store.
func (p *CompactionPool) scheduler() pebble.CompactionScheduler {
	return &poolStore{pool: p}
}

// poolStore is one store's scheduler, and the grant handle of its
// compactions.
type poolStore struct {
	pool *CompactionPool
	db   pebble.DBForCompaction // set by Register, before any other call
	// running is guarded by pool.mu.
	running int
	// calls is held while the pool calls into db; gone, once set, stops
	// those calls (Unregister).
	calls sync.Mutex
	gone  atomic.Bool
}

func (s *poolStore) Register(_ int, db pebble.DBForCompaction) { s.db = db }

// Unregister stops the pool's calls into the store, waiting out one
// under way.
func (s *poolStore) Unregister() {
	s.gone.Store(true)
	s.pool.mu.Lock()
	delete(s.pool.waiting, s)
	s.pool.mu.Unlock()
	s.calls.Lock() // waits out a call under way; gone stops the next
	defer s.calls.Unlock()
}

// TrySchedule runs under the store's mutex.
func (s *poolStore) TrySchedule() (bool, pebble.CompactionGrantHandle) {
	p := s.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.gone.Load() {
		return false, nil
	}
	if p.running < p.limit && s.running < s.db.GetAllowedWithoutPermission() {
		p.startLocked(s)
		delete(p.waiting, s)
		return true, s
	}
	// The store keeps the compaction it picked and asks no more until
	// the pool grants it one (Schedule).
	p.waiting[s] = struct{}{}
	p.armLocked()
	return false, nil
}

// UpdateGetAllowedWithoutPermission runs under the store's mutex, after a
// flush: a grant pass runs on its own goroutine if the store waits.
func (s *poolStore) UpdateGetAllowedWithoutPermission() {
	p := s.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.waiting[s]; ok && s.running < s.db.GetAllowedWithoutPermission() && p.running < p.limit {
		go p.grant()
	}
}

func (s *poolStore) Started()                                          {}
func (s *poolStore) MeasureCPU(pebble.CompactionGoroutineKind)         {}
func (s *poolStore) CumulativeStats(pebble.CompactionGrantHandleStats) {}

// Done ends one of the store's compactions, without locks held: the slot
// goes to the store that needs it most.
func (s *poolStore) Done() {
	p := s.pool
	p.mu.Lock()
	p.running--
	s.running--
	p.mu.Unlock()
	p.grant()
}

// armLocked makes the pool look at its waiting stores again after
// poolRecheck, unless a look is due already.
func (p *CompactionPool) armLocked() {
	if p.armed || len(p.waiting) == 0 {
		return
	}
	p.armed = true
	time.AfterFunc(poolRecheck, func() {
		p.mu.Lock()
		p.armed = false
		p.mu.Unlock()
		p.grant()
	})
}

// grant starts waiting stores' compactions while the pool has room, the
// most pressing first. One pass at a time; a call during a pass makes it
// go round once more.
func (p *CompactionPool) grant() {
	p.mu.Lock()
	if p.granting {
		p.again = true
		p.mu.Unlock()
		return
	}
	p.granting = true
	for {
		p.again = false
		var cands []*poolStore
		if p.running < p.limit {
			for s := range p.waiting {
				if s.running < s.db.GetAllowedWithoutPermission() {
					cands = append(cands, s)
				}
			}
		}
		p.mu.Unlock()
		best, idle := pickWaiting(cands)
		p.mu.Lock()
		for _, s := range idle {
			delete(p.waiting, s)
		}
		if best != nil && p.running < p.limit && !best.gone.Load() {
			p.startLocked(best)
			p.mu.Unlock()
			ok := best.call(func(db pebble.DBForCompaction) bool { return db.Schedule(best) })
			p.mu.Lock()
			if !ok {
				p.running--
				best.running--
				delete(p.waiting, best)
			}
			continue // more may fit
		}
		if !p.again {
			break
		}
	}
	p.granting = false
	p.armLocked()
	p.mu.Unlock()
}

// pickWaiting asks each candidate for the compaction it waits to run and
// returns the most pressing one's store, and the stores that no longer
// wait.
func pickWaiting(cands []*poolStore) (best *poolStore, idle []*poolStore) {
	var bestWC pebble.WaitingCompaction
	for _, s := range cands {
		var wc pebble.WaitingCompaction
		waits := s.call(func(db pebble.DBForCompaction) bool {
			var ok bool
			ok, wc = db.GetWaitingCompaction()
			return ok
		})
		switch {
		case !waits:
			idle = append(idle, s)
		case best == nil || morePressing(wc, bestWC):
			best, bestWC = s, wc
		}
	}
	return best, idle
}

// morePressing orders compactions as Pebble's own picker does: a needed
// one before an optional one, then by priority, then by score.
func morePressing(a, b pebble.WaitingCompaction) bool {
	if a.Optional != b.Optional {
		return !a.Optional
	}
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	return a.Score > b.Score
}

// call runs f on the store's DB unless it unregistered (false then).
func (s *poolStore) call(f func(pebble.DBForCompaction) bool) bool {
	s.calls.Lock()
	defer s.calls.Unlock()
	if s.gone.Load() {
		return false
	}
	return f(s.db)
}
