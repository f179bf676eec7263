package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
	"google.golang.org/protobuf/proto"
)

// Tree is a running supervision tree: its root supervisor and how it ended.
type Tree struct {
	system *actor.ActorSystem
	pid    *actor.PID

	startOnce sync.Once
	started   chan struct{}
	exitOnce  sync.Once
	done      chan struct{}
	err       error
	// unrefuse ends the tree's answering of undeliverable Refusers.
	unrefuse func()
}

// Start spawns a root supervisor named name and waits until every child
// has started in order. If a child fails to start, the children already
// started are stopped in reverse order and Start returns that child's error
// (wrapping ErrStartFailed). If ctx ends first, the tree is shut down and
// ctx's error returned.
func Start(ctx context.Context, system *actor.ActorSystem, name string, spec Spec) (*Tree, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	t := &Tree{system: system, started: make(chan struct{}), done: make(chan struct{})}
	t.unrefuse = refuseDeadLetters(system)
	props := actor.PropsFromProducer(func() actor.Actor {
		s := newSupervisor(&spec)
		s.tree = t
		return s
	})
	pid, err := system.Root.SpawnNamed(props, name)
	if err != nil {
		t.unrefuse()
		return nil, fmt.Errorf("supervisor: spawn root %q: %w", name, err)
	}
	t.pid = pid
	select {
	case <-t.started:
		return t, nil
	case <-t.done:
		return nil, t.err
	case <-ctx.Done():
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = t.Stop(stopCtx)
		return nil, fmt.Errorf("supervisor: starting %q: %w", name, ctx.Err())
	}
}

func (t *Tree) signalStarted() { t.startOnce.Do(func() { close(t.started) }) }

func (t *Tree) exit(err error) {
	t.exitOnce.Do(func() {
		t.err = err
		t.unrefuse()
		close(t.done)
	})
}

// PID is the root supervisor's.
func (t *Tree) PID() *actor.PID { return t.pid }

// Done is closed when the root supervisor has stopped.
func (t *Tree) Done() <-chan struct{} { return t.done }

// Err is nil while the tree runs and after a requested stop; after the root
// gave up it wraps ErrGaveUp and names the last failure.
func (t *Tree) Err() error {
	select {
	case <-t.done:
		return t.err
	default:
		return nil
	}
}

// Stop shuts the tree down in order (reverse start order, each child within
// its shutdown time) and waits for it, or for ctx. When ctx ends first, the
// error names the children still stopping (Stopping).
func (t *Tree) Stop(ctx context.Context) error {
	t.system.Root.Send(t.pid, &messages.Shutdown{})
	select {
	case <-t.done:
		return t.Err()
	case <-ctx.Done():
		err := fmt.Errorf("%w: stopping %s: %v", ErrTimeout, t.pid.Id, ctx.Err())
		if stuck := t.Stopping(stoppingAsk); len(stuck) > 0 {
			err = fmt.Errorf("%w; still stopping: %s", err, strings.Join(stuck, ", "))
		}
		return err
	}
}

// stoppingAsk bounds each supervisor's answer in Stopping.
const stoppingAsk = time.Second

// Stopping names the children that are stopping now, deepest first: for a
// supervisor stopping, the children it waits for (a worker's path, as
// "root/shards/shard-2/raft-2"), or the supervisor itself when none of its
// children is stopping. A supervisor that does not answer within timeout
// is named with "(no answer)". Nil when nothing is stopping or the tree
// has ended.
func (t *Tree) Stopping(timeout time.Duration) []string {
	select {
	case <-t.done:
		return nil
	default:
	}
	return t.stopping(t.pid, t.pid.Id, timeout, false)
}

// stopping lists what sup waits for. self says sup itself is stopping: it
// is named when none of its children is.
func (t *Tree) stopping(sup *actor.PID, path string, timeout time.Duration, self bool) []string {
	children, err := WhichChildren(t.system.Root, sup, timeout)
	if err != nil {
		if self {
			return []string{path + " (no answer)"}
		}
		return nil
	}
	var out []string
	for _, c := range children {
		if c.State != messages.ChildState_STOPPING || c.Pid == "" {
			continue
		}
		p := path + "/" + c.Id
		if c.Type == messages.ChildType_SUPERVISOR {
			out = append(out, t.stopping(actor.NewPID(sup.Address, c.Pid), p, timeout, true)...)
		} else {
			out = append(out, p)
		}
	}
	if len(out) == 0 && self {
		out = []string{path}
	}
	return out
}

