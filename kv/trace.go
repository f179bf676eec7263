package kv

import "github.com/coppice-kv/coppice/messages"

// Script traces: a script's calls, reported to the node that runs the
// script for its client (messages.Command.trace), which counts them in
// its command statistics, shows them to its MONITORs and logs the ACL's
// refusals, as Redis does for the calls of a script it runs.

// The trace levels of messages.Command.trace.
const (
	TraceNone  = 0 // no trace
	TraceCalls = 1 // each call's command and outcome, ACL refusals
	TraceArgs  = 2 // and each call's arguments (MONITOR)
)

// callTrace collects a command's script calls.
type callTrace struct {
	args  bool
	calls []*messages.ScriptCall
}

func newCallTrace(level uint32) *callTrace {
	if level == TraceNone {
		return nil
	}
	return &callTrace{args: level >= TraceArgs}
}

// ran records a call of spec with args that ran and answered r.
func (tr *callTrace) ran(spec *Spec, args [][]byte, r *messages.Reply) {
	if tr == nil {
		return
	}
	c := &messages.ScriptCall{Name: spec.Name, Failed: r.GetError() != ""}
	if tr.args {
		c.Args = args
	}
	tr.calls = append(tr.calls, c)
}

// denied records a call the caller's ACL rules refused (result, and the
// position of the key or channel refused), which did not run.
func (tr *callTrace) denied(result, pos int, args [][]byte) {
	if tr == nil {
		return
	}
	c := &messages.ScriptCall{AclDenied: int32(result), AclObject: ACLCommandName(args)}
	if result != ACLDeniedCmd {
		c.AclObject = string(args[pos])
	}
	tr.calls = append(tr.calls, c)
}

// attach returns r with the calls traced (r itself when there are none);
// a copy, as r may be one of the engine's shared replies.
func (tr *callTrace) attach(r *messages.Reply) *messages.Reply {
	if tr == nil || len(tr.calls) == 0 || r == nil {
		return r
	}
	return &messages.Reply{Value: r.Value, Trace: &messages.ScriptTrace{Calls: tr.calls}}
}

// ReadCommand is Read of cmd, with its trace (messages.Command.trace).
func ReadCommand(r Reader, cmd *messages.Command) *messages.Reply {
	return read(r, cmd.GetArgs(), cmd.GetNowMs(), newCallTrace(cmd.GetTrace()))
}
