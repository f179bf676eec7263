// Package gcfloor keeps Go's collector from running while the heap is
// small.
//
// Go collects when the heap reaches twice what the last collection found
// live (GOGC=100). A node's live heap is small (tens of MiB: its caches and
// memtables are mostly outside it, or filled slowly), while a busy node
// allocates hundreds of MiB a second building big replies (LRANGE,
// HGETALL, SCAN), running scripts, or streaming snapshots: tens of
// collections a second, each marking the whole live heap, and write
// barriers on every pointer stored while one runs. A floor lets the heap
// grow to a set size before a collection, whatever the live heap, as the
// "ballast" trick does without reserving the memory: after each
// collection the GOGC percentage is set so that the next goal is the
// floor, or Go's own goal once the live heap is past half the floor.
// GOMEMLIMIT, when set, still caps the heap: the runtime collects sooner
// as the limit nears, whatever GOGC says.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// minLive is the least live heap Percent reckons with: the runtime's
// smallest heap goal is 4 MiB times GOGC/100, so a percentage made for a
// smaller live heap would set a goal above the floor. (It is also what
// Percent reckons with before the first collection.)
const minLive = 4 << 20

// Percent is the GOGC percentage that puts the heap goal after a
// collection that found live bytes live at floor, or at base's goal when
// that is higher (never below base).
func Percent(live, floor uint64, base int) int {
	live = max(live, minLive)
	if live+live*uint64(base)/100 >= floor {
		return base
	}
	// The smallest p with live + live*p/100 >= floor.
	return int(((floor-live)*100 + live - 1) / live)
}

// Floor keeps the heap goal at or above a size until stopped.
type Floor struct {
	floor uint64
	base  int

	mu      sync.Mutex
	stopped bool
	percent int // the GOGC percentage set last
}

// sentinel is allocated each cycle for its cleanup, which runs once a
// collection found it unreachable. It holds a pointer so that it is never
// one of the tiny allocations the runtime batches together (whose
// cleanups may never run).
type sentinel struct {
	_ *Floor
	_ [8]byte
}

// Start sets a floor of floor bytes on the heap goal, over GOGC base (Go's
// default is 100; base must be 1 or more), and keeps it after every
// collection until Stop.
func Start(floor uint64, base int) *Floor {
	f := &Floor{floor: floor, base: base, percent: base}
	f.adjust()
	return f
}

// adjust sets the percentage for the live heap the last collection found,
// and arms the next cycle's sentinel.
func (f *Floor) adjust() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	if p := Percent(liveHeap(), f.floor, f.base); p != f.percent {
		debug.SetGCPercent(p)
		f.percent = p
	}
	runtime.AddCleanup(new(sentinel), func(f *Floor) { f.adjust() }, f)
}

// Stop ends the floor and sets GOGC back to base.
func (f *Floor) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	f.stopped = true
	debug.SetGCPercent(f.base)
}

// liveHeap is the heap the last collection marked live (0 before the
// first collection).
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
