package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/supervisor"
)

// refusable records its refusal.
type refusable struct {
	once    sync.Once
	refused chan struct{}
}

func newRefusable() *refusable { return &refusable{refused: make(chan struct{})} }

func (r *refusable) Refuse() { r.once.Do(func() { close(r.refused) }) }

func (r *refusable) wait(t *testing.T, what string) {
	t.Helper()
	testwait.Recv(t, r.refused, 5*time.Second, what+" refused")
}

// What is left in a child's mailbox when it stops is answered at once (a
// request as a dead letter, a Refuser refused) instead of dropped, and a
// Refuser sent after the stop, to no actor, is refused too.
func TestStoppedChildsMailboxIsAnswered(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	entered, release := make(chan struct{}), make(chan struct{})
	// The blocked child is let go also when the test fails before it is.
	free := sync.OnceFunc(func() { close(release) })
	defer free()
	blocker := supervisor.Worker("blocker", func() actor.Actor {
		return actor.ReceiveFunc(func(ctx actor.Context) {
			switch m := ctx.Message().(type) {
			case string:
				if m == "block" {
					close(entered)
					<-release
				}
				ctx.Respond("answered " + m)
			}
		})
	})
	tree, err := supervisor.Start(context.Background(), sys, "root", supervisor.Spec{Children: []supervisor.ChildSpec{blocker}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tree.Stop(ctx); err != nil {
			t.Errorf("stopping the tree: %v", err)
		}
	}()
	pid := actor.NewPID(sys.Address(), "root/blocker")
	sys.Root.Send(pid, "block")
	testwait.Recv(t, entered, 5*time.Second, "the child blocked")
	// Queued behind the blocked message: a request and a Refuser.
	queued := sys.Root.RequestFuture(pid, "ping", 20*time.Second)
	left := newRefusable()
	sys.Root.Send(pid, left)
	terminated := make(chan error, 1)
	go func() { terminated <- supervisor.TerminateChild(sys.Root, tree.PID(), "blocker", 10*time.Second) }()
	// The stop is queued as a system message once the child is stopping,
	// and taken before "ping" when "block" returns.
	testwait.For(t, 5*time.Second, 5*time.Millisecond, "the child stopping", func() error {
		children, err := supervisor.WhichChildren(sys.Root, tree.PID(), time.Second)
		if err == nil && children[0].State != messages.ChildState_STOPPING {
			err = fmt.Errorf("state %v", children[0].State)
		}
		return err
	})
	free()
	start := time.Now()
	if _, err := queued.Result(); !errors.Is(err, actor.ErrDeadLetter) {
		t.Fatalf("the queued request: %v, want a dead letter", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the queued request was answered after %v", took)
	}
	left.wait(t, "the Refuser left in the mailbox")
	if err := testwait.Recv(t, terminated, 15*time.Second, "TerminateChild's answer"); err != nil {
		t.Fatal(err)
	}
	after := newRefusable()
	sys.Root.Send(pid, after)
	after.wait(t, "a Refuser sent to the stopped child")
}
