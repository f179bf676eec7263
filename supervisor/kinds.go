package supervisor

import (
	"fmt"
	"sort"
	"sync"

	"github.com/coppice-kv/coppice/messages"
)

// Kinds maps kind names to start functions, so that specs written as
// protobuf (messages.SupervisorSpec, in scripts or sent by StartChild) can
// name the actors they start, as Erlang names a module.
type Kinds struct {
	mu sync.RWMutex
	m  map[string]StartFunc
}

// NewKinds returns an empty registry.
func NewKinds() *Kinds { return &Kinds{m: map[string]StartFunc{}} }

// Register adds or replaces a kind.
func (k *Kinds) Register(name string, start StartFunc) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[name] = start
}

// Names lists the registered kinds, sorted.
func (k *Kinds) Names() []string {
	if k == nil {
		return nil
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]string, 0, len(k.m))
	for n := range k.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (k *Kinds) lookup(name string) (StartFunc, bool) {
	if k == nil {
		return nil, false
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	f, ok := k.m[name]
	return f, ok
}

// Spec converts a protobuf supervisor spec, resolving kinds, and validates it.
func (k *Kinds) Spec(p *messages.SupervisorSpec) (Spec, error) {
	s, err := k.spec(p, "")
	if err != nil {
		return Spec{}, err
	}
	return s, s.Validate()
}

func (k *Kinds) spec(p *messages.SupervisorSpec, path string) (Spec, error) {
	s := Spec{Strategy: p.GetStrategy(), Period: p.GetPeriod().AsDuration(), Kinds: k}
	if p.GetPeriod() == nil {
		s.Period = 0
	}
	if p.Intensity != nil {
		s.Intensity = int(*p.Intensity)
		if s.Intensity == 0 {
			s.Intensity = NoRestarts
		}
	}
	for _, c := range p.GetChildren() {
		cs, err := k.child(c, path)
		if err != nil {
			return Spec{}, err
		}
		s.Children = append(s.Children, cs)
	}
	return s, nil
}

// Child converts one protobuf child spec and validates it.
func (k *Kinds) Child(p *messages.ChildSpec) (ChildSpec, error) {
	c, err := k.child(p, "")
	if err != nil {
		return ChildSpec{}, err
	}
	return c, c.validate("", map[string]bool{})
}

func (k *Kinds) child(p *messages.ChildSpec, path string) (ChildSpec, error) {
	if p == nil {
		return ChildSpec{}, fmt.Errorf("%w: no child spec", ErrInvalidSpec)
	}
	c := ChildSpec{ID: p.Id, Kind: p.Kind, Restart: p.Restart, Type: p.Type}
	for _, a := range p.Args {
		c.Args = append(c.Args, a)
	}
	switch p.Shutdown {
	case messages.ShutdownKind_BRUTAL_KILL:
		c.Shutdown = BrutalKill
	case messages.ShutdownKind_INFINITY:
		c.Shutdown = Infinity
	case messages.ShutdownKind_TIMEOUT:
		c.Shutdown = p.ShutdownTimeout.AsDuration()
		if c.Shutdown <= 0 {
			return ChildSpec{}, fmt.Errorf("%w: %s: shutdown TIMEOUT needs a positive shutdown_timeout", ErrInvalidSpec, joinPath(path, p.Id))
		}
	}
	if b := p.Backoff; b != nil {
		c.Backoff = &Backoff{Min: b.Min.AsDuration(), Max: b.Max.AsDuration(), Jitter: b.Jitter}
	}
	if p.Supervisor != nil {
		if c.Type == messages.ChildType_CHILD_TYPE_UNSPECIFIED {
			c.Type = messages.ChildType_SUPERVISOR
		}
		sub, err := k.spec(p.Supervisor, joinPath(path, p.Id))
		if err != nil {
			return ChildSpec{}, err
		}
		c.Supervisor = &sub
		return c, nil
	}
	start, ok := k.lookup(p.Kind)
	if !ok {
		return ChildSpec{}, fmt.Errorf("%w: %s: kind %q (registered: %v)", ErrUnknownKind, joinPath(path, p.Id), p.Kind, k.Names())
	}
	c.Start = start
	return c, nil
}
