package supervisor

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
	"google.golang.org/protobuf/types/known/durationpb"
)

// child is a supervisor's record of one child: its spec and its current
// incarnation, if any.
type child struct {
	spec *ChildSpec
	args []any
	name string // PID name below the supervisor

	pid  *actor.PID
	proc actor.Process
	ctl  *control

	state         messages.ChildState
	stopRequested bool
	killed        bool
	failure       *messages.ExitReason // what the child failed with, before its Terminated
	timer         *time.Timer          // shutdown or backoff timer
	gen           uint64               // bumps on every timer start, so stale timers are ignored

	restarts    uint32
	consecutive int // restarts in a row, for backoff
	startedAt   time.Time
	lastExit    *messages.ExitReason
	// restartGroup is what starts again once this child's backoff is over.
	restartGroup []*child
}

func (c *child) live() bool { return c.pid != nil }

type phase int

const (
	phaseStarting phase = iota
	phaseRunning
	phaseStopping
	phaseStopped
)

// opKind is a step of the supervisor's plan. The plan runs one step at a
// time; a step that waits for a child (start, stop) holds the plan.
type opKind int

const (
	opStart opKind = iota
	opStop
	opStopAll // simple_one_for_one: stop every child at once
	opCall
)

type op struct {
	kind opKind
	c    *child
	// done runs when the step ends: err is nil, or why a start failed.
	done func(err error)
	// dynamic marks a start_child step: a child that fails to start is
	// dropped, as OTP drops its spec.
	dynamic bool
	// waiting holds the children an opStopAll still waits for.
	waiting map[*child]bool
}

// timer messages, sent to the supervisor by time.AfterFunc
type shutdownTimeout struct {
	c   *child
	gen uint64
}

type backoffDone struct {
	c   *child
	gen uint64
}

// startChildGo is StartChild for callers with a Go ChildSpec.
type startChildGo struct {
	spec ChildSpec
	args []any
}

type supervisorActor struct {
	spec *Spec
	link *link // nil for a root
	tree *Tree // non-nil for a root

	ctx      actor.Context
	self     *actor.PID
	selfProc actor.Process

	children []*child
	byName   map[string]*child
	window   restartWindow
	nextID   int

	phase      phase
	stopReason *messages.ExitReason
	stopCause  error
	queue      []*op
	cur        *op
}

func newSupervisor(spec *Spec) *supervisorActor {
	return &supervisorActor{
		spec:   spec,
		byName: map[string]*child{},
		window: restartWindow{max: spec.intensity(), period: spec.period()},
	}
}

func (s *supervisorActor) setLink(l *link) { s.link = l }

func (s *supervisorActor) simple() bool {
	return s.spec.Strategy == messages.Strategy_SIMPLE_ONE_FOR_ONE
}

// Receive is the supervisor's message loop; every decision happens here, on
// the supervisor's own goroutine, and never blocks.
func (s *supervisorActor) Receive(ctx actor.Context) {
	s.ctx = ctx
	if _, ok := ctx.Message().(*actor.Stopping); ok {
		s.stopping(ctx)
		return
	}
	if s.phase == phaseStopped {
		return
	}
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.started(ctx)
	case *childUp:
		s.childUp(m.ctl)
	case *actor.Terminated:
		s.terminated(m.Who)
	case *shutdownTimeout:
		if m.c.gen == m.gen && m.c.live() && m.c.state == messages.ChildState_STOPPING {
			s.kill(m.c)
		}
	case *backoffDone:
		if m.c.gen == m.gen && s.phase < phaseStopping {
			group := m.c.restartGroup
			m.c.restartGroup = nil
			s.enqueueStarts(group)
		}
	case *messages.Shutdown:
		s.shutdown(shutdownExit("requested"), nil)
	case *messages.Crash:
		panic(CrashError(m.Reason))
	case *messages.WhichChildren:
		ctx.Respond(&messages.WhichChildrenReply{Children: s.whichChildren()})
	case *messages.CountChildren:
		ctx.Respond(s.countChildren())
	case *messages.StartChild:
		s.startChildProto(m)
	case *startChildGo:
		s.startChild(m.spec, m.args, ctx.Sender())
	case *messages.TerminateChild:
		s.terminateChild(m.Id, ctx.Sender())
	case *messages.RestartChild:
		s.restartChild(m.Id, ctx.Sender())
	case *messages.DeleteChild:
		s.deleteChild(m.Id, ctx.Sender())
	}
	s.advance()
}

