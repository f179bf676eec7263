package supervisor

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
)

// StartFunc makes a child's actor. args are the spec's Args, followed, for a
// simple_one_for_one child, by the extra arguments given to StartChild. An
// error (or a panic) is a start failure, as is a panic in the actor's
// handling of *actor.Started.
type StartFunc func(args ...any) (actor.Actor, error)

// Shutdown times with a special meaning. Zero means the default: 5s for a
// worker, Infinity for a supervisor (OTP's defaults).
const (
	BrutalKill time.Duration = -1
	Infinity   time.Duration = math.MaxInt64
)

// NoRestarts as Spec.Intensity allows no restart at all: the first exit
// that asks for one makes the supervisor give up.
const NoRestarts = -1

const (
	defaultIntensity      = 1
	defaultPeriod         = 5 * time.Second
	defaultWorkerShutdown = 5 * time.Second
)

// Backoff delays a child's restart, beyond OTP: the n-th restart in a row
// waits Min*2^(n-1), at most Max, spread by +/- Jitter (0..1). The count
// starts again once the child has run for Max without exiting.
type Backoff struct {
	Min, Max time.Duration
	Jitter   float64
}

// Delay is the wait before the n-th consecutive restart (n >= 1); rnd returns
// a number in [0, 1).
func (b Backoff) Delay(n int, rnd func() float64) time.Duration {
	if n < 1 || b.Min <= 0 {
		return 0
	}
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	if b.Jitter > 0 {
		d = time.Duration(float64(d) * (1 + b.Jitter*(2*rnd()-1)))
	}
	return d
}

// ChildSpec describes one child, as OTP's child_spec does.
type ChildSpec struct {
	// ID names the child among its siblings and is the last part of its
	// actor path (PID id "parent/ID"). It must not contain '/'.
	ID string
	// Kind is the registered name of Start, if any; informational (printing).
	Kind string
	// Start makes the actor. Nil for a supervisor child described by
	// Supervisor.
	Start StartFunc
	Args  []any
	// Restart: PERMANENT (the zero value) always restarts; TRANSIENT only
	// after an abnormal exit (crash or kill); TEMPORARY never.
	Restart messages.RestartType
	// Shutdown: BrutalKill, a timeout, or Infinity; zero means the default.
	Shutdown time.Duration
	// Type: WORKER (the zero value) or SUPERVISOR. Set by Sup.
	Type    messages.ChildType
	Backoff *Backoff
	// Props are extra protoactor-go props options (mailbox, middleware).
	// A mailbox of the child's own replaces the supervisor's, which turns
	// what is left in it when the child stops into dead letters (a
	// request among them answered at once, a Refuser refused) where
	// protoactor-go's drops them.
	Props []actor.PropsOption
	// Supervisor is the spec of a supervisor child (see Sup).
	Supervisor *Spec
}

// Spec describes a supervisor: its strategy, restart intensity and children.
type Spec struct {
	Strategy messages.Strategy
	// Intensity is the most restarts allowed within Period; more make the
	// supervisor stop its children and exit with reason shutdown. Zero means
	// OTP's default of 1; NoRestarts means none.
	Intensity int
	// Period is the window for Intensity; zero means 5s.
	Period   time.Duration
	Children []ChildSpec
	// Kinds resolves the kind names of StartChild requests sent as protobuf.
	Kinds *Kinds
}

// Worker is a worker child spec with OTP's defaults.
func Worker(id string, start func() actor.Actor) ChildSpec {
	return ChildSpec{ID: id, Start: func(...any) (actor.Actor, error) { return start(), nil }}
}

// Sup is a supervisor child spec with OTP's defaults (permanent, infinity).
func Sup(id string, spec Spec) ChildSpec {
	return ChildSpec{ID: id, Type: messages.ChildType_SUPERVISOR, Supervisor: &spec}
}

func (s *Spec) intensity() int {
	switch {
	case s.Intensity == 0:
		return defaultIntensity
	case s.Intensity < 0:
		return 0
	}
	return s.Intensity
}

func (s *Spec) period() time.Duration {
	if s.Period <= 0 {
		return defaultPeriod
	}
	return s.Period
}

func (c *ChildSpec) isSupervisor() bool { return c.Type == messages.ChildType_SUPERVISOR }

func (c *ChildSpec) shutdown() time.Duration {
	if c.Shutdown != 0 {
		return c.Shutdown
	}
	if c.isSupervisor() {
		return Infinity
	}
	return defaultWorkerShutdown
}

func (c *ChildSpec) restartType() messages.RestartType {
	if c.Restart == messages.RestartType_RESTART_UNSPECIFIED {
		return messages.RestartType_PERMANENT
	}
	return c.Restart
}

// Validate checks the spec and every spec below it, naming the bad value.
func (s *Spec) Validate() error { return s.validate("") }

func (s *Spec) validate(path string) error {
	bad := func(format string, args ...any) error {
		where := ""
		if path != "" {
			where = path + ": "
		}
		return fmt.Errorf("%w: %s%s", ErrInvalidSpec, where, fmt.Sprintf(format, args...))
	}
	if _, ok := messages.Strategy_name[int32(s.Strategy)]; !ok {
		return bad("unknown strategy %d", s.Strategy)
	}
	if s.Intensity < NoRestarts {
		return bad("intensity %d is negative (use NoRestarts for none)", s.Intensity)
	}
	if s.Period < 0 {
		return bad("period %s is negative", s.Period)
	}
	if s.Strategy == messages.Strategy_SIMPLE_ONE_FOR_ONE && len(s.Children) != 1 {
		return bad("simple_one_for_one needs exactly one child template, got %d", len(s.Children))
	}
	seen := map[string]bool{}
	for i := range s.Children {
		if err := s.Children[i].validate(path, seen); err != nil {
			return err
		}
	}
	return nil
}

func (c *ChildSpec) validate(path string, seen map[string]bool) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidSpec, joinPath(path, c.ID), fmt.Sprintf(format, args...))
	}
	switch {
	case c.ID == "":
		return fmt.Errorf("%w: %s: child with empty id", ErrInvalidSpec, joinPath(path, "?"))
	case strings.ContainsAny(c.ID, "/ \t\n"):
		return bad("id %q contains '/' or white space", c.ID)
	case seen[c.ID]:
		return bad("duplicate child id %q", c.ID)
	}
	seen[c.ID] = true
	if _, ok := messages.RestartType_name[int32(c.Restart)]; !ok {
		return bad("unknown restart type %d", c.Restart)
	}
	if _, ok := messages.ChildType_name[int32(c.Type)]; !ok {
		return bad("unknown child type %d", c.Type)
	}
	if c.Shutdown < BrutalKill {
		return bad("shutdown %s is negative (use BrutalKill)", c.Shutdown)
	}
	if b := c.Backoff; b != nil {
		if b.Min <= 0 || b.Max < b.Min {
			return bad("backoff needs 0 < min <= max, got min %s max %s", b.Min, b.Max)
		}
		if b.Jitter < 0 || b.Jitter > 1 {
			return bad("backoff jitter %v is outside [0, 1]", b.Jitter)
		}
	}
	switch {
	case c.Supervisor != nil && c.Start != nil:
		return bad("has both Start and Supervisor")
	case c.Supervisor != nil:
		if !c.isSupervisor() {
			return bad("has a Supervisor spec but type %s", c.Type)
		}
		return c.Supervisor.validate(joinPath(path, c.ID))
	case c.Start == nil:
		return bad("has no Start function")
	}
	return nil
}

func joinPath(path, id string) string {
	if path == "" {
		return id
	}
	return path + "/" + id
}
