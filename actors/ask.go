package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// askEnded completes a future whose asker's context ended.
type askEnded struct{}

// ask sends msg to pid and waits for the answer, up to timeout or until
// ctx ends. A protoactor future waits its whole timeout when the actor
// stops with the request still in its mailbox (protoactor-go drops such
// messages without a dead letter); ending with ctx lets a caller that is
// itself stopping (a peer's request on a transport being closed) go at
// once.
func ask(ctx context.Context, sys *actor.ActorSystem, pid *actor.PID, msg any, timeout time.Duration) (any, error) {
	f := sys.Root.RequestFuture(pid, msg, timeout)
	// A future takes any message as its answer; after its end the
	// message is a dead letter, which nothing waits for.
	stop := context.AfterFunc(ctx, func() { sys.Root.Send(f.PID(), askEnded{}) })
	defer stop()
	res, err := f.Result()
	if _, ended := res.(askEnded); ended {
		return nil, context.Cause(ctx)
	}
	return res, err
}