// HandleFailure is called by protoactor-go when a child panics (or calls
// Exit). The child is then suspended; the supervisor records why and stops
// it, and decides what to do when its Terminated arrives.
func (s *supervisorActor) HandleFailure(_ *actor.ActorSystem, _ actor.Supervisor, who *actor.PID, _ *actor.RestartStatistics, reason any, _ any) {
	if reason == errKilled {
		return // a killed incarnation, already dealt with
	}
	c := s.byName[s.nameOf(who)]
	if c == nil || !c.live() || c.pid.Id != who.Id {
		return
	}
	if c.failure == nil {
		c.failure = reasonOf(reason)
	}
	if c.state != messages.ChildState_STOPPING {
		c.state = messages.ChildState_STOPPING
	}
	// protoactor-go's Stop runs the child's Stopping handler (its cleanup)
	// and then reports Terminated.
	c.proc.SendSystemMessage(c.pid, &actor.Stop{})
}

func (s *supervisorActor) nameOf(pid *actor.PID) string {
	return pid.Id[len(s.self.Id)+1:]
}

func (s *supervisorActor) started(ctx actor.Context) {
	s.self = ctx.Self()
	s.selfProc, _ = ctx.ActorSystem().ProcessRegistry.Get(s.self)
	s.phase = phaseStarting
	if !s.simple() {
		for i := range s.spec.Children {
			s.add(&s.spec.Children[i], s.spec.Children[i].Args, s.spec.Children[i].ID)
		}
	}
	for _, c := range s.children {
		s.enqueue(&op{kind: opStart, c: c})
	}
	s.enqueue(&op{kind: opCall, done: func(error) {
		if s.phase != phaseStarting {
			return
		}
		s.phase = phaseRunning
		s.publish(&messages.SupervisorEvent{Kind: messages.EventKind_SUPERVISOR_STARTED})
		if s.link != nil {
			s.link.ctl.up.Store(true)
			ctx.Send(s.link.parent, &childUp{ctl: s.link.ctl})
		} else if s.tree != nil {
			s.tree.signalStarted()
		}
	}})
}

func (s *supervisorActor) add(spec *ChildSpec, args []any, name string) *child {
	c := &child{spec: spec, args: args, name: name, state: messages.ChildState_UNDEFINED}
	s.children = append(s.children, c)
	s.byName[name] = c
	return c
}

// remove drops c's spec, once: a temporary child stopped for a group
// restart is removed when it terminates and again by the plan.
func (s *supervisorActor) remove(c *child) {
	i := slices.Index(s.children, c)
	if i < 0 {
		return
	}
	s.children = slices.Delete(s.children, i, i+1)
	if s.byName[c.name] == c {
		delete(s.byName, c.name)
	}
	s.publish(&messages.SupervisorEvent{Kind: messages.EventKind_CHILD_DELETED, ChildId: c.name})
}

func (s *supervisorActor) enqueue(ops ...*op) {
	s.queue = append(s.queue, ops...)
}

// advance runs plan steps until one has to wait.
func (s *supervisorActor) advance() {
	for s.cur == nil && len(s.queue) > 0 {
		o := s.queue[0]
		s.queue = s.queue[1:]
		if s.begin(o) {
			s.cur = o
		} else if o.done != nil {
			o.done(nil)
		}
	}
}

// begin starts a step and reports whether it has to wait.
func (s *supervisorActor) begin(o *op) bool {
	switch o.kind {
	case opStart:
		if o.c.live() || s.byName[o.c.name] != o.c {
			return false
		}
		if s.phase >= phaseStopping {
			if o.done != nil {
				o.done(ErrShuttingDown)
				o.done = nil
			}
			return false
		}
		s.spawn(o.c)
		return true
	case opStop:
		if !o.c.live() {
			return false
		}
		if o.c.state != messages.ChildState_STOPPING || !o.c.stopRequested {
			s.stopChild(o.c)
		}
		return o.c.live()
	case opStopAll:
		o.waiting = map[*child]bool{}
		for _, c := range s.children {
			if c.live() {
				o.waiting[c] = true
				s.stopChild(c)
			}
		}
		return len(o.waiting) > 0
	}
	return false
}

