package actors

import (
	"context"
	"log/slog"

	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/supervisor"
)

// logEvent writes supervisor events to the node's log: failures at warning
// level, the rest (a child that exited normally among them: a sync done)
// at debug.
func logEvent(log *slog.Logger, ev any) {
	e, ok := ev.(*messages.SupervisorEvent)
	if !ok || log == nil {
		return
	}
	level := slog.LevelDebug
	switch e.Kind {
	case messages.EventKind_CHILD_EXITED:
		if k := e.GetReason().GetKind(); k != messages.ExitKind_EXIT_NORMAL && k != messages.ExitKind_EXIT_SHUTDOWN {
			level = slog.LevelWarn
		}
	case messages.EventKind_CHILD_START_FAILED, messages.EventKind_SUPERVISOR_START_FAILED:
		// A start that failed because the node stops (a shutdown reason)
		// is no failure of its own: the node logs why it stops.
		if e.GetReason().GetKind() != messages.ExitKind_EXIT_SHUTDOWN {
			level = slog.LevelWarn
		}
	case messages.EventKind_CHILD_KILLED, messages.EventKind_INTENSITY_EXCEEDED:
		level = slog.LevelWarn
	}
	attrs := []any{"event", e.Kind.String(), "supervisor", e.Supervisor}
	if e.ChildId != "" {
		attrs = append(attrs, "child", e.ChildId)
	}
	if e.Reason != nil {
		attrs = append(attrs, "reason", supervisor.FormatReason(e.Reason))
	}
	if st := e.GetReason().GetStack(); st != "" {
		// A Go runtime error: a bug, with where it happened.
		level = slog.LevelError
		attrs = append(attrs, "stack", st)
	}
	if e.Restarts > 0 {
		attrs = append(attrs, "restarts", e.Restarts)
	}
	log.Log(context.Background(), level, "supervisor", attrs...)
}
