package supervisor

import "errors"

// Errors returned by the supervisor API and spec validation. Wrapped errors
// carry the detail (which child, which value); test with errors.Is.
var (
	ErrInvalidSpec     = errors.New("supervisor: invalid spec")
	ErrNotFound        = errors.New("supervisor: no such child")
	ErrAlreadyStarted  = errors.New("supervisor: child already started")
	ErrAlreadyPresent  = errors.New("supervisor: child spec already present")
	ErrRunning         = errors.New("supervisor: child is running")
	ErrSimpleOneForOne = errors.New("supervisor: not allowed on a simple_one_for_one supervisor")
	ErrShuttingDown    = errors.New("supervisor: shutting down")
	ErrStartFailed     = errors.New("supervisor: child failed to start")
	ErrGaveUp          = errors.New("supervisor: reached maximum restart intensity")
	ErrUnknownKind     = errors.New("supervisor: unknown kind")
	ErrTimeout         = errors.New("supervisor: timed out")
)
