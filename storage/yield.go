package storage

import (
	"time"
)

// LatencySource reports how many syncs a node's foreground work has made
// so far and the seconds they took in all: RaftLogs' journal syncs, which
// every acknowledged write waits for.
type LatencySource func() (syncs uint64, seconds float64)

// A yielding throttle sets its rate from the node's Raft log syncs, so a
// snapshot copy takes what the disk and CPU spare and no more, as LEDBAT
// does for a background transfer: while the syncs take at most
// yieldRelax times their quiet time (their mean over windows with no
// copy), the rate rises (to no limit); past yieldTarget times, it falls.
// With no writes, or no contention (the copy on another disk), the copy
// runs unlimited; on a disk the Raft logs share it slows until their syncs
// are back under 1.8 times their quiet time (on this project's test VM,
// 2x left the writes 0.48-0.52x of their rate, 1.8x 0.55-0.57x).
const (
	yieldWindow = 100 * time.Millisecond // how often the rate is set
	// yieldMinSyncs is the fewest syncs a window needs to say anything:
	// fewer (a membership change's, say) is no foreground to yield to.
	yieldMinSyncs = 10
	yieldTarget   = 1.8
	yieldRelax    = 1.4
	yieldCut      = 0.7  // the rate's factor when the syncs are slow
	yieldRaise    = 1.15 // and when they are not
	// yieldQuietWeight is a quiet window's weight in the quiet time (an
	// exponentially weighted mean).
	yieldQuietWeight = 0.2
	// yieldBaseDrift is how much the quiet time rises per window of a
	// copy that finds the syncs slow (about 1% a second), so a lasting
	// slowdown of the disk is learnt in a minute or so while a copy's own
	// contention is yielded to.
	yieldBaseDrift = 1.001
	// yieldFloor is the least rate: a copy always moves.
	yieldFloor = 8 << 20
	// yieldIdle is how many windows with no copy end one: the next copy
	// starts unlimited (or at the ceiling).
	yieldIdle = 10
)

// yieldControl is a yielding throttle's state between windows.
type yieldControl struct {
	max   float64 // bytes a second at most (0: none)
	rate  float64 // bytes a second now (0: no limit)
	base  float64 // the syncs' quiet time, seconds (0: none seen yet)
	syncs uint64  // the source's reading at the last window
	secs  float64
	idle  int // windows in a row with no copy
}

// step takes the source's reading at the end of a window and the bytes the
// throttle passed in it, and returns the rate for the next window (0: no
// limit).
func (c *yieldControl) step(syncs uint64, secs float64, taken int64, window time.Duration) float64 {
	if syncs < c.syncs { // a new source: start over from this reading
		c.syncs, c.secs = syncs, secs
		return c.rate
	}
	n, s := syncs-c.syncs, secs-c.secs
	c.syncs, c.secs = syncs, secs
	if n < yieldMinSyncs {
		return c.raise() // no foreground to yield to
	}
	lat := s / float64(n)
	if c.base == 0 {
		c.base = lat
	}
	if taken == 0 {
		// No copy in this window: the syncs' time is their quiet time.
		// After yieldIdle such windows the next copy starts afresh.
		c.base += yieldQuietWeight * (lat - c.base)
		if c.idle++; c.idle >= yieldIdle {
			c.rate = c.max
		}
		return c.rate
	}
	c.idle = 0
	switch {
	case lat > yieldTarget*c.base:
		c.base *= yieldBaseDrift
		if c.rate == 0 {
			c.rate = float64(taken) / window.Seconds() // what it took
		}
		c.rate = max(c.rate*yieldCut, yieldFloor)
	case lat < yieldRelax*c.base:
		return c.raise()
	}
	return c.rate
}

// raise lifts the rate by yieldRaise, to no limit (or max) once it is
// past anything a disk does.
func (c *yieldControl) raise() float64 {
	if c.rate != 0 {
		c.rate *= yieldRaise
		if c.max != 0 && c.rate >= c.max {
			c.rate = c.max
		} else if c.max == 0 && c.rate > 4<<30 {
			c.rate = 0
		}
	}
	return c.rate
}

// NewYieldingThrottle returns a throttle that sets its rate every
// yieldWindow from src (see yieldControl), never above maxBytesPerSec (0:
// no ceiling). Close stops it.
func NewYieldingThrottle(src LatencySource, maxBytesPerSec int64) *Throttle {
	t := &Throttle{now: time.Now, sleep: time.Sleep, stop: make(chan struct{})}
	m := float64(max(maxBytesPerSec, 0))
	c := &yieldControl{max: m, rate: m}
	c.syncs, c.secs = src()
	t.setRate(c.rate)
	go func() {
		tick := time.NewTicker(yieldWindow)
		defer tick.Stop()
		var bytes uint64 // the throttle's count at the last window
		for {
			select {
			case <-t.stop:
				return
			case <-tick.C:
			}
			now := t.Stats().Bytes
			syncs, secs := src()
			t.setRate(c.step(syncs, secs, int64(now-bytes), yieldWindow))
			bytes = now
		}
	}()
	return t
}

// setRate makes the throttle's rate bytesPerSec (0: no limit).
func (t *Throttle) setRate(bytesPerSec float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if bytesPerSec <= 0 {
		t.nsPerByte = 0
		return
	}
	t.nsPerByte = float64(time.Second) / bytesPerSec
}

// Close stops a yielding throttle's controller; other throttles (and
// nil) have none.
func (t *Throttle) Close() {
	if t != nil && t.stop != nil {
		t.stopOnce.Do(func() { close(t.stop) })
	}
}
