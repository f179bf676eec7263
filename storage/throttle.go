package storage

import (
	"sync"
	"time"
)

// Throttle bounds the rate of the snapshot bytes a node streams, sent and
// received together, over all its shards: a joining node's copy of each
// shard, a lagging follower's snapshot. A copy onto the disk the Raft logs
// sync to slows every sync while it runs (clusterbench -only join); a
// limit trades the copy's time for them, as TiKV's snap-io-max-bytes-per-sec
// and CockroachDB's snapshot rate do. A nil *Throttle does not limit.
//
// It is a token bucket kept as the time its debt is paid off: each byte
// pushes that time on by 1/rate, and a caller ahead of it sleeps until
// then. Sleeps shorter than throttleMinSleep are not taken but carried, so
// a stream waits tens of times a second at most, not once per read (each
// wake-up costs a context switch, dear on a VM), and an idle second is
// credited up to throttleBurst bytes. A yielding throttle
// (NewYieldingThrottle) sets its own rate as it goes.
type Throttle struct {
	mu        sync.Mutex
	nsPerByte float64 // 1/rate; 0: no limit (a yielding throttle's, for now)
	// paid is when the bytes taken so far are paid for at the rate.
	paid  time.Time
	stats ThrottleStats
	// stop ends a yielding throttle's controller (Close).
	stop     chan struct{}
	stopOnce sync.Once
	// Tests replace these.
	now   func() time.Time
	sleep func(time.Duration)
}

const (
	// throttleBurst is how much may go at once after an idle spell.
	throttleBurst = 4 << 20
	// throttleMinSleep is the shortest sleep a Throttle takes.
	throttleMinSleep = 20 * time.Millisecond
)

// NewThrottle limits to bytesPerSec; 0 or less means no limit (nil).
func NewThrottle(bytesPerSec int64) *Throttle {
	if bytesPerSec <= 0 {
		return nil
	}
	return &Throttle{nsPerByte: float64(time.Second) / float64(bytesPerSec), now: time.Now, sleep: time.Sleep}
}

// take accounts for n bytes, sleeping as long as the rate asks.
func (t *Throttle) take(n int) {
	if t == nil || n <= 0 {
		return
	}
	t.mu.Lock()
	t.stats.Bytes += uint64(n)
	if t.nsPerByte == 0 {
		t.mu.Unlock()
		return
	}
	now := t.now()
	if floor := now.Add(-t.time(throttleBurst)); t.paid.Before(floor) {
		t.paid = floor // credit for an idle spell, at most a burst
	}
	t.paid = t.paid.Add(t.time(n))
	ahead := t.paid.Sub(now)
	if ahead >= throttleMinSleep {
		t.stats.Slept += ahead
	}
	t.mu.Unlock()
	if ahead >= throttleMinSleep {
		t.sleep(ahead)
	}
}

// ThrottleStats is what a node's snapshot throttle did since it started:
// /metrics exports it.
type ThrottleStats struct {
	// Bytes the streams sent and received; Slept the time they waited.
	Bytes uint64
	Slept time.Duration
	// Rate is the limit now, bytes a second (0: none).
	Rate float64
}

// Stats returns the throttle's counters; a nil throttle has none.
func (t *Throttle) Stats() ThrottleStats {
	if t == nil {
		return ThrottleStats{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stats
	if t.nsPerByte > 0 {
		st.Rate = float64(time.Second) / t.nsPerByte
	}
	return st
}

// time is how long n bytes take at the rate.
func (t *Throttle) time(n int) time.Duration { return time.Duration(float64(n) * t.nsPerByte) }
