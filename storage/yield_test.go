package storage

import (
	"math"
	"testing"
	"time"
)

// window feeds c one window of syncs of lat seconds each (n of them) and
// taken bytes passed, and returns the rate it sets.
func (c *yieldControl) window(n uint64, lat float64, taken int64) float64 {
	return c.step(c.syncs+n, c.secs+float64(n)*lat, taken, yieldWindow)
}

const mib = 1 << 20

// The rate falls while the syncs take more than yieldTarget times their
// quiet time and
// a copy runs, holds between 1.5 and 2 times, rises back to no limit when
// they are quiet, and never falls below the floor.
func TestYieldFollowsTheSyncs(t *testing.T) {
	c := &yieldControl{}
	if r := c.window(100, 0.001, 0); r != 0 {
		t.Fatalf("quiet syncs, no copy: rate %v, want no limit", r)
	}
	// A copy starts at 300 MiB/s (30 MiB a window); the syncs take 3x.
	r := c.window(100, 0.003, 30*mib)
	if want := 300 * mib * yieldCut; r != want {
		t.Fatalf("first slow window: rate %.0f MiB/s, want %.0f (what the copy took, cut)", r/mib, want/mib)
	}
	r2 := c.window(100, 0.003, int64(r/10))
	if r2 != r*yieldCut {
		t.Fatalf("second slow window: rate %.0f MiB/s, want %.0f", r2/mib, r*yieldCut/mib)
	}
	// Between yieldRelax and yieldTarget times: held.
	if r3 := c.window(100, 0.0017, int64(r2/10)); r3 != r2 {
		t.Fatalf("syncs at 1.7x: rate %.0f MiB/s, want it held at %.0f", r3/mib, r2/mib)
	}
	// Quiet again: up by yieldRaise a window, then no limit.
	if r4 := c.window(100, 0.0011, int64(r2/10)); r4 != r2*yieldRaise {
		t.Fatalf("quiet syncs: rate %.0f MiB/s, want %.0f", r4/mib, r2*yieldRaise/mib)
	}
	windows := 0
	for c.rate != 0 {
		if windows++; windows > 100 {
			t.Fatalf("rate %.0f MiB/s after 100 quiet windows, want no limit", c.rate/mib)
		}
		c.window(100, 0.001, 10*mib)
	}
	// However slow the syncs, the copy moves.
	c.window(100, 0.01, 30*mib)
	for range 100 {
		c.window(100, 0.01, 1*mib)
	}
	if c.rate != yieldFloor {
		t.Fatalf("after long contention: rate %.1f MiB/s, want the floor %d", c.rate/mib, yieldFloor/mib)
	}
	// A window with too few syncs has no foreground to yield to.
	if r := c.window(yieldMinSyncs-1, 0.05, 1*mib); r != yieldFloor*yieldRaise {
		t.Fatalf("%d syncs in a window: rate %.1f MiB/s, want it raised", yieldMinSyncs-1, r/mib)
	}
}

// The quiet time is the weighted mean of the windows with no copy; under a
// copy it rises only slowly, so a copy of minutes keeps yielding, and a
// copy's fast windows do not lower it.
func TestYieldQuietTimeDriftsSlowly(t *testing.T) {
	c := &yieldControl{}
	for range 30 {
		c.window(100, 0.001, 0)
	}
	c.window(100, 0.002, 0)
	if want := 0.001 + yieldQuietWeight*0.001; math.Abs(c.base-want) > 1e-9 {
		t.Fatalf("quiet time %.3f ms after 30 windows of 1 ms and one of 2 ms, want %.3f", c.base*1000, want*1000)
	}
	quiet := c.base
	c.window(100, 0.0005, 8*mib)
	if c.base != quiet {
		t.Fatalf("a copy's window of 0.5 ms moved the quiet time from %.3f to %.3f ms", quiet*1000, c.base*1000)
	}
	for range 600 { // a minute of contention
		c.window(100, 0.004, 8*mib)
	}
	if c.base > quiet*2 {
		t.Fatalf("quiet time %.2f ms after a minute of 4 ms syncs, want under %.2f", c.base*1000, quiet*2000)
	}
	if c.rate != yieldFloor {
		t.Fatalf("rate %.1f MiB/s after a minute of 4 ms syncs, want the floor", c.rate/mib)
	}
}

// With a ceiling, a copy starts at it, falls from it and rises back to it,
// never above; a pause of yieldIdle windows starts it afresh; a source
// that starts over (a reopened store) changes nothing.
func TestYieldKeepsUnderItsCeiling(t *testing.T) {
	c := &yieldControl{max: 64 * mib, rate: 64 * mib}
	if r := c.window(100, 0.001, 0); r != 64*mib {
		t.Fatalf("no copy: rate %.0f MiB/s, want the ceiling", r/mib)
	}
	if r := c.window(100, 0.003, 6*mib); r != 64*mib*yieldCut {
		t.Fatalf("slow syncs: rate %.0f MiB/s, want the ceiling cut", r/mib)
	}
	for range 20 {
		c.window(100, 0.001, 6*mib)
	}
	if c.rate != 64*mib {
		t.Fatalf("quiet again: rate %.0f MiB/s, want the ceiling", c.rate/mib)
	}
	// A copy that pauses keeps its rate; ten windows with none, and the
	// next copy starts at the ceiling.
	cut := c.window(100, 0.003, 6*mib)
	for i := 1; i <= yieldIdle; i++ {
		r := c.window(100, 0.003, 0)
		if want := map[bool]float64{true: 64 * mib, false: cut}[i == yieldIdle]; r != want {
			t.Fatalf("after %d windows with no copy: rate %.0f MiB/s, want %.0f", i, r/mib, want/mib)
		}
	}
	before := c.rate
	if r := c.step(3, 0.003, 6*mib, yieldWindow); r != before || c.syncs != 3 {
		t.Fatalf("a source that started over: rate %.0f MiB/s and reading %d, want %.0f and 3", r/mib, c.syncs, before/mib)
	}
}

// A yielding throttle with no foreground passes bytes at once, and Close
// can be called more than once.
func TestYieldingThrottleRuns(t *testing.T) {
	th := NewYieldingThrottle(func() (uint64, float64) { return 0, 0 }, 0)
	slept := false
	th.mu.Lock()
	th.sleep = func(time.Duration) { slept = true }
	th.mu.Unlock()
	for range 64 {
		th.take(16 * mib)
	}
	if slept {
		t.Fatal("an unlimited yielding throttle slept")
	}
	th.Close()
	th.Close()
	var none *Throttle
	none.Close()
}
