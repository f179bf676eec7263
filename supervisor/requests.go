package supervisor

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
)

func (s *supervisorActor) reply(to *actor.PID, err error, c *child) {
	if to == nil {
		return
	}
	r := &messages.ChildReply{}
	if err != nil {
		r.Error = err.Error()
	} else if c != nil && c.live() {
		r.Pid = c.pid.Id
	}
	s.ctx.Send(to, r)
}

func (s *supervisorActor) whichChildren() []*messages.ChildInfo {
	out := make([]*messages.ChildInfo, 0, len(s.children))
	for _, c := range s.children {
		info := &messages.ChildInfo{
			Id: c.name, Type: childType(c.spec), Restart: c.spec.restartType(),
			State: c.state, Restarts: c.restarts, LastExit: c.lastExit,
		}
		if c.live() {
			info.Pid = c.pid.Id
		}
		out = append(out, info)
	}
	return out
}

func childType(c *ChildSpec) messages.ChildType {
	if c.isSupervisor() {
		return messages.ChildType_SUPERVISOR
	}
	return messages.ChildType_WORKER
}

func (s *supervisorActor) countChildren() *messages.CountChildrenReply {
	r := &messages.CountChildrenReply{Specs: uint32(len(s.children))}
	if s.simple() {
		r.Specs = 1 // OTP: the template is the one spec
	}
	for _, c := range s.children {
		if c.live() {
			r.Active++
		}
		if c.spec.isSupervisor() {
			r.Supervisors++
		} else {
			r.Workers++
		}
	}
	return r
}

// find looks a child up by id, or by its PID id.
func (s *supervisorActor) find(id string) *child {
	if c := s.byName[id]; c != nil {
		return c
	}
	return s.byName[strings.TrimPrefix(id, s.self.Id+"/")]
}

func (s *supervisorActor) startChildProto(m *messages.StartChild) {
	sender := s.ctx.Sender()
	if s.simple() {
		args := make([]any, 0, len(m.Args))
		for _, a := range m.Args {
			msg, err := a.UnmarshalNew()
			if err != nil {
				s.reply(sender, fmt.Errorf("%w: argument %s: %v", ErrInvalidSpec, a.TypeUrl, err), nil)
				return
			}
			args = append(args, msg)
		}
		s.startChild(ChildSpec{}, args, sender)
		return
	}
	spec, err := s.spec.Kinds.Child(m.Spec)
	if err != nil {
		s.reply(sender, err, nil)
		return
	}
	s.startChild(spec, nil, sender)
}

func (s *supervisorActor) startChild(spec ChildSpec, args []any, sender *actor.PID) {
	if s.phase >= phaseStopping {
		s.reply(sender, ErrShuttingDown, nil)
		return
	}
	var c *child
	if s.simple() {
		tmpl := &s.spec.Children[0]
		s.nextID++
		all := append(append([]any(nil), tmpl.Args...), args...)
		c = s.add(tmpl, all, tmpl.ID+"-"+strconv.Itoa(s.nextID))
	} else {
		if x := s.byName[spec.ID]; x != nil {
			if x.live() {
				s.reply(sender, fmt.Errorf("%w: %s", ErrAlreadyStarted, spec.ID), x)
			} else {
				s.reply(sender, fmt.Errorf("%w: %s", ErrAlreadyPresent, spec.ID), nil)
			}
			return
		}
		if err := spec.validate(s.self.Id, map[string]bool{}); err != nil {
			s.reply(sender, err, nil)
			return
		}
		c = s.add(&spec, spec.Args, spec.ID)
	}
	s.publish(&messages.SupervisorEvent{Kind: messages.EventKind_CHILD_ADDED, ChildId: c.name})
	s.enqueue(&op{kind: opStart, c: c, dynamic: true, done: func(err error) { s.reply(sender, err, c) }})
}

func (s *supervisorActor) terminateChild(id string, sender *actor.PID) {
	c := s.find(id)
	if c == nil {
		s.reply(sender, fmt.Errorf("%w: %s", ErrNotFound, id), nil)
		return
	}
	// A restart waiting for a backoff is cancelled, for c alone. A live
	// child's timer is its shutdown timer (a stop under way): keep it.
	if !c.live() {
		s.cancelRestart(c)
		c.state = messages.ChildState_UNDEFINED
		if s.simple() || c.spec.restartType() == messages.RestartType_TEMPORARY {
			s.remove(c)
		}
	}
	s.enqueue(&op{kind: opStop, c: c, done: func(err error) { s.reply(sender, err, nil) }})
}

// cancelRestart takes c out of any restart waiting for a backoff. The rest
// of a group still starts when the backoff ends, so c's own timer stops only
// if nothing else waits on it.
func (s *supervisorActor) cancelRestart(c *child) {
	for _, x := range s.children {
		x.restartGroup = slices.DeleteFunc(x.restartGroup, func(y *child) bool { return y == c })
	}
	if len(c.restartGroup) == 0 {
		s.stopTimer(c)
		c.restartGroup = nil
	}
}

func (s *supervisorActor) restartChild(id string, sender *actor.PID) {
	c := s.find(id)
	switch {
	case s.simple():
		s.reply(sender, fmt.Errorf("%w: restart_child", ErrSimpleOneForOne), nil)
	case c == nil:
		s.reply(sender, fmt.Errorf("%w: %s", ErrNotFound, id), nil)
	case c.live() || c.state == messages.ChildState_RESTARTING || s.pendingStart(c):
		s.reply(sender, fmt.Errorf("%w: %s", ErrRunning, id), nil)
	case len(c.restartGroup) > 0:
		// Its timer still holds the restart of the siblings it took down.
		s.reply(sender, fmt.Errorf("%w: %s: its group's restart waits for a backoff", ErrRunning, id), nil)
	default:
		s.enqueue(&op{kind: opStart, c: c, done: func(err error) { s.reply(sender, err, c) }})
	}
}

func (s *supervisorActor) deleteChild(id string, sender *actor.PID) {
	c := s.find(id)
	switch {
	case s.simple():
		s.reply(sender, fmt.Errorf("%w: delete_child", ErrSimpleOneForOne), nil)
	case c == nil:
		s.reply(sender, fmt.Errorf("%w: %s", ErrNotFound, id), nil)
	case c.live() || c.state == messages.ChildState_RESTARTING || s.pendingStart(c):
		s.reply(sender, fmt.Errorf("%w: %s", ErrRunning, id), nil)
	default:
		s.remove(c)
		s.reply(sender, nil, nil)
	}
}

func fmtShutdown(d time.Duration) string {
	switch d {
	case BrutalKill:
		return "brutal_kill"
	case Infinity:
		return "infinity"
	}
	return d.String()
}
