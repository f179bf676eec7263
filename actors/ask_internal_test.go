package actors

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
)

// ask answers as a request does, and ends with its context when no answer
// comes (here from an actor that never answers).
func TestAskEndsWithItsContext(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(string); ok && m == "ping" {
			ctx.Respond("pong")
		}
	}))
	res, err := Ask(context.Background(), sys, pid, "ping", 5*time.Second)
	if err != nil || res != "pong" {
		t.Fatalf("ask ping: %v, %v", res, err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	why := errors.New("the transport closes")
	time.AfterFunc(50*time.Millisecond, func() { cancel(why) })
	start := time.Now()
	res, err = Ask(ctx, sys, pid, "unanswered", time.Minute)
	if !errors.Is(err, why) || res != nil {
		t.Fatalf("ask unanswered: %v, %v; want the context's cause", res, err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("ask took %v after its context ended", took)
	}
}

// A peer's request to an actor that does not answer (busy, or outside a
// supervisor's refusing mailbox) ends when the transport cancels its
// handlers, not after remoteTimeout: the transport's Close waits for them.
func TestDeliverEndsWithTheRequest(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	if _, err := sys.Root.SpawnNamed(actor.PropsFromFunc(func(actor.Context) {}), "deaf"); err != nil {
		t.Fatal(err)
	}
	handle := deliver(&Runtime{}, sys)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	res, err := handle(ctx, "deaf", &messages.ShardStatus{})
	if !errors.Is(err, context.Canceled) || res != nil {
		t.Fatalf("deliver: %v, %v; want the request's end", res, err)
	}
	if took := time.Since(start); took >= remoteTimeout/2 {
		t.Fatalf("deliver took %v after its request ended", took)
	}
}
