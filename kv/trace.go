package kv

import (
	"bytes"
	"strings"
	"time"

	"github.com/coppice-kv/coppice/messages"
)

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

// callStart is when a call begins, for ran; the zero time when the trace
// takes no calls, which then cost no clock read.
func (tr *cmdTrace) callStart() time.Time {
	if tr == nil || !tr.calls {
		return time.Time{}
	}
	return time.Now()
}

// ran records a call of stat (kv.StatSpec's) with args that ran from
// start (callStart's) and answered r.
func (tr *cmdTrace) ran(stat *Spec, args [][]byte, r *messages.Reply, start time.Time) {
	if tr == nil || !tr.calls {
		return
	}
	c := &messages.ScriptCall{Name: stat.Name, Ns: int64(time.Since(start))}
	if e := r.GetError(); e != "" {
		c.Failed, c.Error = true, ErrorCode(e)
	}
	tr.add(c, args)
}

// refused records a call of stat (nil: an unknown command or
// subcommand) refused before it ran with the error r.
func (tr *cmdTrace) refused(stat *Spec, r *messages.Reply) {
	if tr == nil || !tr.calls {
		return
	}
	c := &messages.ScriptCall{Rejected: true, Error: ErrorCode(r.GetError())}
	if stat != nil {
		c.Name = stat.Name
	}
	tr.add(c, nil)
}

// denied records a call of stat the caller's ACL rules refused (result,
// and the position of the key or channel refused), which did not run.
func (tr *cmdTrace) denied(stat *Spec, result, pos int, args [][]byte) {
	if tr == nil || !tr.calls {
		return
	}
	c := &messages.ScriptCall{Name: stat.Name, Rejected: true, Error: "ERR", AclDenied: int32(result), AclObject: ACLCommandName(args)}
	if result != ACLDeniedCmd {
		c.AclObject = string(args[pos])
	}
	tr.add(c, nil)
}

// publish records a message a script published: the client's node
// publishes it when the reply comes back. Always kept (it is no
// statistic: without it the message is lost).
func (tr *cmdTrace) publish(channel, message []byte, sharded bool) {
	if tr != nil {
		tr.out.Published = append(tr.out.Published, &messages.ScriptPublish{Channel: bytes.Clone(channel), Message: bytes.Clone(message), Sharded: sharded})
	}
}

// errorCounted records that the command's reply is an error a call
// answered, which the call's statistics count already.
func (tr *cmdTrace) errorCounted() {
	if tr != nil && tr.calls {
		tr.out.ErrorCounted = true
	}
}

// add appends c, with args when the trace wants them (a call that ran:
// the monitors see it).
func (tr *cmdTrace) add(c *messages.ScriptCall, args [][]byte) {
	if tr.args {
		c.Args = args
	}
	tr.out.Calls = append(tr.out.Calls, c)
}

// ErrorCode is the code Redis's errorstats count an error reply under:
// msg's first word ("WRONGTYPE", a script's "MY_CODE"), when a space ends
// it within the reply line's first 32 bytes (its '-' and msg's first 31),
// else ERR (afterErrorReply's rule).
func ErrorCode(msg string) string {
	if i := strings.IndexByte(msg[:min(len(msg), 31)], ' '); i >= 0 {
		return msg[:i]
	}
	return "ERR"
}

// attach returns r with the trace (r itself when there is nothing in it);
// a copy, as r may be one of the engine's shared replies.
func (tr *cmdTrace) attach(r *messages.Reply) *messages.Reply {
	if tr == nil || (len(tr.out.Calls) == 0 && len(tr.out.Missed) == 0 && len(tr.out.Published) == 0 && !tr.out.ErrorCounted) || r == nil {
		return r
	}
	return &messages.Reply{Value: r.Value, Trace: &tr.out}
}

// ReadCommand is Read of cmd, with its trace (messages.Command.trace), and
// a big reply's bulk strings written out when cmd asks (Command.bulks).
func ReadCommand(r Reader, cmd *messages.Command) *messages.Reply {
	return read(r, cmd.GetArgs(), cmd.GetNowMs(), newTrace(cmd.GetTrace()), cmd.GetBulks())
}