// finish ends the current step.
func (s *supervisorActor) finish(err error) {
	o := s.cur
	s.cur = nil
	if o.done != nil {
		o.done(err)
	}
}

func (s *supervisorActor) spawn(c *child) {
	ctl := &control{}
	l := &link{parent: s.self, ctl: ctl}
	spec, args := c.spec, c.args
	// The spec's own props come after: a mailbox of its own replaces
	// the refusing one.
	opts := append([]actor.PropsOption{actor.WithMailbox(refusingMailbox(s.ctx.ActorSystem(), ctl))}, spec.Props...)
	props := actor.PropsFromProducer(func() actor.Actor {
		return produce(spec, args, l)
	}, opts...)
	c.state = messages.ChildState_STARTING
	c.ctl = ctl
	c.failure = nil
	c.killed = false
	c.stopRequested = false
	pid, err := s.ctx.SpawnNamed(props, c.name)
	if err != nil {
		// The name is still registered: an earlier incarnation has not
		// finished. Treat it as a failed start.
		c.state = messages.ChildState_UNDEFINED
		c.ctl = nil
		s.startFailed(c, crashExit("spawn %s: %v", c.name, err))
		return
	}
	c.pid = pid
	c.proc, _ = s.ctx.ActorSystem().ProcessRegistry.Get(pid)
	c.startedAt = time.Now()
}

func (s *supervisorActor) childUp(ctl *control) {
	for _, c := range s.children {
		if c.ctl == ctl && c.state == messages.ChildState_STARTING {
			s.markUp(c)
			return
		}
	}
}

// markUp records a successful start and ends the start step waiting on it.
func (s *supervisorActor) markUp(c *child) {
	c.state = messages.ChildState_RUNNING
	s.publish(&messages.SupervisorEvent{Kind: messages.EventKind_CHILD_STARTED, ChildId: c.name, Pid: c.pid.Id, Restarts: c.restarts})
	if s.cur != nil && s.cur.kind == opStart && s.cur.c == c {
		s.finish(nil)
	}
}

// stopChild asks a child to stop, within its shutdown time.
func (s *supervisorActor) stopChild(c *child) {
	c.stopRequested = true
	c.state = messages.ChildState_STOPPING
	d := c.spec.shutdown()
	if d == BrutalKill {
		s.kill(c)
		return
	}
	if c.spec.isSupervisor() {
		s.ctx.Send(c.pid, &messages.Shutdown{})
	} else {
		c.proc.SendSystemMessage(c.pid, &actor.Stop{})
	}
	if d != Infinity {
		s.startTimer(c, d, func(gen uint64) any { return &shutdownTimeout{c: c, gen: gen} })
	}
}

func (s *supervisorActor) startTimer(c *child, d time.Duration, msg func(gen uint64) any) {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.gen++
	m := msg(c.gen)
	self, proc := s.self, s.selfProc
	c.timer = time.AfterFunc(d, func() { proc.SendUserMessage(self, m) })
}

func (s *supervisorActor) stopTimer(c *child) {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.gen++
}

// kill ends a child without waiting for it: its PID is unregistered at once
// and the supervisor acts as if it had terminated. If the child is past the
// point of no return (finishing its stop), its own Terminated is awaited.
func (s *supervisorActor) kill(c *child) {
	if !c.ctl.state.CompareAndSwap(ctlAlive, ctlKilled) {
		return
	}
	c.killed = true
	s.ctx.ActorSystem().ProcessRegistry.Remove(c.pid)
	c.proc.SendSystemMessage(c.pid, &actor.Stop{})
	s.publish(&messages.SupervisorEvent{Kind: messages.EventKind_CHILD_KILLED, ChildId: c.name, Pid: c.pid.Id})
	s.selfProc.SendSystemMessage(s.self, &actor.Terminated{Who: c.pid})
}

