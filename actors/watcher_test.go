package actors_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/internal/testlog"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/messages"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startClusterNode(t *testing.T, name, gossip string, join ...string) *actors.Node {
	t.Helper()
	return startClusterNodeWith(t, name, gossip, nil, join...)
}

// startClusterNodeWith is startClusterNode with tune, if not nil, called
// on the node's Runtime before it starts.
func startClusterNodeWith(t *testing.T, name, gossip string, tune func(*actors.Runtime), join ...string) *actors.Node {
	t.Helper()
	rt := &actors.Runtime{Name: name, DataDir: t.TempDir(), Shards: 2, ClusterAddr: "127.0.0.1:0",
		ClientAddr: "127.0.0.1:0", GossipAddr: gossip, GossipFast: true, Join: join, Exec: setExec,
		Role: messages.Role_ROLE_VOTER, RemoveDelay: time.Hour, SyncRetries: 3}
	if tune != nil {
		tune(rt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := actors.Start(ctx, actors.Config{Runtime: rt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n.Stop(ctx)
	})
	return n
}

// nodeStatus asks n's manager for the coordinator's view.
func nodeStatus(n *actors.Node) (*messages.NodeStatusReply, error) {
	res, err := n.System.Root.RequestFuture(actor.NewPID(n.System.Address(), actors.ManagerPath), &messages.NodeStatusRequest{}, 5*time.Second).Result()
	if err != nil {
		return nil, err
	}
	st, ok := res.(*messages.NodeStatusReply)
	if !ok || st.Error != "" {
		return nil, fmt.Errorf("status %v: %v", res, st.GetError())
	}
	return st, nil
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	testwait.For(t, timeout, 50*time.Millisecond, what, cond)
}

// TestWatcherCrashRestartsItAloneAndKeepsMembership: two nodes form a
// cluster; the first node's watcher (which owns serf) crashes. It is
// restarted alone (no Raft actor restarts), and the manager still sees the
// second node alive and a member.
func TestWatcherCrashRestartsItAloneAndKeepsMembership(t *testing.T) {
	g1 := freeAddr(t)
	n1 := startClusterNode(t, "n1", g1)
	startClusterNode(t, "n2", freeAddr(t), g1)
	sees := func() error {
		st, err := nodeStatus(n1)
		if err != nil {
			return err
		}
		for _, n := range st.Nodes {
			if n.Name == "n2" && n.Member && n.Status == "alive" {
				return nil
			}
		}
		return fmt.Errorf("nodes %v", st.Nodes)
	}
	waitFor(t, 60*time.Second, "n2 a member, alive", sees)

	var mu sync.Mutex
	var events []*messages.SupervisorEvent
	sub := n1.System.EventStream.Subscribe(func(ev any) {
		if e, ok := ev.(*messages.SupervisorEvent); ok {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}
	})
	defer n1.System.EventStream.Unsubscribe(sub)
	n1.System.Root.Send(actor.NewPID(n1.System.Address(), actors.WatcherPath), &messages.Crash{Reason: "test"})
	waitFor(t, 10*time.Second, "the watcher restarted", func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events {
			if e.Kind == messages.EventKind_CHILD_STARTED && e.ChildId == "watcher" && e.Restarts == 1 {
				return nil
			}
		}
		return fmt.Errorf("events %v", events)
	})
	waitFor(t, 10*time.Second, "n2 still a member, alive", sees)
	mu.Lock()
	defer mu.Unlock()
	for _, e := range events {
		if e.ChildId != "watcher" {
			t.Errorf("a watcher crash touched %s: %v", e.ChildId, e)
		}
	}
}

// TestJoinFailureWarnedOnce: a node whose seeds do not answer tries again
// every second and warns of the same failure once (then every 30 s), the
// other tries at debug level: nodes of --bootstrap-expect started minutes
// apart wait that way.
func TestJoinFailureWarnedOnce(t *testing.T) {
	var logs testlog.Buffer
	startClusterNodeWith(t, "n1", freeAddr(t), func(rt *actors.Runtime) {
		rt.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}, freeAddr(t))
	waitFor(t, 15*time.Second, "three tries", func() error {
		if n := logs.Count(`msg="joining the cluster"`); n < 3 {
			return fmt.Errorf("%d tries", n)
		}
		return nil
	})
	if n := logs.Count(`level=WARN msg="joining the cluster"`); n != 1 {
		t.Fatalf("%d warnings of the same failure, want 1:\n%s", n, logs.String())
	}
}
