package actors

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testwait"
)

// TestExpiryTicker: one ticker calls every shard's check each tick, a
// removed check no more after the tick under way, and the ticker stops
// when the last check goes (and starts again with the next one).
func TestExpiryTicker(t *testing.T) {
	var tk expiryTicker
	var a, b atomic.Int64
	removeA := tk.add(5*time.Millisecond, nil, func() { a.Add(1) })
	removeB := tk.add(5*time.Millisecond, nil, func() { b.Add(1) })
	testwait.For(t, 5*time.Second, time.Millisecond, "both checks called", func() error {
		if a.Load() < 3 || b.Load() < 3 {
			return fmt.Errorf("a %d, b %d calls", a.Load(), b.Load())
		}
		return nil
	})
	removeA()
	removeA() // twice: no effect
	// At most the tick under way calls a after its removal.
	afterRemoval := a.Load()
	startB := b.Load()
	testwait.For(t, 5*time.Second, time.Millisecond, "b called on", func() error {
		if b.Load() < startB+5 {
			return fmt.Errorf("b %d calls since a's removal", b.Load()-startB)
		}
		return nil
	})
	if n := a.Load() - afterRemoval; n > 1 {
		t.Fatalf("a removed, still called %d times", n)
	}

	removeB()
	tk.mu.Lock()
	stopped := tk.stop == nil && len(tk.checks) == 0
	tk.mu.Unlock()
	if !stopped {
		t.Fatal("the last check removed, the ticker still runs")
	}

	var c atomic.Int64
	removeC := tk.add(5*time.Millisecond, nil, func() { c.Add(1) })
	defer removeC()
	testwait.For(t, 5*time.Second, time.Millisecond, "a check added after the stop called", func() error {
		if c.Load() < 2 {
			return fmt.Errorf("c %d calls", c.Load())
		}
		return nil
	})
}

// TestExpiryTickerHeld: while the node holds its expiry (CLIENT PAUSE),
// the ticks call no check; once it does not, they do again.
func TestExpiryTickerHeld(t *testing.T) {
	var tk expiryTicker
	var holding atomic.Bool
	holding.Store(true)
	var ticks, calls atomic.Int64
	remove := tk.add(5*time.Millisecond, func() bool { ticks.Add(1); return holding.Load() }, func() { calls.Add(1) })
	defer remove()
	testwait.For(t, 5*time.Second, time.Millisecond, "five held ticks", func() error {
		if n := ticks.Load(); n < 5 {
			return fmt.Errorf("%d ticks", n)
		}
		return nil
	})
	if n := calls.Load(); n != 0 {
		t.Fatalf("held, the ticks called the check %d times", n)
	}
	holding.Store(false)
	testwait.For(t, 5*time.Second, time.Millisecond, "the check called once not held", func() error {
		if n := calls.Load(); n < 2 {
			return fmt.Errorf("%d calls", n)
		}
		return nil
	})
}
