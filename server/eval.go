package server

import (
	"strings"
	"sync"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/kv/luascript"
	"github.com/coppice-kv/coppice/messages"
)

// scripts is the node's script cache: EVALSHA's bodies by SHA. SCRIPT
// LOAD's stay until SCRIPT FLUSH; EVAL's too, up to maxEvalScripts, the
// oldest dropped first (Redis 7.4's rule: a client that sends a new script
// each time must not grow the node without bound). Each node has its own,
// as each Redis Cluster node has, but an EVALSHA a node's cache does not
// know asks the other nodes' (Server.script), so a script loaded through
// one node runs through every node.
type scripts struct {
	mu     sync.Mutex
	loaded map[string][]byte
	evald  map[string][]byte
	order  []string // evald's SHAs, oldest first
}

const maxEvalScripts = 500

func newScripts() *scripts {
	return &scripts{loaded: map[string][]byte{}, evald: map[string][]byte{}}
}

func (sc *scripts) get(sha string) []byte {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if b, ok := sc.loaded[sha]; ok {
		return b
	}
	return sc.evald[sha]
}

func (sc *scripts) load(sha string, body []byte) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.loaded[sha] = body
}

func (sc *scripts) remember(sha string, body []byte) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if _, ok := sc.loaded[sha]; ok {
		return
	}
	if _, ok := sc.evald[sha]; ok {
		return
	}
	if len(sc.order) >= maxEvalScripts {
		delete(sc.evald, sc.order[0])
		sc.order = sc.order[1:]
	}
	sc.evald[sha] = body
	sc.order = append(sc.order, sha)
}

func (sc *scripts) flush() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	clear(sc.loaded)
	clear(sc.evald)
	sc.order = nil
}

// evalCommand turns EVAL, EVALSHA, EVAL_RO or EVALSHA_RO (args, arity
// checked) into the engine's kv.EvalName command, owned (a copy of the
// client's arguments), as kv.PrepareEval does; an EVAL's script joins the
// cache.
func (s *Server) evalCommand(name string, args [][]byte) (cmd [][]byte, shard int, read bool, r *messages.Reply) {
	cmd, shard, read, sc, r := kv.PrepareEval(name, args, s.script, s.backend.Shards())
	if r != nil {
		return nil, 0, false, r
	}
	if name == "eval" || name == "eval_ro" {
		s.scripts.remember(sc.SHA, sc.Body)
	}
	// The body is the compiled script's copy (never changed); the rest is
	// copied from the reader's buffers.
	cmd[2] = sc.Body
	return cloneExcept(cmd, func(i int) bool { return i == 2 }), shard, read, nil
}

// ScriptAsker is a backend whose node has peers: AskScript asks them for
// a script by its SHA-1 (nil if none has it, or none answers in time),
// FlushScripts has them empty their script caches.
type ScriptAsker interface {
	AskScript(sha string) []byte
	FlushScripts()
}

// script is the body of the script sha: from this node's cache, or from a
// peer's (then kept here, as an EVAL's is), so that a script loaded
// through one node runs through any; nil if none has it.
func (s *Server) script(sha string) []byte {
	if b := s.scripts.get(sha); b != nil {
		return b
	}
	asker, ok := s.backend.(ScriptAsker)
	if !ok || len(sha) != 40 {
		return nil
	}
	b := asker.AskScript(sha)
	if b != nil {
		s.scripts.remember(sha, b)
	}
	return b
}

// AnswerScript is this node's answer to a peer's ScriptQuery.
func (s *Server) AnswerScript(q *messages.ScriptQuery) *messages.ScriptAnswer {
	if q.GetFlush() {
		s.scripts.flush()
		return &messages.ScriptAnswer{}
	}
	return &messages.ScriptAnswer{Body: s.scripts.get(q.GetSha())}
}

// scriptCommand is the engine's command of EVAL and its kin
// (evalCommand) or of FCALL and FCALL_RO (fcallCommand), owned: the shard
// it runs on (-1 for a script without keys) and whether it is a read.
func (c *conn) scriptCommand(name string, args [][]byte) (cmd [][]byte, shard int, read bool, r *messages.Reply) {
	if name == "fcall" || name == "fcall_ro" {
		cmd, shard, read, r = c.fcallCommand(name, args)
	} else {
		cmd, shard, read, r = c.s.evalCommand(name, args)
	}
	if u := c.aclUser(); r == nil && u != nil && !u.Open() {
		// The script's calls are checked against its caller's rules,
		// on every replica: they travel with the command.
		kv.ScriptACL(cmd, u.Permissions())
	}
	return cmd, shard, read, r
}

// runScript runs a script or a function on its keys' shard (shard 0 for
// none): through the log, or as a read when it may not write.
func (c *conn) runScript(name string, args [][]byte) {
	cmd, shard, read, r := c.scriptCommand(name, args)
	if r != nil {
		// The slow log's view of a refusal, which may have taken time
		// (an EVALSHA's script asked of the peers).
		c.own(args)
		c.reply(r)
		return
	}
	c.timing.args = append([][]byte{[]byte(strings.ToUpper(name))}, cmd[2:]...) // the slow log's view
	shard = max(shard, 0)
	trace := c.s.scriptTrace()
	if read {
		trace |= c.s.missTrace()
	}
	command := &messages.Command{Args: cmd, NowMs: nowMs(), Trace: trace}
	if read {
		c.push(c.issueReadCmd(shard, command))
	} else {
		c.push(c.issueWriteCmd(shard, command))
	}
}

