package supervisor_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/supervisor"
)

// recorder collects lifecycle calls of test actors, in order.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.log = append(r.log, s)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}

type probe struct {
	name string
	rec  *recorder
}

func (p *probe) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		p.rec.add("start " + p.name)
	case *actor.Stopping:
		p.rec.add("stop " + p.name)
	case string:
		switch m {
		case "panic":
			panic("boom")
		case "index":
			p.indexPastEnd()
		}
		ctx.Respond(p.name + ":" + m)
	}
}

// indexPastEnd raises a Go runtime error: a bug, not a deliberate panic.
func (p *probe) indexPastEnd() {
	var names []string
	p.name = names[len(p.name)]
}

func probeSpec(rec *recorder, id string) supervisor.ChildSpec {
	return supervisor.Worker(id, func() actor.Actor { return &probe{name: id, rec: rec} })
}

func events(t *testing.T, sys *actor.ActorSystem) (<-chan *messages.SupervisorEvent, func()) {
	ch := make(chan *messages.SupervisorEvent, 1024)
	sub := sys.EventStream.Subscribe(func(e any) {
		if ev, ok := e.(*messages.SupervisorEvent); ok {
			ch <- ev
		}
	})
	return ch, func() { sys.EventStream.Unsubscribe(sub) }
}

func waitEvent(t *testing.T, ch <-chan *messages.SupervisorEvent, kind messages.EventKind, child string) *messages.SupervisorEvent {
	t.Helper()
	deadline := time.After(5 * time.Second)
	var seen []string
	for {
		select {
		case ev := <-ch:
			if ev.Kind == kind && (child == "" || ev.ChildId == child) {
				return ev
			}
			seen = append(seen, ev.Kind.String()+" "+ev.ChildId)
		case <-deadline:
			t.Fatalf("no %s for %q within 5s; saw %v", kind, child, seen)
		}
	}
}

func TestStartInOrderStopInReverse(t *testing.T) {
	sys := actor.NewActorSystem()
	rec := &recorder{}
	tree, err := supervisor.Start(context.Background(), sys, "root", supervisor.Spec{
		Children: []supervisor.ChildSpec{probeSpec(rec, "a"), probeSpec(rec, "b"), probeSpec(rec, "c")},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tree.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}
	if got := rec.snapshot(); !equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestOneForOneRestartAndEscalation(t *testing.T) {
	sys := actor.NewActorSystem()
	rec := &recorder{}
	ch, unsub := events(t, sys)
	defer unsub()
	tree, err := supervisor.Start(context.Background(), sys, "root", supervisor.Spec{
		Intensity: 1, Period: time.Minute,
		Children: []supervisor.ChildSpec{probeSpec(rec, "a"), probeSpec(rec, "b")},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := actor.NewPID(sys.Address(), "root/b")
	sys.Root.Send(b, "panic")
	waitEvent(t, ch, messages.EventKind_CHILD_RESTART_SCHEDULED, "b")
	waitEvent(t, ch, messages.EventKind_CHILD_STARTED, "b")
	res, err := sys.Root.RequestFuture(b, "hi", time.Second).Result()
	if err != nil || res != "b:hi" {
		t.Fatalf("after restart: %v %v", res, err)
	}
	sys.Root.Send(b, "panic")
	waitEvent(t, ch, messages.EventKind_INTENSITY_EXCEEDED, "b")
	select {
	case <-tree.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("root did not give up")
	}
	if !errors.Is(tree.Err(), supervisor.ErrGaveUp) {
		t.Fatalf("err = %v", tree.Err())
	}
	t.Log(tree.Err())
}

// TestRuntimePanicKeepsItsStack: an actor that dies of a Go runtime error
// (a bug) exits with a reason that says so and carries the stack where it
// was raised (protoactor-go recovers the panic far from it and keeps no
// stack); a deliberate panic's reason has no stack.
func TestRuntimePanicKeepsItsStack(t *testing.T) {
	sys := actor.NewActorSystem()
	ch, unsub := events(t, sys)
	defer unsub()
	tree, err := supervisor.Start(context.Background(), sys, "root", supervisor.Spec{
		Intensity: 10, Period: time.Minute,
		Children: []supervisor.ChildSpec{probeSpec(&recorder{}, "a")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Stop(context.Background())
	a := actor.NewPID(sys.Address(), "root/a")

	sys.Root.Send(a, "index")
	r := waitEvent(t, ch, messages.EventKind_CHILD_EXITED, "a").Reason
	if want := "crash: runtime panic: runtime error: index out of range [1] with length 0"; supervisor.FormatReason(r) != want {
		t.Errorf("reason %q, want %q", supervisor.FormatReason(r), want)
	}
	if !strings.Contains(r.GetStack(), "(*probe).indexPastEnd") {
		t.Errorf("the stack does not name where the panic was raised:\n%s", r.GetStack())
	}
	waitEvent(t, ch, messages.EventKind_CHILD_STARTED, "a")

	sys.Root.Send(a, "panic")
	r = waitEvent(t, ch, messages.EventKind_CHILD_EXITED, "a").Reason
	if supervisor.FormatReason(r) != "crash: panic: boom" || r.GetStack() != "" {
		t.Errorf("a deliberate panic: reason %q, stack %q; want \"crash: panic: boom\" and none", supervisor.FormatReason(r), r.GetStack())
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// stuck blocks in Stopping until release is closed.
type stuck struct{ release chan struct{} }

func (s *stuck) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*actor.Stopping); ok {
		<-s.release
	}
}

// A stop that outlasts its context names the child it still waits for,
// down a nested supervisor, and the tree ends once that child does.
func TestStopTimeoutNamesTheStuckChild(t *testing.T) {
	sys := actor.NewActorSystem()
	rec := &recorder{}
	release := make(chan struct{})
	slow := supervisor.Worker("slow", func() actor.Actor { return &stuck{release: release} })
	slow.Shutdown = supervisor.Infinity
	tree, err := supervisor.Start(context.Background(), sys, "root", supervisor.Spec{
		Children: []supervisor.ChildSpec{
			probeSpec(rec, "a"),
			supervisor.Sup("inner", supervisor.Spec{Children: []supervisor.ChildSpec{probeSpec(rec, "b"), slow}}),
			probeSpec(rec, "c"),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = tree.Stop(ctx)
	if !errors.Is(err, supervisor.ErrTimeout) {
		t.Fatalf("Stop: %v, want ErrTimeout", err)
	}
	if want := "still stopping: root/inner/slow"; !strings.Contains(err.Error(), want) {
		t.Fatalf("Stop: %v, want it to say %q", err, want)
	}
	if got := tree.Stopping(time.Second); !equal(got, []string{"root/inner/slow"}) {
		t.Fatalf("Stopping: %v", got)
	}
	close(release)
	select {
	case <-tree.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the tree did not end after its stuck child stopped")
	}
	if got := tree.Stopping(time.Second); got != nil {
		t.Fatalf("Stopping after the end: %v", got)
	}
	if want := []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}; !equal(rec.snapshot(), want) {
		t.Fatalf("got %v, want %v", rec.snapshot(), want)
	}
}
