package actors

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/supervisor"
)

// Node is a running node: its actor system and supervision tree.
type Node struct {
	System *actor.ActorSystem
	Tree   *supervisor.Tree
	rt     *Runtime // nil for a tree of user actors only
	log    *slog.Logger
}

// Start builds the actor system and starts the tree in order. ctx bounds
// the start only.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Node, error) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return protoactorLogger(log)
	}))
	sys.EventStream.Subscribe(func(ev any) { logEvent(log, ev) })
	if cfg.Runtime != nil && cfg.Runtime.Notify == nil {
		cfg.Runtime.Notify = &kv.NotifyConfig{}
	}
	tree, err := supervisor.Start(ctx, sys, RootName, Tree(cfg))
	if err != nil {
		sys.Shutdown()
		return nil, fmt.Errorf("node: start: %w", err)
	}
	return &Node{System: sys, Tree: tree, rt: cfg.Runtime, log: log}, nil
}

// Stop hands over the leadership of every Raft group the node leads, then
// shuts the tree down in reverse order and the actor system after it.
// The hand-over comes first, while the node still serves the commands
// other nodes forward to it: a group led here goes on under a new leader
// at once instead of an election timeout after the node is gone. A group
// that comes to lead again meanwhile hands over as its actor stops.
// A stop still under way after slowStop logs what it waits for, so that a
// node killed in the middle of a hung stop leaves a trace.
func (n *Node) Stop(ctx context.Context) error {
	defer n.System.Shutdown()
	n.handOver(ctx)
	slow := time.AfterFunc(slowStop, func() {
		if n.log != nil {
			n.log.Warn("stop is slow", "after", slowStop, "stopping", n.Tree.Stopping(time.Second))
		}
	})
	defer slow.Stop()
	return n.Tree.Stop(ctx)
}

// slowStop is how long the tree's stop may take before Stop logs the
// children it still waits for (a variable for tests).
var slowStop = 10 * time.Second

// handOverWait bounds the hand-over of all groups at once (each is
// bounded by Raft's transfer timeout, a second here).
const handOverWait = 5 * time.Second

// handOver asks every group's actor to hand its leadership over, all at
// once, and waits for their answers (bounded by handOverWait and ctx; a
// group without an actor answers at once, as a dead letter). With ctx's
// time already up it does nothing: protoactor gives a future with a
// negative timeout no timer at all.
func (n *Node) handOver(ctx context.Context) {
	if n.rt == nil {
		return
	}
	wait := handOverWait
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	if wait <= 0 {
		return
	}
	var futures []*actor.Future
	for _, p := range groupPaths(n.rt.Shards) {
		futures = append(futures, n.System.Root.RequestFuture(actor.NewPID(n.System.Address(), p), handOverNow{}, wait))
	}
	for _, f := range futures {
		_, _ = f.Result() // a timeout or a dead letter: nothing to wait for
	}
}

// protoactorLogger passes on protoactor-go's own logs at warning level and
// above: it logs every crash at info level, which the supervisor events
// already report.
func protoactorLogger(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(levelFilter{log.Handler(), slog.LevelWarn}).With("lib", "protoactor")
}

type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

// WithAttrs and WithGroup keep the filter: the embedded handler's would
// return a handler without it (protoactor's logger is made With "lib",
// and its info lines, a "Recovering" for every crash and every Exit,
// came out at the node's info level).
func (f levelFilter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelFilter{f.Handler.WithAttrs(attrs), f.min}
}

func (f levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{f.Handler.WithGroup(name), f.min}
}
