package storage

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a Throttle's clock: sleeping moves it on, and every sleep
// is kept.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func fakeThrottle(bytesPerSec int64) (*Throttle, *fakeClock) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	th := NewThrottle(bytesPerSec)
	th.now = func() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
	th.sleep = func(d time.Duration) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.t = c.t.Add(d)
		c.sleeps = append(c.sleeps, d)
	}
	return th, c
}

func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func (c *fakeClock) slept() (total time.Duration, n int, shortest time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, d := range c.sleeps {
		total += d
		if i == 0 || d < shortest {
			shortest = d
		}
	}
	return total, len(c.sleeps), shortest
}

// A throttle passes a burst at once, then holds bytes to its rate, in
// sleeps of at least throttleMinSleep; an idle spell is credited, up to a
// burst.
func TestThrottleHoldsItsRate(t *testing.T) {
	if NewThrottle(0) != nil || NewThrottle(-1) != nil {
		t.Fatal("a rate of 0 or less must mean no throttle")
	}
	var none *Throttle
	none.take(1 << 30) // no limit: returns at once

	const rate = 16 << 20
	th, c := fakeThrottle(rate)
	for range (64 << 20) / (256 << 10) {
		th.take(256 << 10)
	}
	total, n, shortest := c.slept()
	// 64 MiB at 16 MiB/s, less the first burst, less at most one
	// untaken sleep carried at the end.
	want := time.Duration(float64(64<<20-throttleBurst) / rate * float64(time.Second))
	if total > want || total < want-throttleMinSleep {
		t.Fatalf("slept %v for 64 MiB at 16 MiB/s, want %v (less up to %v)", total, want, throttleMinSleep)
	}
	if shortest < throttleMinSleep {
		t.Fatalf("a sleep of %v, want none under %v", shortest, throttleMinSleep)
	}
	if most := int(want / throttleMinSleep); n > most {
		t.Fatalf("%d sleeps, want at most %d", n, most)
	}
	if st := th.Stats(); st.Bytes != 64<<20 || st.Slept != total || st.Rate != rate {
		t.Fatalf("stats %+v, want 64 MiB taken, %v slept, a rate of %d", st, total, rate)
	}
	if st := none.Stats(); st != (ThrottleStats{}) {
		t.Fatalf("no throttle's stats: %+v", st)
	}

	// After ten idle seconds one burst goes at once, and the next byte
	// waits its share: the idle time is not all credited.
	c.advance(10 * time.Second)
	before, n0, _ := c.slept()
	th.take(throttleBurst)
	if after, _, _ := c.slept(); after != before {
		t.Fatalf("a burst after an idle spell slept %v", after-before)
	}
	th.take(1 << 20)
	after, n1, _ := c.slept()
	if n1 != n0+1 || after-before < time.Second/16 {
		t.Fatalf("1 MiB past the burst slept %v in %d sleeps, want one of 1/16 s", after-before, n1-n0)
	}
}

// A node's throttle paces both ends of a transfer: the bytes a store
// sends and the bytes one receives, each stream whole and checked.
func TestSnapshotTransferIsThrottled(t *testing.T) {
	s, snaps := openTestShard(t, t.TempDir())
	defer s.Close()
	fillIncompressible(t, s, 24)
	id := persist(t, s, snaps, 24)
	const rate = 8 << 20
	for _, side := range []string{"sender", "receiver"} {
		_, peer := openTestShard(t, t.TempDir())
		th, c := fakeThrottle(rate)
		snaps.SetThrottle(nil)
		if side == "sender" {
			snaps.SetThrottle(th)
		} else {
			peer.SetThrottle(th)
		}
		if _, err := sendSnapshot(t, snaps, peer, id); err != nil {
			t.Fatalf("%s throttled: %v", side, err)
		}
		total, _, _ := c.slept()
		// At least 24 MiB of files at 8 MiB/s, less the first burst
		// and one carried sleep.
		if least := time.Duration(float64(24<<20-throttleBurst)/rate*float64(time.Second)) - throttleMinSleep; total < least {
			t.Fatalf("%s throttled: slept %v, want at least %v", side, total, least)
		}
	}
}
