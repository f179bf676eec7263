package supervisor

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
)

func nop() actor.Actor { return actor.ReceiveFunc(func(actor.Context) {}) }

func TestValidateNamesTheBadValue(t *testing.T) {
	w := Worker("w", nop)
	cases := []struct {
		name string
		spec Spec
		want string
	}{
		{"empty id", Spec{Children: []ChildSpec{{Start: w.Start}}}, "child with empty id"},
		{"slash in id", Spec{Children: []ChildSpec{Worker("a/b", nop)}}, `id "a/b" contains '/'`},
		{"duplicate", Spec{Children: []ChildSpec{w, w}}, `duplicate child id "w"`},
		{"no start", Spec{Children: []ChildSpec{{ID: "x"}}}, "x: has no Start function"},
		{"simple needs one template", Spec{Strategy: messages.Strategy_SIMPLE_ONE_FOR_ONE}, "exactly one child template, got 0"},
		{"negative intensity", Spec{Intensity: -2}, "intensity -2 is negative"},
		{"negative period", Spec{Period: -time.Second}, "period -1s is negative"},
		{"bad strategy", Spec{Strategy: 42}, "unknown strategy 42"},
		{"bad shutdown", Spec{Children: []ChildSpec{{ID: "x", Start: w.Start, Shutdown: -5}}}, "shutdown -5ns is negative"},
		{"bad backoff", Spec{Children: []ChildSpec{{ID: "x", Start: w.Start, Backoff: &Backoff{Min: time.Second, Max: time.Millisecond}}}}, "backoff needs 0 < min <= max"},
		{"bad jitter", Spec{Children: []ChildSpec{{ID: "x", Start: w.Start, Backoff: &Backoff{Min: 1, Max: 2, Jitter: 2}}}}, "jitter 2 is outside [0, 1]"},
		{"nested", Spec{Children: []ChildSpec{Sup("s", Spec{Children: []ChildSpec{{ID: "y"}}})}}, "s/y: has no Start function"},
	}
	for _, c := range cases {
		err := c.spec.Validate()
		if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrInvalidSpec containing %q", c.name, err, c.want)
		}
	}
	if err := (&Spec{Children: []ChildSpec{w}}).Validate(); err != nil {
		t.Errorf("valid spec: %v", err)
	}
}

func TestBackoffDelayDoublesAndCaps(t *testing.T) {
	b := Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	half := func() float64 { return 0.5 }
	want := []time.Duration{0, 10, 20, 40, 50, 50}
	for n, w := range want {
		if got := b.Delay(n, half); got != w*time.Millisecond {
			t.Errorf("Delay(%d) = %s, want %s", n, got, w*time.Millisecond)
		}
	}
	b.Jitter = 0.5
	if lo, hi := b.Delay(1, func() float64 { return 0 }), b.Delay(1, func() float64 { return 0.999999 }); lo != 5*time.Millisecond || hi < 14*time.Millisecond {
		t.Errorf("jitter bounds: %s..%s, want 5ms..~15ms", lo, hi)
	}
}

func TestRestartWindowCountsWithinPeriod(t *testing.T) {
	w := restartWindow{max: 2, period: time.Second}
	t0 := time.Unix(0, 0)
	if !w.add(t0) || !w.add(t0.Add(100*time.Millisecond)) {
		t.Fatal("two restarts within intensity 2 refused")
	}
	if w.add(t0.Add(200 * time.Millisecond)) {
		t.Fatal("third restart within the period allowed")
	}
	w = restartWindow{max: 1, period: time.Second}
	if !w.add(t0) || !w.add(t0.Add(2*time.Second)) {
		t.Fatal("restarts further apart than the period should not add up")
	}
	w = restartWindow{max: 0, period: time.Second}
	if w.add(t0) {
		t.Fatal("intensity 0 allowed a restart")
	}
}

func TestKindsRejectUnknownKindAndBadShutdown(t *testing.T) {
	k := NewKinds()
	k.Register("echo", func(...any) (actor.Actor, error) { return nop(), nil })
	_, err := k.Spec(&messages.SupervisorSpec{Children: []*messages.ChildSpec{{Id: "a", Kind: "nope"}}})
	if !errors.Is(err, ErrUnknownKind) || !strings.Contains(err.Error(), `kind "nope" (registered: [echo])`) {
		t.Errorf("unknown kind: %v", err)
	}
	_, err = k.Spec(&messages.SupervisorSpec{Children: []*messages.ChildSpec{{Id: "a", Kind: "echo", Shutdown: messages.ShutdownKind_TIMEOUT}}})
	if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), "positive shutdown_timeout") {
		t.Errorf("timeout without value: %v", err)
	}
	zero := uint32(0)
	s, err := k.Spec(&messages.SupervisorSpec{Intensity: &zero, Children: []*messages.ChildSpec{{Id: "a", Kind: "echo"}}})
	if err != nil || s.intensity() != 0 {
		t.Errorf("explicit intensity 0: %v, %d", err, s.intensity())
	}
}
