package supervisor

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
)

// shutdown stops the supervisor: pending steps are dropped (their callers
// get ErrShuttingDown), backoff timers are cancelled, the children are
// stopped in reverse start order, one at a time, each within its shutdown
// time (all at once for simple_one_for_one, as OTP does), and then the
// supervisor exits with reason. cause is nil for a requested shutdown, else
// the error a root reports.
func (s *supervisorActor) shutdown(reason *messages.ExitReason, cause error) {
	if s.phase >= phaseStopping {
		return
	}
	s.phase = phaseStopping
	s.stopReason, s.stopCause = reason, cause
	for _, c := range s.children {
		c.restartGroup = nil
		if !c.live() {
			s.stopTimer(c)
			c.state = messages.ChildState_UNDEFINED
		}
	}
	pending := s.queue
	s.queue = nil
	for _, o := range pending {
		if o.done != nil {
			o.done(ErrShuttingDown)
		}
	}
	if s.simple() {
		s.enqueue(&op{kind: opStopAll})
	} else {
		for i := len(s.children) - 1; i >= 0; i-- {
			s.enqueue(&op{kind: opStop, c: s.children[i]})
		}
	}
	s.enqueue(&op{kind: opCall, done: func(error) { s.exit() }})
}

// exit ends a supervisor whose children are all stopped.
func (s *supervisorActor) exit() {
	s.phase = phaseStopped
	s.publish(&messages.SupervisorEvent{Kind: messages.EventKind_SUPERVISOR_STOPPED, Reason: s.stopReason})
	if s.link != nil {
		s.link.ctl.setExit(s.stopReason)
	}
	if s.tree != nil {
		s.tree.exit(s.stopCause)
	}
	s.ctx.Stop(s.self)
}

// stopping runs when protoactor-go stops the supervisor itself: after exit,
// or when someone stopped it directly (then protoactor-go stops all its
// children at once, and the supervisor only stands aside).
func (s *supervisorActor) stopping(ctx actor.Context) {
	if s.phase != phaseStopped {
		s.phase = phaseStopped
		for _, c := range s.children {
			s.stopTimer(c)
		}
		reason := shutdownExit("stopped directly, not through Shutdown")
		s.publish(&messages.SupervisorEvent{Kind: messages.EventKind_SUPERVISOR_STOPPED, Reason: reason})
		if s.tree != nil {
			s.tree.exit(nil)
		}
	}
	if s.link != nil {
		finishStop(ctx, s.link.ctl)
	}
}

func (s *supervisorActor) publish(ev *messages.SupervisorEvent) {
	ev.Supervisor = s.self.Id
	s.ctx.ActorSystem().EventStream.Publish(ev)
}
