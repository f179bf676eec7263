package supervisor_test

// Benchmarks of the supervision runtime against bare protoactor-go, each pair
// measured in the same run: every benchmark has a "coppice" and a "bare"
// sub-benchmark. See docs/benchmarks.md for figures and the command.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/supervisor"
)

// benchSystem is an actor system whose logger discards everything:
// protoactor-go logs every crash at info level, which would dominate the
// restart figures.
func benchSystem() *actor.ActorSystem {
	return actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
}

type (
	ping  struct{ _ int } // not zero-sized: each &ping{} is its own allocation
	crash struct{}
)

// echo answers a *ping with itself and panics on a *crash.
type echo struct{}

func (echo) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *ping:
		ctx.Respond(m)
	case *crash:
		panic("bench crash")
	}
}

func newEcho() actor.Actor { return echo{} }

const benchTimeout = 5 * time.Second

// neverGiveUp is a restart intensity the benchmarks never reach.
const (
	neverGiveUpIntensity = 1 << 30
	neverGiveUpPeriod    = time.Hour
)

func startTree(b *testing.B, sys *actor.ActorSystem, name string, spec supervisor.Spec) *supervisor.Tree {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	tree, err := supervisor.Start(ctx, sys, name, spec)
	if err != nil {
		b.Fatal(err)
	}
	return tree
}

func stopTree(b *testing.B, tree *supervisor.Tree) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	if err := tree.Stop(ctx); err != nil {
		b.Fatal(err)
	}
}

// benchRequests runs b.N request/reply round trips to pid.
func benchRequests(b *testing.B, sys *actor.ActorSystem, pid *actor.PID) {
	msg := &ping{}
	// warm up: the PID caches its process on first use
	if _, err := sys.Root.RequestFuture(pid, msg, benchTimeout).Result(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		res, err := sys.Root.RequestFuture(pid, msg, benchTimeout).Result()
		if err != nil || res != msg {
			b.Fatalf("reply %v, %v", res, err)
		}
	}
	b.StopTimer()
}

// BenchmarkRequestReply is one request/reply round trip from the root
// context to an actor: supervised by a one_for_one supervisor (so wrapped in
// coppice's shell) or spawned bare from the root.
func BenchmarkRequestReply(b *testing.B) {
	b.Run("coppice", func(b *testing.B) {
		sys := benchSystem()
		tree := startTree(b, sys, "rr", supervisor.Spec{
			Intensity: neverGiveUpIntensity, Period: neverGiveUpPeriod,
			Children: []supervisor.ChildSpec{supervisor.Worker("w", newEcho)},
		})
		defer stopTree(b, tree)
		benchRequests(b, sys, actor.NewPID(sys.Address(), "rr/w"))
	})
	b.Run("bare", func(b *testing.B) {
		sys := benchSystem()
		pid, err := sys.Root.SpawnNamed(actor.PropsFromProducer(newEcho), "rr-bare")
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
		benchRequests(b, sys, actor.NewPID(sys.Address(), "rr-bare"))
	})
}

