package faults

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/supervisor"
)

// TestRecoveredPanicPattern: the pattern TestNemesis looks for matches a
// supervisor's line for an actor dead of a Go runtime error, in the node's
// text and JSON logs, and not an actor's deliberate crash. (It needs no
// Docker.)
func TestRecoveredPanicPattern(t *testing.T) {
	var b bytes.Buffer
	for _, log := range []*slog.Logger{slog.New(slog.NewTextHandler(&b, nil)), slog.New(slog.NewJSONHandler(&b, nil))} {
		b.Reset()
		deliberate := &messages.ExitReason{Kind: messages.ExitKind_EXIT_CRASH, Detail: "panic: sync of shard 2: leader n1 unreachable"}
		log.Warn("supervisor", "event", "CHILD_EXITED", "child", "sync-2", "reason", supervisor.FormatReason(deliberate))
		if m := recoveredPanic.FindString(b.String()); m != "" {
			t.Errorf("a deliberate crash matched: %s", m)
		}
		bug := &messages.ExitReason{Kind: messages.ExitKind_EXIT_CRASH, Detail: "runtime panic: assignment to entry in nil map"}
		log.Error("supervisor", "event", "CHILD_EXITED", "child", "shard-1", "reason", supervisor.FormatReason(bug))
		if m := recoveredPanic.FindString(b.String()); m == "" {
			t.Errorf("a runtime panic did not match in %s", b.String())
		}
	}
}
