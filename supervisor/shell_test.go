package supervisor

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/internal/testwait"
)

// fakeContext is the part of an actor's context a shell uses: its message,
// its sender, and Send, which it records.
type fakeContext struct {
	actor.Context
	msg    any
	sender *actor.PID
	sent   *[]any
}

func (c fakeContext) Message() any             { return c.msg }
func (c fakeContext) Sender() *actor.PID       { return c.sender }
func (c fakeContext) Send(_ *actor.PID, m any) { *c.sent = append(*c.sent, m) }

// recorder records the messages it handles and each one's sender.
type recorder struct {
	got     []any
	senders []*actor.PID
}

func (r *recorder) Receive(ctx actor.Context) {
	r.got = append(r.got, ctx.Message())
	r.senders = append(r.senders, ctx.Sender())
}

// TestShellStartsOnStarted: the actor handles Started (no sender), then
// each message with its sender; the supervisor hears of the start once.
// (A message posted before the actor starts waits in its mailbox until
// after Started: TestMailboxHoldsMessagesBeforeItStarts.)
func TestShellStartsOnStarted(t *testing.T) {
	inner := &recorder{}
	s := &shell{inner: inner, link: &link{ctl: &control{}}}
	var sent []any
	from := actor.NewPID("local", "peer")
	s.Receive(fakeContext{msg: &actor.Started{}, sent: &sent})
	s.Receive(fakeContext{msg: "early", sender: from, sent: &sent})
	s.Receive(fakeContext{msg: "later", sent: &sent})

	if len(inner.got) != 3 {
		t.Fatalf("the actor handled %v, want Started, early, later", inner.got)
	}
	if _, ok := inner.got[0].(*actor.Started); !ok || inner.senders[0] != nil {
		t.Fatalf("first handled %T from %v, want *actor.Started from no one", inner.got[0], inner.senders[0])
	}
	if inner.got[1] != "early" || inner.senders[1] != from || inner.got[2] != "later" {
		t.Fatalf("then %v from %v, want early from %v, then later", inner.got[1:], inner.senders[1:], from)
	}
	if len(sent) != 1 || !s.link.ctl.up.Load() {
		t.Fatalf("the supervisor was sent %v (up %v), want one childUp", sent, s.link.ctl.up.Load())
	}
	if _, ok := sent[0].(*childUp); !ok {
		t.Fatalf("the supervisor was sent %T, want *childUp", sent[0])
	}
}

// invocations records what a mailbox hands its invoker.
type invocations struct {
	mu  sync.Mutex
	got []any
}

func (v *invocations) InvokeSystemMessage(m any) { v.add(m) }
func (v *invocations) InvokeUserMessage(m any)   { v.add(m) }
func (v *invocations) EscalateFailure(any, any)  {}
func (v *invocations) add(m any) {
	v.mu.Lock()
	v.got = append(v.got, m)
	v.mu.Unlock()
}

func (v *invocations) snapshot() []any {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]any(nil), v.got...)
}

// TestMailboxHoldsMessagesBeforeItStarts: protoactor-go registers an
// actor's PID before it gives the mailbox its dispatcher; a message posted
// in between made the mailbox call a nil dispatcher (the sender's
// goroutine panicked: the node died). The child's mailbox holds such
// messages and delivers them, in order, after Started.
func TestMailboxHoldsMessagesBeforeItStarts(t *testing.T) {
	sys := actor.NewActorSystem()
	ctl := &control{}
	mb := refusingMailbox(sys, ctl)()
	from := actor.NewPID("local", "peer")
	mb.PostUserMessage(&actor.MessageEnvelope{Message: "early 1", Sender: from}) // no dispatcher yet
	mb.PostUserMessage("early 2")
	var v invocations
	mb.RegisterHandlers(&v, actor.NewSynchronizedDispatcher(1))
	mb.PostSystemMessage(&actor.Started{})
	mb.Start()
	mb.PostUserMessage("after")
	want := []any{&actor.Started{}, &actor.MessageEnvelope{Message: "early 1", Sender: from}, "early 2", "after"}
	testwait.For(t, 5*time.Second, 10*time.Millisecond, "the held messages delivered after Started", func() error {
		got := v.snapshot()
		if len(got) != len(want) {
			return fmt.Errorf("got %v", got)
		}
		for i := range want {
			if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
				return fmt.Errorf("got %v, want %v", got, want)
			}
		}
		return nil
	})
}
