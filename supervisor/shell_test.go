package supervisor

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
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

// TestShellStartsBeforeAnEarlyMessage: a message that reaches the actor
// before Started (protoactor-go registers the PID before it posts Started)
// starts it first, with no sender, as Started would; the Started that
// follows is dropped, and the supervisor hears of the start once.
func TestShellStartsBeforeAnEarlyMessage(t *testing.T) {
	inner := &recorder{}
	s := &shell{inner: inner, link: &link{ctl: &control{}}}
	var sent []any
	from := actor.NewPID("local", "peer")
	s.Receive(fakeContext{msg: "early", sender: from, sent: &sent})
	s.Receive(fakeContext{msg: &actor.Started{}, sent: &sent})
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