// reportLatencies reports the p50 and p99 of ds, in microseconds.
func reportLatencies(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	pct := func(p float64) float64 {
		i := int(p * float64(len(ds)-1))
		return float64(ds[i]) / float64(time.Microsecond)
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkRestart is the time from sending a crash to one child until a
// request to the same PID is answered again.
//
// coppice: the child of a one_for_one root panics; the supervisor stops the
// incarnation, spawns a new one under the same name and publishes
// CHILD_STARTED with the new restart count; on that event a request is sent
// and its reply awaited.
//
// bare: a parent with protoactor-go's one-for-one strategy (restart, high
// retry limit) restarts its panicking child in place; the request is sent
// right after the crash, waits in the suspended mailbox and is answered by
// the new incarnation. "bare" has no failure window, "bare-window1h" the
// same one-hour window as coppice.
func BenchmarkRestart(b *testing.B) {
	b.Run("coppice", func(b *testing.B) {
		sys := benchSystem()
		started := make(chan uint32, 16)
		sub := sys.EventStream.Subscribe(func(e any) {
			if ev, ok := e.(*messages.SupervisorEvent); ok &&
				ev.Kind == messages.EventKind_CHILD_STARTED && ev.Supervisor == "rs" && ev.ChildId == "w" {
				started <- ev.Restarts
			}
		})
		defer sys.EventStream.Unsubscribe(sub)
		tree := startTree(b, sys, "rs", supervisor.Spec{
			Strategy:  messages.Strategy_ONE_FOR_ONE,
			Intensity: neverGiveUpIntensity, Period: neverGiveUpPeriod,
			Children: []supervisor.ChildSpec{supervisor.Worker("w", newEcho)},
		})
		defer stopTree(b, tree)
		if r := <-started; r != 0 {
			b.Fatalf("first start has restarts %d", r)
		}
		pid := actor.NewPID(sys.Address(), "rs/w")
		msg := &ping{}
		ds := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			t0 := time.Now()
			sys.Root.Send(pid, &crash{})
			select {
			case r := <-started:
				if r != uint32(i+1) {
					b.Fatalf("restart %d: CHILD_STARTED has restarts %d", i+1, r)
				}
			case <-time.After(benchTimeout):
				b.Fatalf("restart %d: no CHILD_STARTED", i+1)
			}
			if _, err := sys.Root.RequestFuture(pid, msg, benchTimeout).Result(); err != nil {
				b.Fatalf("restart %d: %v", i+1, err)
			}
			ds = append(ds, time.Since(t0))
		}
		b.StopTimer()
		reportLatencies(b, ds)
	})
	// protoactor-go with no window (within 0) only counts failures; with a
	// window it scans every failure it ever recorded on each new one, so
	// that figure grows with the number of iterations.
	b.Run("bare", func(b *testing.B) { benchBareRestart(b, 0) })
	b.Run("bare-window1h", func(b *testing.B) { benchBareRestart(b, neverGiveUpPeriod) })
}

// benchBareRestart measures protoactor-go's own restart of a panicking
// child under a one-for-one strategy with the given window.
func benchBareRestart(b *testing.B, within time.Duration) {
	sys := benchSystem()
	childProps := actor.PropsFromProducer(newEcho)
	parentProps := actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*spawnChild); ok {
			pid, err := ctx.SpawnNamed(childProps, "w")
			if err != nil {
				panic(err)
			}
			ctx.Respond(pid)
		}
	}, actor.WithSupervisor(actor.NewOneForOneStrategy(neverGiveUpIntensity, within, actor.DefaultDecider)))
	parent, err := sys.Root.SpawnNamed(parentProps, "rs-bare")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sys.Root.StopFuture(parent).Wait() }()
	if _, err := sys.Root.RequestFuture(parent, &spawnChild{}, benchTimeout).Result(); err != nil {
		b.Fatal(err)
	}
	pid := actor.NewPID(sys.Address(), "rs-bare/w")
	msg := &ping{}
	if _, err := sys.Root.RequestFuture(pid, msg, benchTimeout).Result(); err != nil {
		b.Fatal(err)
	}
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		sys.Root.Send(pid, &crash{})
		if _, err := sys.Root.RequestFuture(pid, msg, benchTimeout).Result(); err != nil {
			b.Fatalf("restart %d: %v", i+1, err)
		}
		ds = append(ds, time.Since(t0))
	}
	b.StopTimer()
	reportLatencies(b, ds)
}

const startStopChildren = 1000

type spawnChild struct{}

// BenchmarkStartStop1000 is one full cycle: start a supervisor, add 1000
// children one request at a time, then stop it all in order.
//
// coppice: a simple_one_for_one root, StartSimpleChild x1000 (each returns
// once the child has handled Started), then Tree.Stop (all children stopped
// at once, each awaited).
//
// bare: a parent actor that spawns a child per request and answers with its
// PID (protoactor-go's Spawn returns before the child handles Started), x1000,
// then StopFuture on the parent, which stops its children and waits for them.
func BenchmarkStartStop1000(b *testing.B) {
	b.Run("coppice", func(b *testing.B) {
		sys := benchSystem()
		spec := supervisor.Spec{
			Strategy:  messages.Strategy_SIMPLE_ONE_FOR_ONE,
			Intensity: neverGiveUpIntensity, Period: neverGiveUpPeriod,
			Children: []supervisor.ChildSpec{supervisor.Worker("w", newEcho)},
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			tree := startTree(b, sys, fmt.Sprintf("ss-%d", i), spec)
			for range startStopChildren {
				if _, err := supervisor.StartSimpleChild(sys.Root, tree.PID(), benchTimeout); err != nil {
					b.Fatal(err)
				}
			}
			stopTree(b, tree)
		}
	})
	b.Run("bare", func(b *testing.B) {
		sys := benchSystem()
		childProps := actor.PropsFromProducer(newEcho)
		parentProps := actor.PropsFromFunc(func(ctx actor.Context) {
			if _, ok := ctx.Message().(*spawnChild); ok {
				ctx.Respond(ctx.Spawn(childProps))
			}
		})
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			parent, err := sys.Root.SpawnNamed(parentProps, fmt.Sprintf("ss-bare-%d", i))
			if err != nil {
				b.Fatal(err)
			}
			for range startStopChildren {
				if _, err := sys.Root.RequestFuture(parent, &spawnChild{}, benchTimeout).Result(); err != nil {
					b.Fatal(err)
				}
			}
			if err := sys.Root.StopFuture(parent).Wait(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