// request sends msg to a supervisor and waits up to timeout for the reply.
func request[R proto.Message](c actor.SenderContext, sup *actor.PID, msg any, timeout time.Duration) (R, error) {
	var zero R
	res, err := c.RequestFuture(sup, msg, timeout).Result()
	if err != nil {
		return zero, fmt.Errorf("%w: %T to %s: %v", ErrTimeout, msg, sup.Id, err)
	}
	r, ok := res.(R)
	if !ok {
		return zero, fmt.Errorf("supervisor: %s answered %T with %T", sup.Id, msg, res)
	}
	return r, nil
}

// WhichChildren lists a supervisor's children, in start order.
func WhichChildren(c actor.SenderContext, sup *actor.PID, timeout time.Duration) ([]*messages.ChildInfo, error) {
	r, err := request[*messages.WhichChildrenReply](c, sup, &messages.WhichChildren{}, timeout)
	return r.GetChildren(), err
}

// CountChildren counts a supervisor's children, as OTP's count_children.
func CountChildren(c actor.SenderContext, sup *actor.PID, timeout time.Duration) (*messages.CountChildrenReply, error) {
	return request[*messages.CountChildrenReply](c, sup, &messages.CountChildren{}, timeout)
}

// StartChild adds spec to a supervisor and starts it.
func StartChild(c actor.SenderContext, sup *actor.PID, spec ChildSpec, timeout time.Duration) (*actor.PID, error) {
	return childCall(c, sup, &startChildGo{spec: spec}, timeout)
}

// StartSimpleChild starts a child of a simple_one_for_one supervisor from
// its template, with args appended to the template's.
func StartSimpleChild(c actor.SenderContext, sup *actor.PID, timeout time.Duration, args ...any) (*actor.PID, error) {
	return childCall(c, sup, &startChildGo{args: args}, timeout)
}

// TerminateChild stops a child (by id, or PID id for simple_one_for_one)
// within its shutdown time; its spec stays unless it is temporary.
func TerminateChild(c actor.SenderContext, sup *actor.PID, id string, timeout time.Duration) error {
	_, err := childCall(c, sup, &messages.TerminateChild{Id: id}, timeout)
	return err
}

// RestartChild starts again a child that was terminated.
func RestartChild(c actor.SenderContext, sup *actor.PID, id string, timeout time.Duration) (*actor.PID, error) {
	return childCall(c, sup, &messages.RestartChild{Id: id}, timeout)
}

// DeleteChild removes the spec of a child that is not running.
func DeleteChild(c actor.SenderContext, sup *actor.PID, id string, timeout time.Duration) error {
	_, err := childCall(c, sup, &messages.DeleteChild{Id: id}, timeout)
	return err
}

func childCall(c actor.SenderContext, sup *actor.PID, msg any, timeout time.Duration) (*actor.PID, error) {
	r, err := request[*messages.ChildReply](c, sup, msg, timeout)
	if err != nil {
		return nil, err
	}
	if r.Error != "" {
		return nil, ReplyError(r.Error)
	}
	if r.Pid == "" {
		return nil, nil
	}
	return actor.NewPID(sup.Address, r.Pid), nil
}

// ReplyError turns the error text of a messages.ChildReply back into an
// error that errors.Is matches against this package's errors.
func ReplyError(text string) error {
	for _, e := range []error{ErrInvalidSpec, ErrNotFound, ErrAlreadyStarted, ErrAlreadyPresent, ErrRunning,
		ErrSimpleOneForOne, ErrShuttingDown, ErrStartFailed, ErrUnknownKind} {
		if rest, ok := strings.CutPrefix(text, e.Error()); ok {
			return fmt.Errorf("%w%s", e, rest)
		}
	}
	return errors.New(text)
}
