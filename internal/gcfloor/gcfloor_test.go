package gcfloor

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testwait"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, floor uint64
		base, want  int
	}{
		{live: 25 * mib, floor: 256 * mib, base: 100, want: 924}, // 25 + 25*9.24 = 256
		{live: 64 * mib, floor: 256 * mib, base: 100, want: 300},
		{live: 128 * mib, floor: 256 * mib, base: 100, want: 100}, // Go's own goal reaches the floor
		{live: 1 << 30, floor: 256 * mib, base: 100, want: 100},
		{live: 100 * mib, floor: 256 * mib, base: 200, want: 200},
		{live: 0, floor: 256 * mib, base: 100, want: 6300},   // reckoned as 4 MiB: the runtime's minimum goal is then 252 MiB
		{live: mib, floor: 256 * mib, base: 100, want: 6300}, // likewise
		{live: 3, floor: 10, base: 50, want: 50},             // tiny floors: below the 4 MiB minimum
	} {
		got := Percent(c.live, c.floor, c.base)
		if got != c.want {
			t.Errorf("Percent(%d, %d, %d) = %d, want %d", c.live, c.floor, c.base, got, c.want)
		}
		if got > c.base {
			live := max(c.live, minLive)
			if goal := live + live*uint64(got)/100; goal < c.floor {
				t.Errorf("Percent(%d, %d, %d) = %d: goal %d below the floor", c.live, c.floor, c.base, got, goal)
			}
			if minGoal := uint64(minLive) * uint64(got) / 100; minGoal > c.floor {
				t.Errorf("Percent(%d, %d, %d) = %d: the runtime's minimum goal %d is above the floor", c.live, c.floor, c.base, got, minGoal)
			}
		}
	}
}

func gogc() int64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// A floor raises GOGC after each collection while the live heap is
// small, follows the live heap as it grows, and Stop sets it back.
func TestFloorFollowsTheLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	f := Start(512<<20, 100)
	defer f.Stop()
	runtime.GC()
	testwait.For(t, 10*time.Second, 10*time.Millisecond, "GOGC raised for a small live heap", func() error {
		if g := gogc(); g <= 1000 {
			return fmt.Errorf("GOGC %d", g)
		}
		return nil
	})
	small := gogc()

	// 200 MiB live: the floor needs a smaller percentage.
	held := make([][]byte, 200)
	for i := range held {
		held[i] = make([]byte, 1<<20)
	}
	runtime.GC()
	testwait.For(t, 10*time.Second, 10*time.Millisecond, "GOGC lowered as the live heap grew", func() error {
		if g := gogc(); g >= min(small, 200) {
			return fmt.Errorf("GOGC %d", g)
		}
		return nil
	})
	runtime.KeepAlive(held)

	f.Stop()
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC %d after Stop, want 100", got)
	}
	runtime.GC()
	runtime.GC()
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC %d after Stop and two collections, want 100", got)
	}
}
