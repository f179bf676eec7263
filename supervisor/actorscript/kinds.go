package actorscript

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/supervisor"
	"google.golang.org/protobuf/proto"
)

// StandardKinds returns a registry with the test actors scripts use to
// exercise supervision; add your own kinds to it.
//
//   - echo: answers every protobuf request with the message itself.
//   - failstart REASON: fails to start, with REASON.
//   - slowstop DURATION: takes DURATION to handle Stopping (to exercise
//     shutdown timeouts).
//   - panicstop: panics while stopping.
//   - exiter: on coppice.messages.Exit calls supervisor.Exit with its
//     reason (empty: a normal exit).
//   - cleanup: an echo that, when its Stopping handler (its cleanup) runs,
//     publishes a coppice.messages.SupervisorEvent with only detail set, to
//     "cleanup PATH", so scripts can tell whether the cleanup ran.
func StandardKinds() *supervisor.Kinds {
	k := supervisor.NewKinds()
	k.Register("echo", func(...any) (actor.Actor, error) { return &echo{}, nil })
	k.Register("failstart", func(args ...any) (actor.Actor, error) {
		reason := "failstart"
		if len(args) > 0 {
			reason = fmt.Sprint(args...)
		}
		return actor.ReceiveFunc(func(ctx actor.Context) {
			if _, ok := ctx.Message().(*actor.Started); ok {
				supervisor.Exit(exitReason(reason))
			}
		}), nil
	})
	k.Register("slowstop", func(args ...any) (actor.Actor, error) {
		if len(args) != 1 {
			return nil, fmt.Errorf("slowstop wants one duration argument, got %d", len(args))
		}
		d, err := time.ParseDuration(fmt.Sprint(args[0]))
		if err != nil {
			return nil, fmt.Errorf("slowstop: %w", err)
		}
		return &echo{stopping: func() { time.Sleep(d) }}, nil
	})
	k.Register("panicstop", func(...any) (actor.Actor, error) {
		return &echo{stopping: func() { panic("panic in Stopping") }}, nil
	})
	k.Register("exiter", func(...any) (actor.Actor, error) {
		return actor.ReceiveFunc(func(ctx actor.Context) {
			if m, ok := ctx.Message().(*messages.Exit); ok {
				supervisor.Exit(exitReason(m.Reason))
			}
		}), nil
	})
	k.Register("cleanup", func(...any) (actor.Actor, error) {
		return actor.ReceiveFunc(func(ctx actor.Context) {
			switch m := ctx.Message().(type) {
			case *actor.Stopping:
				ctx.ActorSystem().EventStream.Publish(&messages.SupervisorEvent{Detail: "cleanup " + ctx.Self().Id})
			case proto.Message:
				if ctx.Sender() != nil {
					ctx.Respond(m)
				}
			}
		}), nil
	})
	return k
}

type echo struct {
	stopping func()
}

func (e *echo) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Stopping:
		if e.stopping != nil {
			e.stopping()
		}
	case proto.Message:
		if ctx.Sender() != nil {
			ctx.Respond(m)
		}
	}
}

// quietLogger keeps protoactor-go's own logs (one line a crash) out of test
// output unless they are warnings.
func quietLogger(*actor.ActorSystem) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// exitReason is what the exiter and failstart kinds exit with for a
// script's reason: "" a normal exit, "shutdown" supervisor.ErrShutdown,
// "shutdown: why" supervisor.Shutdown with why, anything else an error.
func exitReason(reason string) error {
	switch why, ok := strings.CutPrefix(reason, "shutdown"); {
	case reason == "":
		return nil
	case ok && why == "":
		return supervisor.ErrShutdown
	case ok && strings.HasPrefix(why, ": "):
		return supervisor.Shutdown(errors.New(why[2:]))
	}
	return errors.New(reason)
}
