package actors

// transport: supervised by node (rest_for_one), permanent worker. It owns
// the cluster listener that carries every Raft group's traffic and the
// requests peers send to this node's actors, and closes it when it stops.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/transport"
	"google.golang.org/protobuf/proto"
)

// remoteTimeout bounds a peer's request to one of this node's actors.
const remoteTimeout = 20 * time.Second

type transportActor struct {
	rt            *Runtime
	mux           *transport.Mux
	remote, beats *transport.Remote
}

func (t *transportActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		m, err := transport.Listen(t.rt.ClusterAddr, t.rt.Advertise, t.rt.ClusterTLS, t.rt.logger())
		if err != nil {
			panic(err)
		}
		if err := m.SetNode(t.rt.Name, t.rt.ClusterID); err != nil {
			m.Close()
			panic(err)
		}
		if len(t.rt.Join) > 0 {
			// A node that joins takes no connection before it knows its
			// cluster's ID (a new one learns it from gossip once it has
			// joined); a founder has made its own already.
			m.RefuseUntilCluster()
		}
		t.mux = m
		t.rt.mu.Lock()
		t.rt.sys = ctx.ActorSystem()
		t.rt.mu.Unlock()
		t.remote = transport.NewRemote(m, deliver(t.rt, ctx.ActorSystem()), remoteTimeout)
		t.beats = transport.NewRemoteOn(m, transport.StreamHeartbeats, t.rt.beats.handler, batchTimeout)
		t.rt.setMux(m, t.remote, t.beats)
		t.rt.logger().Info("cluster listener", "addr", m.Addr().String(), "mutual_tls", t.rt.ClusterTLS != nil)
	case *actor.Stopping:
		t.rt.setMux(nil, nil, nil)
		for _, r := range []*transport.Remote{t.remote, t.beats} {
			if r != nil {
				r.Close()
			}
		}
		if t.mux != nil {
			t.mux.Close()
		}
	}
}

// deliver hands a peer's request to the local actor at target and returns
// its answer.
func deliver(rt *Runtime, sys *actor.ActorSystem) transport.Handler {
	return func(ctx context.Context, target string, msg proto.Message) (proto.Message, error) {
		// A client command forwarded by a peer runs here, on the request's
		// own goroutine, while the client actor is up: the actor would only
		// hand it to a goroutine of its own, through a future and its
		// mailbox (with the sender's hint, 5-10% of a forwarded request's
		// node CPU: docs/cluster-benchmarks.md).
		if fwd, ok := msg.(*messages.Forward); ok && target == ClientPath {
			if run := rt.forwarder.Load(); run != nil {
				// Bounded by the command's own timeouts, which grow
				// with a write's bytes past the handler's deadline;
				// ended early when the peer's connection goes.
				ctx, stop := cancelOnly(ctx)
				defer stop()
				return (*run)(ctx, fwd), nil
			}
		}
		// Pub/sub: the client port queues a peer's messages for its
		// subscribers without waiting, and answers PUBSUB's queries.
		// While it is down there is no subscriber here.
		switch m := msg.(type) {
		case *messages.Publish:
			if target == ClientPath {
				reply := &messages.PublishReply{Receivers: make([]uint32, len(m.Messages))}
				if port := rt.port.Load(); port != nil {
					reply.Receivers = port.Deliver(m.Messages)
				}
				return reply, nil
			}
		case *messages.PubSubQuery:
			if target == ClientPath {
				if port := rt.port.Load(); port != nil {
					return port.AnswerPubSub(m), nil
				}
				return &messages.PubSubAnswer{Subscribers: make([]uint64, len(m.Channels))}, nil
			}
		case *messages.ScriptQuery:
			// EVALSHA on a node that lacks the script asks its peers'
			// script caches.
			if target == ClientPath {
				if port := rt.port.Load(); port != nil {
					return port.AnswerScript(m), nil
				}
				return &messages.ScriptAnswer{}, nil
			}
		}
		if _, ok := sys.ProcessRegistry.GetLocal(target); !ok {
			return nil, fmt.Errorf("no actor %s on this node", target)
		}
		timeout := remoteTimeout
		if d, ok := ctx.Deadline(); ok {
			timeout = time.Until(d)
		}
		res, err := Ask(ctx, sys, actor.NewPID(sys.Address(), target), msg, timeout)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", target, err)
		}
		ans, ok := res.(proto.Message)
		if !ok {
			return nil, fmt.Errorf("%s answered %T, not a protobuf message", target, res)
		}
		return ans, nil
	}
}

// cancelOnly returns a context that ends when parent is cancelled, but not
// when parent's deadline passes.
func cancelOnly(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	stop := context.AfterFunc(parent, func() {
		if !errors.Is(parent.Err(), context.DeadlineExceeded) {
			cancel(context.Cause(parent))
		}
	})
	return ctx, func() {
		stop()
		cancel(nil)
	}
}
