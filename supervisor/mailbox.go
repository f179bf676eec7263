package supervisor

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// Refuser is a message that is answered when it cannot be delivered (a
// request answered on a channel of its own, which protoactor-go knows
// nothing of): sent to no actor, or left in the mailbox of an actor that
// stopped. A running tree calls Refuse for such a message; Refuse answers
// that the actor is gone, at once, and must be safe to call more than
// once (two trees on one actor system both call it).
type Refuser interface{ Refuse() }

// refusingMailbox is protoactor-go's unbounded mailbox, except that once
// the child has stopped (its control is no longer alive) the messages left
// in it become dead letters instead of being dropped: protoactor-go drops
// them silently, so a request among them waited for its whole timeout.
// As a dead letter, a request with a sender (a future, an actor's Request)
// gets a DeadLetterResponse at once, and a Refuser is refused.
func refusingMailbox(sys *actor.ActorSystem, ctl *control) actor.MailboxProducer {
	inner := actor.Unbounded()
	return func() actor.Mailbox { return &refusing{Mailbox: inner(), sys: sys, ctl: ctl} }
}

// refusing is the mailbox and, once its handlers are registered, the
// invoker that stands between it and the actor.
//
// It also holds the user messages posted before it starts. protoactor-go
// registers an actor's PID before it gives the mailbox its dispatcher, and
// a message posted in between (a peer that sends to the actor's path, as
// the system group's leadership watch sends to the manager's) made the
// mailbox call a nil dispatcher: the sender's goroutine panicked and the
// node died. Held messages are posted when the mailbox starts, after the
// actor's Started, in the order they came.
type refusing struct {
	actor.Mailbox
	actor.MessageInvoker
	sys *actor.ActorSystem
	ctl *control

	started atomic.Bool
	mu      sync.Mutex
	early   []any // posted before Start
}

func (m *refusing) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.MessageInvoker = invoker
	m.Mailbox.RegisterHandlers(m, dispatcher)
}

func (m *refusing) PostUserMessage(msg any) {
	if !m.started.Load() {
		m.mu.Lock()
		if !m.started.Load() {
			m.early = append(m.early, msg)
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
	}
	m.Mailbox.PostUserMessage(msg)
}

func (m *refusing) Start() {
	m.Mailbox.Start()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, msg := range m.early {
		m.Mailbox.PostUserMessage(msg)
	}
	m.early = nil
	m.started.Store(true)
}

func (m *refusing) InvokeUserMessage(msg any) {
	if m.ctl.state.Load() == ctlAlive {
		m.MessageInvoker.InvokeUserMessage(msg)
		return
	}
	_, body, sender := actor.UnwrapEnvelope(msg)
	m.sys.EventStream.Publish(&actor.DeadLetterEvent{Message: body, Sender: sender})
}

// refuseDeadLetters calls Refuse for every Refuser that becomes a dead
// letter on sys, until the returned function is called.
func refuseDeadLetters(sys *actor.ActorSystem) (stop func()) {
	sub := sys.EventStream.Subscribe(func(ev any) {
		if dl, ok := ev.(*actor.DeadLetterEvent); ok {
			if r, ok := dl.Message.(Refuser); ok {
				r.Refuse()
			}
		}
	})
	return func() { sys.EventStream.Unsubscribe(sub) }
}