// terminated handles a child's end, whatever caused it.
func (s *supervisorActor) terminated(who *actor.PID) {
	c := s.byName[s.nameOf(who)]
	if c == nil || !c.live() || c.pid.Id != who.Id {
		return
	}
	reason := c.failure
	if x := c.ctl.exitReason(); x != nil && (reason == nil || c.stopRequested) {
		reason = x
	}
	switch {
	case c.killed:
		reason = &messages.ExitReason{Kind: messages.ExitKind_EXIT_KILLED, Detail: "shutdown " + fmtShutdown(c.spec.shutdown())}
	case reason == nil && c.stopRequested:
		reason = shutdownExit("")
	case reason == nil:
		reason = normalExit()
	}
	// A child whose start step still waits for it either failed to start
	// or did start and failed at once (its childUp is still in the
	// mailbox). HandleFailure has moved it to STOPPING already, so the
	// state cannot tell.
	awaited := s.cur != nil && s.cur.kind == opStart && s.cur.c == c
	wasStarting := awaited && !c.ctl.up.Load()
	if awaited && !wasStarting {
		s.markUp(c) // it did start
	}
	requested := c.stopRequested
	s.stopTimer(c)
	c.pid, c.proc, c.ctl = nil, nil, nil
	c.state = messages.ChildState_UNDEFINED
	c.stopRequested, c.killed, c.failure = false, false, nil
	c.lastExit = reason

	switch {
	case wasStarting:
		s.startFailed(c, reason)
	case requested:
		s.publish(&messages.SupervisorEvent{Kind: messages.EventKind_CHILD_TERMINATED, ChildId: c.name, Pid: who.Id, Reason: reason})
		switch {
		case c.spec.restartType() == messages.RestartType_TEMPORARY || s.simple():
			s.remove(c)
		case s.pendingStart(c):
			c.state = messages.ChildState_RESTARTING // stopped for a group restart
		}
		s.stepDone(c)
	default:
		s.publish(&messages.SupervisorEvent{Kind: messages.EventKind_CHILD_EXITED, ChildId: c.name, Pid: who.Id, Reason: reason})
		s.exited(c, reason)
	}
}

// stepDone ends the current step if it was waiting for c to stop.
func (s *supervisorActor) stepDone(c *child) {
	if s.cur == nil {
		return
	}
	switch s.cur.kind {
	case opStop:
		if s.cur.c == c {
			s.finish(nil)
		}
	case opStopAll:
		delete(s.cur.waiting, c)
		if len(s.cur.waiting) == 0 {
			s.finish(nil)
		}
	}
}

func (s *supervisorActor) startFailed(c *child, reason *messages.ExitReason) {
	s.publish(&messages.SupervisorEvent{Kind: messages.EventKind_CHILD_START_FAILED, ChildId: c.name, Reason: reason})
	o := s.cur
	if o != nil && o.kind == opStart && o.c == c {
		s.cur = nil
	} else {
		o = nil
	}
	switch {
	case s.phase == phaseStarting:
		// OTP: a child that fails to start fails its supervisor's start;
		// a child that did not start because what it is part of stops
		// (a shutdown reason) makes it a shutdown too.
		s.publish(&messages.SupervisorEvent{Kind: messages.EventKind_SUPERVISOR_START_FAILED, ChildId: c.name, Reason: reason})
		detail := fmt.Sprintf("failed to start child %s: %s", c.name, FormatReason(reason))
		exit := crashExit("%s", detail)
		if reason.GetKind() == messages.ExitKind_EXIT_SHUTDOWN {
			exit = shutdownExit(detail)
		}
		s.shutdown(exit,
			fmt.Errorf("%w: %s: child %s: %s", ErrStartFailed, s.self.Id, c.name, FormatReason(reason)))
		if o != nil && o.done != nil {
			o.done(fmt.Errorf("%w: %s: %s", ErrStartFailed, c.name, FormatReason(reason)))
		}
	case o != nil && o.done != nil:
		// start_child or restart_child: the caller gets the error; a
		// dynamically added child is dropped, as OTP drops its spec.
		if o.dynamic {
			s.remove(c)
		}
		o.done(fmt.Errorf("%w: %s: %s", ErrStartFailed, c.name, FormatReason(reason)))
	default:
		// An automatic restart failed: that is another exit.
		s.exited(c, reason)
	}
}

