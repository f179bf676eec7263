package actors

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// ask answers as a request does, and ends with its context when no answer
// comes (the actor stopped with the request in its mailbox, here one that
// never answers).
func TestAskEndsWithItsContext(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(string); ok && m == "ping" {
			ctx.Respond("pong")
		}
	}))
	res, err := ask(context.Background(), sys, pid, "ping", 5*time.Second)
	if err != nil || res != "pong" {
		t.Fatalf("ask ping: %v, %v", res, err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	why := errors.New("the transport closes")
	time.AfterFunc(50*time.Millisecond, func() { cancel(why) })
	start := time.Now()
	res, err = ask(ctx, sys, pid, "unanswered", time.Minute)
	if !errors.Is(err, why) || res != nil {
		t.Fatalf("ask unanswered: %v, %v; want the context's cause", res, err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("ask took %v after its context ended", took)
	}
}
