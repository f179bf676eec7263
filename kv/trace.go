package kv

import "github.com/coppice-kv/coppice/messages"

// Traces: what a command did that the node its client is on accounts for
// (messages.Command.trace): a script's calls, which that node counts in
// its command statistics, shows to its MONITORs and whose ACL refusals it
// logs, as Redis does for the calls of a script it runs; and the keys a
// read found missing, for which it fires keymiss events. The command may
// run on another node (the shard's leader): the trace comes back with its
// reply.

// The flags of messages.Command.trace.
const (
	TraceCalls  = 1 // a script's calls: each one's command and outcome, ACL refusals
	TraceArgs   = 2 // and each call's arguments (MONITOR)
	TraceMisses = 4 // the keys a read found missing (keymiss)
)

// cmdTrace collects what a command's trace asks for.
type cmdTrace struct {
	calls, args, misses bool
	out                 messages.Trace
}

func newTrace(flags uint32) *cmdTrace {
	if flags == 0 {
		return nil
	}
	return &cmdTrace{calls: flags&(TraceCalls|TraceArgs) != 0, args: flags&TraceArgs != 0, misses: flags&TraceMisses != 0}
}

// missed records a key a read looked up and did not find.
func (tr *cmdTrace) missed(key []byte) {
	if tr != nil && tr.misses {
		tr.out.Missed = append(tr.out.Missed, key)
	}
}

// ran records a call of spec with args that ran and answered r.
func (tr *cmdTrace) ran(spec *Spec, args [][]byte, r *messages.Reply) {
	if tr == nil || !tr.calls {
		return
	}
	c := &messages.ScriptCall{Name: spec.Name, Failed: r.GetError() != ""}
	if tr.args {
		c.Args = args
	}
	tr.out.Calls = append(tr.out.Calls, c)
}

// denied records a call the caller's ACL rules refused (result, and the
// position of the key or channel refused), which did not run.
func (tr *cmdTrace) denied(result, pos int, args [][]byte) {
	if tr == nil || !tr.calls {
		return
	}
	c := &messages.ScriptCall{AclDenied: int32(result), AclObject: ACLCommandName(args)}
	if result != ACLDeniedCmd {
		c.AclObject = string(args[pos])
	}
	tr.out.Calls = append(tr.out.Calls, c)
}

// attach returns r with the trace (r itself when there is nothing in it);
// a copy, as r may be one of the engine's shared replies.
func (tr *cmdTrace) attach(r *messages.Reply) *messages.Reply {
	if tr == nil || (len(tr.out.Calls) == 0 && len(tr.out.Missed) == 0) || r == nil {
		return r
	}
	return &messages.Reply{Value: r.Value, Trace: &tr.out}
}

// ReadCommand is Read of cmd, with its trace (messages.Command.trace).
func ReadCommand(r Reader, cmd *messages.Command) *messages.Reply {
	return read(r, cmd.GetArgs(), cmd.GetNowMs(), newTrace(cmd.GetTrace()))
}
