package actors

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/supervisor"
)

// Node is a running node: its actor system and supervision tree.
type Node struct {
	System *actor.ActorSystem
	Tree   *supervisor.Tree
}

// Start builds the actor system and starts the tree in order. ctx bounds
// the start only.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Node, error) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return protoactorLogger(log)
	}))
	sys.EventStream.Subscribe(func(ev any) { logEvent(log, ev) })
	tree, err := supervisor.Start(ctx, sys, RootName, Tree(cfg))
	if err != nil {
		sys.Shutdown()
		return nil, fmt.Errorf("node: start: %w", err)
	}
	return &Node{System: sys, Tree: tree}, nil
}

// Stop shuts the tree down in reverse order and the actor system after it.
func (n *Node) Stop(ctx context.Context) error {
	defer n.System.Shutdown()
	return n.Tree.Stop(ctx)
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