// scriptTrace is the trace a script's command asks for: its calls always
// (for the command statistics and ACL LOG), their arguments too while a
// MONITOR is on.
func (s *Server) scriptTrace() uint32 {
	if s.monitors.n.Load() > 0 {
		return kv.TraceArgs
	}
	return kv.TraceCalls
}

// missTrace is the trace a client's read asks for: the keys it finds
// missing while keymiss events are wanted (notify-keyspace-events' m).
func (s *Server) missTrace() uint32 {
	if n := s.cfg.Notify.Load(); n.Fires() && n&kv.ClassKeyMiss != 0 {
		return kv.TraceMisses
	}
	return 0
}

// traced accounts for what a command did for this connection's client,
// as its reply's trace tells: the keys its reads found missing fire
// keymiss events on this node, as Redis's lookups do; and a script's
// calls are accounted for as Redis accounts for them: each counts in its
// command's statistics, the monitors see it as the client "lua", and one
// the client's ACL rules refused goes to the ACL log (context "lua").
// What the script published (PUBLISH, SPUBLISH) is published here, once:
// every replica ran the script, only this reply comes back.
func (c *conn) traced(tr *messages.Trace) {
	for _, p := range tr.GetPublished() {
		// Waited for as PUBLISH's: once the script answers, every node's
		// subscribers have its messages.
		c.publishNow(p.GetSharded(), p.GetChannel(), p.GetMessage()).Wait()
	}
	if missed := tr.GetMissed(); len(missed) > 0 {
		events := make([]kv.Event, len(missed))
		for i, k := range missed {
			events[i] = kv.Event{Class: kv.ClassKeyMiss, Name: "keymiss", Key: k}
		}
		c.s.Notify(events)
	}
	st := c.s.stats
	for _, call := range tr.GetCalls() {
		if denied := call.GetAclDenied(); denied != 0 {
			c.logDeniedObject(int(denied), call.GetAclObject(), "lua")
		}
		if e := call.GetError(); e != "" {
			st.errorCode(e)
		}
		spec, _ := kv.SpecNamed(call.GetName())
		cs := st.command(spec)
		switch {
		case cs == nil: // an unknown command: its error alone counts
		case call.GetRejected():
			cs.rejected.Add(1)
		default:
			took := time.Duration(call.GetNs())
			st.ran(cs)
			cs.ns.Add(uint64(took))
			if call.GetFailed() {
				cs.failed.Add(1)
			}
			if h, fast := st.histFor(spec); h != nil {
				st.commandTook(h, fast, took, nil)
			}
		}
		if args := call.GetArgs(); len(args) > 0 {
			c.s.feedMonitors("lua", args)
		}
	}
}

// scriptCmd is SCRIPT LOAD, EXISTS, FLUSH, KILL, HELP (and DEBUG,
// refused).
func (c *conn) scriptCmd(args [][]byte) {
	if r := kv.CheckSubcommand(args); r != nil {
		c.reply(r)
		return
	}
	switch strings.ToLower(string(args[1])) {
	case "load":
		sc, r := luascript.Compile(args[2])
		if r != nil {
			c.reply(r)
			return
		}
		c.s.scripts.load(sc.SHA, sc.Body)
		c.reply(bulkString(sc.SHA))
	case "exists":
		items := make([]*messages.Reply, len(args)-2)
		for i, sha := range args[2:] {
			items[i] = integer(0)
			if c.s.scripts.get(strings.ToLower(string(sha))) != nil {
				items[i] = integer(1)
			}
		}
		c.reply(array(items...))
	case "flush":
		if len(args) > 3 || (len(args) == 3 && !strings.EqualFold(string(args[2]), "sync") && !strings.EqualFold(string(args[2]), "async")) {
			c.reply(errorf("ERR SCRIPT FLUSH only support SYNC|ASYNC option"))
			return
		}
		// Every node's cache: an EVALSHA through any node would find the
		// script in another's.
		c.s.scripts.flush()
		if asker, ok := c.s.backend.(ScriptAsker); ok {
			ch := make(chan *messages.Reply, 1)
			go func() { asker.FlushScripts(); ch <- replyOK }()
			c.push(waiting(ch))
			return
		}
		c.reply(replyOK)
	case "kill":
		// A script runs in its shard's apply loop, bounded by its
		// instruction count, on every replica: there is none to kill.
		c.reply(errorf("NOTBUSY No scripts in execution right now."))
	case "debug":
		c.reply(errorf("ERR SCRIPT DEBUG is not supported: a script runs on every replica of its shard, not in a debugging session"))
	case "help":
		lines := []string{
			"EXISTS <sha1> [<sha1> ...]",
			"    Return information about the existence of the scripts in the script cache.",
			"FLUSH [ASYNC|SYNC]",
			"    Flush the Lua scripts cache. Very dangerous on replicas.",
			"    When called without the optional mode argument, the behavior is determined by the",
			"    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
			"    * ASYNC: Asynchronously flush the scripts cache.",
			"    * SYNC: Synchronously flush the scripts cache.",
			"KILL",
			"    Kill the currently executing Lua script.",
			"LOAD <script>",
			"    Load a script into the scripts cache without executing it.",
		}
		c.reply(kv.HelpReply("SCRIPT", lines...))
	}
}
