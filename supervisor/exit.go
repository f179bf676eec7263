package supervisor

import (
	"errors"
	"fmt"

	"github.com/coppice-kv/coppice/messages"
)

// exitSignal is what Exit panics with: a deliberate exit with a reason, which
// the supervisor tells apart from a crash.
type exitSignal struct{ reason error }

// errKilled is what a killed child panics with when it finally runs again, so
// that protoactor-go does not finish its stop (the supervisor already has).
var errKilled = errors.New("supervisor: killed")

// Exit ends the calling actor at once with reason, as Erlang's exit/1: nil
// is a normal exit (a transient child stays down), ErrShutdown or an error
// wrapping it is a shutdown (as exit(shutdown) and exit({shutdown, Term}):
// a transient child stays down, and the exit is no failure), any other
// error is an abnormal one (a transient child is restarted). It must be
// called from the actor's Receive; it does not return.
func Exit(reason error) {
	panic(&exitSignal{reason: reason})
}

// ErrShutdown, as Exit's reason or wrapped in it, exits with reason
// shutdown: the actor ends because what it is part of is stopping, not
// because it failed.
var ErrShutdown = errors.New("shutdown")

// Shutdown is a shutdown reason for Exit that says why, as Erlang's
// {shutdown, Term}: the exit's detail is cause's text.
func Shutdown(cause error) error { return shutdownCause{cause} }

type shutdownCause struct{ cause error }

func (s shutdownCause) Error() string        { return s.cause.Error() }
func (s shutdownCause) Unwrap() error        { return s.cause }
func (s shutdownCause) Is(target error) bool { return target == ErrShutdown }

// CrashError is the reason an actor crashes with when sent messages.Crash.
type CrashError string

func (e CrashError) Error() string { return string(e) }

func normalExit() *messages.ExitReason {
	return &messages.ExitReason{Kind: messages.ExitKind_EXIT_NORMAL}
}

func shutdownExit(detail string) *messages.ExitReason {
	return &messages.ExitReason{Kind: messages.ExitKind_EXIT_SHUTDOWN, Detail: detail}
}

func crashExit(format string, args ...any) *messages.ExitReason {
	return &messages.ExitReason{Kind: messages.ExitKind_EXIT_CRASH, Detail: fmt.Sprintf(format, args...)}
}

// reasonOf turns what a child failed with (a panic value or an exitSignal)
// into an exit reason.
func reasonOf(failure any) *messages.ExitReason {
	if s, ok := failure.(*exitSignal); ok {
		switch {
		case s.reason == nil:
			return normalExit()
		case s.reason == ErrShutdown:
			return shutdownExit("")
		case errors.Is(s.reason, ErrShutdown):
			return shutdownExit(s.reason.Error())
		}
		return crashExit("%v", s.reason)
	}
	if p, ok := failure.(*runtimePanic); ok {
		r := crashExit("runtime panic: %v", p.err)
		r.Stack = string(p.stack)
		return r
	}
	return crashExit("panic: %v", failure)
}

// abnormal reports whether reason makes a transient child restart: OTP's
// rule, anything but normal and shutdown.
func abnormal(r *messages.ExitReason) bool {
	return r.GetKind() != messages.ExitKind_EXIT_NORMAL && r.GetKind() != messages.ExitKind_EXIT_SHUTDOWN
}

// FormatReason renders an exit reason as "crash: panic: boom".
func FormatReason(r *messages.ExitReason) string {
	if r == nil {
		return "none"
	}
	kind := map[messages.ExitKind]string{
		messages.ExitKind_EXIT_NORMAL:   "normal",
		messages.ExitKind_EXIT_SHUTDOWN: "shutdown",
		messages.ExitKind_EXIT_CRASH:    "crash",
		messages.ExitKind_EXIT_KILLED:   "killed",
	}[r.Kind]
	if kind == "" {
		kind = "unknown"
	}
	if r.Detail == "" {
		return kind
	}
	return kind + ": " + r.Detail
}