// exited decides what an unrequested exit means: restart per strategy,
// or give up when the restart intensity is exceeded.
func (s *supervisorActor) exited(c *child, reason *messages.ExitReason) {
	if s.phase >= phaseStopping {
		s.stepDone(c)
		return
	}
	restart := false
	switch c.spec.restartType() {
	case messages.RestartType_PERMANENT:
		restart = true
	case messages.RestartType_TRANSIENT:
		restart = abnormal(reason)
	}
	if !restart {
		if c.spec.restartType() == messages.RestartType_TEMPORARY || s.simple() {
			s.remove(c)
		}
		return
	}
	if !s.window.add(time.Now()) {
		s.publish(&messages.SupervisorEvent{Kind: messages.EventKind_INTENSITY_EXCEEDED, ChildId: c.name, Reason: reason,
			Detail: fmt.Sprintf("more than %d restarts in %s", s.window.max, s.window.period)})
		detail := fmt.Sprintf("more than %d restarts in %s; last: child %s exited: %s",
			s.window.max, s.window.period, c.name, FormatReason(reason))
		s.shutdown(shutdownExit("reached maximum restart intensity: "+detail),
			fmt.Errorf("%w: %s: %s", ErrGaveUp, s.self.Id, detail))
		return
	}
	if s.pendingStart(c) {
		return // a group restart already under way starts it again
	}
	c.restarts++
	if b := c.spec.Backoff; b != nil && time.Since(c.startedAt) >= b.Max {
		c.consecutive = 0
	}
	c.consecutive++
	var delay time.Duration
	if b := c.spec.Backoff; b != nil {
		delay = b.Delay(c.consecutive, rand.Float64)
	}

	group := []*child{c}
	switch s.spec.Strategy {
	case messages.Strategy_ONE_FOR_ALL:
		group = append([]*child(nil), s.children...)
	case messages.Strategy_REST_FOR_ONE:
		for i, x := range s.children {
			if x == c {
				group = append([]*child(nil), s.children[i:]...)
			}
		}
	}
	// Stop the others in reverse order, then start the group in order;
	// temporary siblings are stopped and dropped, as OTP does.
	var starts []*child
	for i := len(group) - 1; i >= 0; i-- {
		if x := group[i]; x != c && x.live() {
			s.enqueue(&op{kind: opStop, c: x})
		}
	}
	for _, x := range group {
		if x != c && x.spec.restartType() == messages.RestartType_TEMPORARY {
			s.enqueue(&op{kind: opCall, done: func(error) { s.remove(x) }})
			continue
		}
		if !x.live() {
			x.state = messages.ChildState_RESTARTING
		}
		starts = append(starts, x)
	}
	s.publish(&messages.SupervisorEvent{Kind: messages.EventKind_CHILD_RESTART_SCHEDULED, ChildId: c.name, Reason: reason,
		Delay: durationpb.New(delay), Restarts: c.restarts})
	if delay <= 0 {
		s.enqueueStarts(starts)
		return
	}
	c.restartGroup = starts
	s.startTimer(c, delay, func(gen uint64) any { return &backoffDone{c: c, gen: gen} })
}

func (s *supervisorActor) enqueueStarts(cs []*child) {
	for _, x := range cs {
		x.state = stateIfIdle(x, messages.ChildState_RESTARTING)
		s.enqueue(&op{kind: opStart, c: x})
	}
}

func stateIfIdle(c *child, st messages.ChildState) messages.ChildState {
	if c.live() {
		return c.state
	}
	return st
}

// pendingStart reports whether c is already due to start again: in the plan,
// or in a group waiting for a backoff.
func (s *supervisorActor) pendingStart(c *child) bool {
	for _, o := range s.queue {
		if o.kind == opStart && o.c == c {
			return true
		}
	}
	for _, x := range s.children {
		for _, y := range x.restartGroup {
			if y == c {
				return true
			}
		}
	}
	return false
}
