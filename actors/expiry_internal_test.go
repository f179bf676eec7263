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
	removeA := tk.add(5*time.Millisecond, func() { a.Add(1) })
	removeB := tk.add(5*time.Millisecond, func() { b.Add(1) })
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
	removeC := tk.add(5*time.Millisecond, func() { c.Add(1) })
	defer removeC()
	testwait.For(t, 5*time.Second, time.Millisecond, "a check added after the stop called", func() error {
		if c.Load() < 2 {
			return fmt.Errorf("c %d calls", c.Load())
		}
		return nil
	})
}
