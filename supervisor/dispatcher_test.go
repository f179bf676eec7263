package supervisor

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/internal/testwait"
)

// Runs one after another reuse one goroutine; runs at once each get one;
// every run runs exactly once; idle goroutines exit.
func TestWarmDispatcher(t *testing.T) {
	// Reuse is checked with an idle time no busy machine reaches: with a
	// short one, a goroutine descheduled for longer than it between runs
	// exits, and none waits for the next run (a CI failure under -race).
	d := newWarmDispatcher(300, time.Minute)
	var ran atomic.Int64
	for range 200 {
		done := make(chan struct{})
		d.Schedule(func() { ran.Add(1); close(done) })
		<-done
		// The run's goroutine waits for the next one: wait until it does,
		// so the next Schedule finds it.
		testwait.For(t, 5*time.Second, time.Millisecond, "the goroutine waits for a run", func() error {
			if d.waiting.Load() < 1 {
				return errors.New("none waits")
			}
			return nil
		})
	}
	// One, but a run scheduled between the goroutine's count of itself as
	// waiting and its wait starts another.
	if n := d.started.Load(); n > 10 {
		t.Fatalf("200 runs one after another started %d goroutines", n)
	}
	runAtOnce(t, d, 50)
	if got := ran.Load(); got != 200 {
		t.Fatalf("%d runs ran, want 200", got)
	}

	// Idle exit, on a dispatcher of its own with a short idle time.
	e := newWarmDispatcher(300, 50*time.Millisecond)
	base := runtime.NumGoroutine()
	runAtOnce(t, e, 50)
	if n := e.started.Load(); n != 50 {
		t.Fatalf("50 runs at once started %d goroutines, want 50", n)
	}
	testwait.For(t, 5*time.Second, time.Millisecond, "idle goroutines exit", func() error {
		if n := runtime.NumGoroutine(); n > base {
			return fmt.Errorf("%d goroutines, %d before", n, base)
		}
		return nil
	})
}

// runAtOnce schedules n runs that all wait for one another, so each needs
// a goroutine of its own, and checks that each ran exactly once.
func runAtOnce(t *testing.T, d *warmDispatcher, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var ran atomic.Int64
	release := make(chan struct{})
	for range n {
		wg.Add(1)
		d.Schedule(func() { <-release; ran.Add(1); wg.Done() })
	}
	close(release)
	wg.Wait()
	if got := ran.Load(); got != int64(n) {
		t.Fatalf("%d runs ran, want %d", got, n)
	}
}

// An actor on WarmDispatcher gets its messages in order.
func TestWarmDispatcherActor(t *testing.T) {
	sys := actor.NewActorSystem()
	const n = 10000
	got := make(chan []int, 1)
	var seen []int
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if v, ok := c.Message().(int); ok {
			if seen = append(seen, v); len(seen) == n {
				got <- seen
			}
		}
	}, actor.WithDispatcher(WarmDispatcher)))
	for i := range n {
		sys.Root.Send(pid, i)
	}
	select {
	case s := <-got:
		for i, v := range s {
			if v != i {
				t.Fatalf("message %d arrived as number %d", v, i)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("not all %d messages within 10s", n)
	}
}
