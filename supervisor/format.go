package supervisor

import (
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
)

// FormatSpec draws a declared tree:
//
//	node                      rest_for_one
//	├── store                 worker      permanent
//	└── user                  one_for_one
func FormatSpec(name string, spec Spec) string {
	var b strings.Builder
	line(&b, "", name, strategyName(spec.Strategy))
	specLines(&b, "", spec)
	return b.String()
}

func specLines(b *strings.Builder, indent string, spec Spec) {
	for i, c := range spec.Children {
		branch, next := "├── ", "│   "
		if i == len(spec.Children)-1 {
			branch, next = "└── ", "    "
		}
		if c.Supervisor != nil {
			line(b, indent+branch, c.ID, strategyName(c.Supervisor.Strategy)+"  "+restartName(c.restartType()))
			specLines(b, indent+next, *c.Supervisor)
			continue
		}
		desc := "worker  " + restartName(c.restartType()) + "  shutdown " + fmtShutdown(c.shutdown())
		if c.Kind != "" {
			desc += "  (" + c.Kind + ")"
		}
		line(b, indent+branch, c.ID, desc)
	}
}

// FormatTree draws the live tree below the supervisor sup, asking each
// supervisor for its children (each request bounded by timeout).
func FormatTree(c actor.SenderContext, sup *actor.PID, timeout time.Duration) (string, error) {
	var b strings.Builder
	line(&b, "", sup.Id, "supervisor")
	if err := treeLines(&b, c, sup, "", timeout); err != nil {
		return "", err
	}
	return b.String(), nil
}

func treeLines(b *strings.Builder, c actor.SenderContext, sup *actor.PID, indent string, timeout time.Duration) error {
	children, err := WhichChildren(c, sup, timeout)
	if err != nil {
		return err
	}
	for i, ch := range children {
		branch, next := "├── ", "│   "
		if i == len(children)-1 {
			branch, next = "└── ", "    "
		}
		desc := fmt.Sprintf("%s  %s  %s  restarts=%d", strings.ToLower(ch.Type.String()),
			restartName(ch.Restart), strings.ToLower(ch.State.String()), ch.Restarts)
		line(b, indent+branch, ch.Id, desc)
		if ch.Type == messages.ChildType_SUPERVISOR && ch.Pid != "" {
			if err := treeLines(b, c, actor.NewPID(sup.Address, ch.Pid), indent+next, timeout); err != nil {
				return err
			}
		}
	}
	return nil
}

func line(b *strings.Builder, prefix, name, desc string) {
	left := prefix + name
	pad := 26 - len([]rune(left))
	if pad < 2 {
		pad = 2
	}
	b.WriteString(left + strings.Repeat(" ", pad) + desc + "\n")
}

func strategyName(s messages.Strategy) string {
	if s == messages.Strategy_STRATEGY_UNSPECIFIED {
		s = messages.Strategy_ONE_FOR_ONE
	}
	return strings.ToLower(s.String())
}

func restartName(r messages.RestartType) string { return strings.ToLower(r.String()) }
