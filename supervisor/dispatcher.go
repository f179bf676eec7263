package supervisor

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// WarmDispatcher is a protoactor-go dispatcher for actors on a hot path
// (in a ChildSpec: Props: actor.WithDispatcher(supervisor.WarmDispatcher)).
//
// protoactor-go's default dispatcher starts a goroutine for every mailbox
// run, each with a fresh 8 KiB stack; an actor whose Receive goes deep
// (protobuf marshalling, a Raft Apply) grows and copies that stack on
// every run. Under a write load that was 5% of a node's CPU
// (runtime.newstack from the shard's Raft actor). WarmDispatcher hands
// each run to a goroutine that finished an earlier one and is waiting for
// more, starting one only when none waits; a goroutine idle for
// warmIdle exits, so an idle node keeps none.
var WarmDispatcher actor.Dispatcher = newWarmDispatcher(300, warmIdle) // 300: the default dispatcher's throughput

// warmIdle is how long a WarmDispatcher goroutine waits for another run.
const warmIdle = 10 * time.Second

type warmDispatcher struct {
	throughput int
	idle       time.Duration
	// runs is unbuffered: a send succeeds only when a goroutine waits.
	runs chan func()
	// waiting counts the goroutines waiting for a run and started those
	// ever started: what TestWarmDispatcher checks reuse by.
	waiting atomic.Int32
	started atomic.Int64
}

func newWarmDispatcher(throughput int, idle time.Duration) *warmDispatcher {
	return &warmDispatcher{throughput: throughput, idle: idle, runs: make(chan func())}
}

// Schedule runs fn on a waiting goroutine, or a new one. It never blocks.
func (d *warmDispatcher) Schedule(fn func()) {
	select {
	case d.runs <- fn:
	default:
		d.started.Add(1)
		go d.run(fn)
	}
}

func (d *warmDispatcher) Throughput() int { return d.throughput }

// run runs fn, then whatever runs are handed to it, until none comes for
// d.idle.
func (d *warmDispatcher) run(fn func()) {
	t := time.NewTimer(d.idle)
	defer t.Stop()
	for {
		fn()
		t.Reset(d.idle)
		d.waiting.Add(1)
		select {
		case fn = <-d.runs:
			d.waiting.Add(-1)
		case <-t.C:
			d.waiting.Add(-1)
			return
		}
	}
}
