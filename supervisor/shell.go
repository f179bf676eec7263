package supervisor

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
)

// control is shared by a supervisor and one incarnation of one child.
type control struct {
	// state: alive, then either finishing (the child commits to finish its
	// stop) or killed (the supervisor gave up waiting). Whoever moves first
	// wins; a killed child panics with errKilled instead of finishing, so it
	// never unregisters a PID that a new incarnation may already use.
	state atomic.Int32
	// up is set once the child handled Started without failing.
	up atomic.Bool

	mu   sync.Mutex
	exit *messages.ExitReason // set by the child on its way out
}

const (
	ctlAlive int32 = iota
	ctlFinishing
	ctlKilled
)

func (c *control) setExit(r *messages.ExitReason) {
	c.mu.Lock()
	c.exit = r
	c.mu.Unlock()
}

func (c *control) exitReason() *messages.ExitReason {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exit
}

// link is what a child knows of its supervisor.
type link struct {
	parent *actor.PID
	ctl    *control
}

// childUp tells the supervisor a child has started.
type childUp struct{ ctl *control }

// linkable is implemented by the supervisor actor, which speaks the
// supervisor protocol itself; every other actor is wrapped in a shell.
type linkable interface{ setLink(*link) }

// shell wraps a user's actor: it reports the start to the supervisor, runs
// the actor's Stopping handler so that a panic there ends the actor instead
// of restarting it (protoactor-go would restart it), turns messages.Crash
// into a panic, and gives a Go runtime error the stack where it was raised
// (runtimePanic). Every other message goes straight through.
//
// The actor always handles Started first: a message posted to it before
// it starts is held by its mailbox (refusing) until after Started.
type shell struct {
	inner actor.Actor
	link  *link
}

func (s *shell) Receive(ctx actor.Context) {
	defer keepRuntimePanicStack()
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.start(ctx)
	case *actor.Stopping:
		if s.link.ctl.state.Load() != ctlKilled {
			s.stopping(ctx)
		}
		finishStop(ctx, s.link.ctl)
	case *messages.Crash:
		panic(CrashError(m.Reason))
	default:
		s.inner.Receive(ctx)
	}
}

// start runs the actor's Started handler and reports the start to the
// supervisor.
func (s *shell) start(ctx actor.Context) {
	s.inner.Receive(ctx)
	s.link.ctl.up.Store(true)
	ctx.Send(s.link.parent, &childUp{ctl: s.link.ctl})
}

// runtimePanic is a Go runtime error an actor raised (a nil pointer, an
// index out of range, a write to a nil map: a bug, not a deliberate
// crash), with the stack where it was raised. protoactor-go recovers the
// panic far from where it happened and keeps no stack; the supervisor's
// event carries this one (ExitReason.stack) and the node logs it.
type runtimePanic struct {
	err   runtime.Error
	stack []byte
}

func (p *runtimePanic) Error() string { return p.err.Error() }

// keepRuntimePanicStack, deferred in the shell's Receive, panics again
// with what it recovered, a runtime error wrapped with its stack.
func keepRuntimePanicStack() {
	r := recover()
	if r == nil {
		return
	}
	if err, ok := r.(runtime.Error); ok {
		panic(&runtimePanic{err: err, stack: debug.Stack()})
	}
	panic(r)
}

func (s *shell) stopping(ctx actor.Context) {
	defer func() {
		if r := recover(); r != nil {
			reason := crashExit("panic while stopping: %v", r)
			if _, ok := r.(runtime.Error); ok {
				reason = crashExit("runtime panic while stopping: %v", r)
				reason.Stack = string(debug.Stack())
			}
			s.link.ctl.setExit(reason)
		}
	}()
	s.inner.Receive(ctx)
}

// finishStop commits a stopping child to finish, unless its supervisor has
// killed it already: then it stops its own children and panics, so that
// protoactor-go never completes the stop (nor removes the PID, which a new
// incarnation may hold by now).
func finishStop(ctx actor.Context, ctl *control) {
	if ctl.state.CompareAndSwap(ctlAlive, ctlFinishing) {
		return
	}
	for _, c := range ctx.Children() {
		ctx.Stop(c)
	}
	panic(errKilled)
}

// failedStart stands in for an actor whose StartFunc failed: it fails in
// Started, so a failed start takes the same path however it happened.
type failedStart struct{ err error }

func (f *failedStart) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*actor.Started); ok {
		Exit(f.err)
	}
}

// produce makes the actor of one incarnation of a child.
func produce(spec *ChildSpec, args []any, l *link) (a actor.Actor) {
	defer func() {
		if r := recover(); r != nil {
			a = &failedStart{err: fmt.Errorf("start panicked: %v", r)}
		}
	}()
	var err error
	if spec.Supervisor != nil {
		a = newSupervisor(spec.Supervisor)
	} else {
		a, err = spec.Start(args...)
	}
	switch {
	case err != nil:
		return &failedStart{err: err}
	case a == nil:
		return &failedStart{err: fmt.Errorf("start returned no actor")}
	}
	if la, ok := a.(linkable); ok {
		la.setLink(l)
		return a
	}
	return &shell{inner: a, link: l}
}
