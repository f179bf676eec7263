package actors_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/supervisor"
)

func TestNodeStartsUserActorsAndStops(t *testing.T) {
	stopped := make(chan struct{})
	user := supervisor.Worker("probe", func() actor.Actor {
		return actor.ReceiveFunc(func(ctx actor.Context) {
			switch ctx.Message().(type) {
			case *actor.Stopping:
				close(stopped)
			case string:
				ctx.Respond("pong")
			}
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := actors.Start(ctx, actors.Config{User: []supervisor.ChildSpec{user}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := actor.NewPID(n.System.Address(), "node/user/probe")
	if res, err := n.System.Root.RequestFuture(pid, "ping", 5*time.Second).Result(); err != nil || res != "pong" {
		t.Fatalf("request: %v %v", res, err)
	}
	tree, err := supervisor.FormatTree(n.System.Root, n.Tree.PID(), 5*time.Second)
	if err != nil || !strings.Contains(tree, "probe") {
		t.Fatalf("tree: %v\n%s", err, tree)
	}
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("user actor was not stopped by the node's stop")
	}
}

func TestTreeIsValid(t *testing.T) {
	spec := actors.Tree(actors.Config{})
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(supervisor.FormatSpec(actors.RootName, spec), "user") {
		t.Fatal("the user supervisor is missing from the tree")
	}
}
