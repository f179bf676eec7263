package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// askEnded completes a future whose asker's context ended.
type askEnded struct{}

// Ask sends msg to pid and waits for the answer, up to timeout or until
// ctx ends. A protoactor future knows nothing of its caller: a peer's
// request whose connection went, or which the transport's Close cancels,
// would wait for a busy actor's answer until the timeout, and Close with
// it. (An actor that stops with the request in its mailbox answers it as
// a dead letter: supervisor's refusing mailbox.)
func Ask(ctx context.Context, sys *actor.ActorSystem, pid *actor.PID, msg any, timeout time.Duration) (any, error) {
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
