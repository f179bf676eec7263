package server

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/resp"
)

// maxPipeline bounds the commands issued before their replies are written.
const maxPipeline = 256

type conn struct {
	s      *Server
	nc     net.Conn
	in     heldReader // what rd reads: nc, after any byte a probe held
	rd     *resp.Reader
	wr     *resp.Writer
	id     int64
	authed bool
	// user is the ACL user the connection runs as (under metaMu: CLIENT
	// LIST reads it); aclUserNow is that user as of aclSeen, the node's
	// users when the connection last looked.
	user       string
	aclSeen    *kv.ACLUsers
	aclUserNow *kv.ACLUser
	quit       bool
	since      time.Time // when it was accepted

	// name and proto are written by the connection's goroutine under
	// metaMu, and read by others' CLIENT LIST under it too.
	metaMu sync.Mutex
	name   string
	proto  int

	pending    []pendingReply
	spec       *kv.Spec     // of the command being issued, nil if unknown
	timing     timing       // of the command being issued
	capture    *[]Pending   // where push puts replies while a queued command runs at EXEC (atExecRun)
	readShard  map[int]bool // shards with a read in pending
	writeShard map[int]bool // shards with a write in pending
	// probing: shards whose writes in pending are all probes that may
	// write yet (Prober, not settled); writeShard has them too
	probing map[int]bool
	nameBuf []byte

	tx    *tx      // the transaction being queued (MULTI), if any
	watch *watched // the keys WATCH watches, if any
	// flag is CLIENT LIST's flags: 'b' blocked, 'x' in MULTI, 'N' none;
	// timed, whether a blocked command has a timeout (INFO's
	// clients_in_timeout_table).
	flag  atomic.Uint32
	timed atomic.Bool

	// subs is what the connection subscribes to (pubsub.go), nsubs their
	// number for other goroutines (CLIENT LIST); box, once it subscribed,
	// is where its output goes.
	subs    subscriptions
	nsubs   atomic.Int32
	nsubsBy [3]atomic.Int32 // by kind: CLIENT LIST's sub, psub, ssub
	box     *outbox

	// For CLIENT LIST: the socket's descriptor (-1: none), the last
	// command (its subcommand, for a container) and when it came, and
	// the commands MULTI queued (-1 outside MULTI).
	fd      int
	lastCmd atomic.Pointer[kv.Spec]
	lastAt  atomic.Int64 // unix ns
	queued  atomic.Int32

	// seq numbers the replies issued (push); trk is CLIENT TRACKING's
	// state, once the connection asked for it (tracking.go).
	seq uint64
	trk *tracking

	// replyOff and skipNext are CLIENT REPLY OFF's and SKIP's; skipThis
	// silences the command being run. unblocked is CLIENT UNBLOCK's way
	// into a blocked command's wait.
	replyOff, skipNext, skipThis bool
	unblocked                    chan blockEnd
	monitoring                   atomic.Bool // MONITOR's: read by CLIENT LIST

	// writes is the log index of the connection's last write on each
	// shard, which WAIT waits for (wait.go).
	writes LogIndexes
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, id: s.nextID.Add(1), proto: 2, since: time.Now(), readShard: map[int]bool{}, writeShard: map[int]bool{}, probing: map[int]bool{},
		unblocked: make(chan blockEnd, 1)}
	c.in.r, c.in.count = nc, &s.stats.netIn
	c.writes.shards = s.backend.Shards()
	c.rd = resp.NewReader(&c.in, s.cfg.Limits)
	c.wr = resp.NewWriter(countingWriter{nc, &s.stats.netOut})
	c.authed, c.user = s.loginFree(), "default"
	c.fd = sockFD(nc)
	c.queued.Store(-1)
	c.lastAt.Store(c.since.UnixNano())
	return c
}

// sockFD is nc's socket descriptor, or -1.
func sockFD(nc net.Conn) int {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	raw.Control(func(f uintptr) { fd = int(f) })
	return fd
}

func (c *conn) serve() {
	defer c.nc.Close()
	defer c.closeOutbox()
	defer c.dropAllSubs()
	defer c.untrack()
	defer c.unmonitor()
	if tc, ok := c.nc.(*tls.Conn); ok {
		tc.SetDeadline(time.Now().Add(handshakeWait))
		if err := tc.Handshake(); err != nil {
			c.s.cfg.Log.Debug("client TLS handshake", "remote", tc.RemoteAddr().String(), "err", err)
			return
		}
		tc.SetDeadline(time.Time{})
	}
	for !c.quit {
		args, err := c.rd.ReadCommand()
		if err != nil {
			c.drain()
			if msg, fatal := resp.ProtocolError(err); fatal {
				c.out(errorf(msg))
			}
			c.flush()
			return
		}
		if len(args) == 0 {
			continue
		}
		c.s.stats.commands.Add(1)
		c.spec, _ = kv.Lookup(args[0])
		stat := kv.StatSpec(c.spec, args)
		queued := c.tx != nil && c.spec != nil && !runsInMulti(c.spec.Name)
		c.timing = timing{stat: c.s.stats.command(stat), begin: time.Now(), queued: queued}
		c.noteCommand(args)
		runs := !queued
		if runs {
			c.timing.hist, c.timing.fast = c.s.stats.histFor(stat)
		}
		c.issuing()
		c.skipThis, c.skipNext = c.skipNext, false
		c.command(args)
		if cs := c.timing.stat; cs != nil && !queued {
			// Answered outside the pending replies (pub/sub's
			// confirmations go to the outbox): it ran.
			c.s.stats.ran(cs)
			cs.ns.Add(uint64(time.Since(c.timing.begin)))
		}
		if runs && c.spec != nil && c.timing.start.IsZero() && !c.spec.Has("skip_slowlog") && c.timing.first != nil {
			c.slowNodeCommand(args, c.timing.first)
		}
		if c.trk != nil {
			c.afterCommand(c.lower(args[0]))
		}
		if c.tx != nil {
			c.queued.Store(int32(len(c.tx.entries)))
		} else {
			c.queued.Store(-1)
		}
		c.timing = timing{}
		if c.rd.Buffered() == 0 || len(c.pending) >= maxPipeline {
			c.drain()
			if err := c.flush(); err != nil {
				return
			}
		}
	}
	c.drain()
	c.flush()
}

// slowNodeCommand puts a command the node served into the slow log when
// it ran long enough, as Redis logs every command it runs (DEBUG SLEEP
// included); first is its first reply. A key-value command goes there
// when its reply is ready (drain).
func (c *conn) slowNodeCommand(args [][]byte, first Pending) {
	took := time.Since(c.timing.begin)
	if !c.s.stats.slow.slow(took) {
		return
	}
	if d, ok := first.(done); ok && rejected(d.r) {
		return
	}
	c.s.stats.slow.add(took, args, c.nc.RemoteAddr().String(), c.name)
}

// out writes a reply: to the socket's buffer, or to the outbox of a
// connection that has one.
func (c *conn) out(r *messages.Reply) {
	if c.box != nil {
		c.box.reply(r)
		return
	}
	c.wr.WriteReply(r, c.proto)
}

// flush sends what out buffered; the outbox's writer flushes its own.
func (c *conn) flush() error {
	if c.box != nil {
		return nil
	}
	return c.wr.Flush()
}

// protocol is the connection's RESP version, for other goroutines.
func (c *conn) protocol() int {
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	return c.proto
}

// pendingReply is a reply to write in its turn, with its command's
// counters and, for a key-value command, when it was read.
type pendingReply struct {
	p      Pending
	seq    uint64
	silent bool // CLIENT REPLY OFF or SKIP: not written
	timing
}

type timing struct {
	// stat is the command's counters (nil: an unknown command, or
	// counted already: a command's first reply counts it); ran, whether
	// that reply counted it as a call, which its next (drain) may find
	// failed; queued, that MULTI queues it (EXEC counts it).
	stat   *cmdStat
	ran    bool
	queued bool
	begin  time.Time // when the port began to run it
	start  time.Time // when a key-value command was read (data)
	// hist is the command's latency histogram (nil: none to count in, or
	// counted already); fast, whether Redis flags it fast; took, the run
	// of a command the node served, once its reply is ready.
	hist  *cmdHist
	fast  bool
	took  time.Duration
	first Pending // the command's first reply, once it has one
	write bool
	args  [][]byte // the command, as issued: for the slow log
}

// push queues a reply, timed if a key-value command is being issued.
func (c *conn) push(p Pending) {
	if c.capture != nil {
		*c.capture = append(*c.capture, p)
		return
	}
	c.seq++
	if c.trk != nil {
		c.trk.issued.Store(c.seq)
	}
	t := c.timing
	if t.stat != nil || t.hist != nil {
		if t.start.IsZero() {
			t.took = time.Since(t.begin)
		}
		t.ran = c.count(p)
	}
	c.timing.hist, c.timing.stat = nil, nil // a command's first reply counts it
	if c.timing.first == nil {
		c.timing.first = p
	}
	c.pending = append(c.pending, pendingReply{p, c.seq, c.replyOff || c.skipThis, t})
}

// reply queues a reply that is ready.
func (c *conn) reply(r *messages.Reply) { c.push(done{r}) }

// drain writes every pending reply, in order, and counts it.
func (c *conn) drain() {
	if c.capture != nil {
		return // a command run at EXEC, inside drain: what came before it is written
	}
	st := c.s.stats
	for i, p := range c.pending {
		r := p.p.Wait()
		if tr := r.GetTrace(); tr != nil {
			c.traced(tr)
		}
		if p.ran && rejected(r) { // refused where it was sent (the leader)
			p.stat.calls.Add(^uint64(0))
			st.processed.Add(-1)
			p.stat.rejected.Add(1)
			p.ran = false
		}
		took := p.took
		if !p.start.IsZero() {
			took = time.Since(p.start)
			if p.write {
				st.writes.observe(took)
			} else {
				st.reads.observe(took)
			}
			if st.slow.slow(took) {
				st.slow.add(took, p.args, c.nc.RemoteAddr().String(), c.name)
			}
		}
		if p.ran {
			p.stat.ns.Add(uint64(took))
		}
		if p.hist != nil {
			st.commandTook(p.hist, p.fast, took, r)
		}
		if e, ok := r.GetValue().(*messages.Reply_Error); ok {
			if !r.GetTrace().GetErrorCounted() {
				st.errorReply(e.Error)
			}
			if p.ran {
				p.stat.failed.Add(1)
			}
		}
		if x, ok := p.p.(*execReply); ok {
			x.count(st, r)
		}
		if !p.silent {
			c.out(r)
		}
		if c.trk != nil {
			c.written(p.seq, i == len(c.pending)-1)
		}
		c.pending[i] = pendingReply{}
	}
	c.pending = c.pending[:0]
	clear(c.readShard)
	clear(c.writeShard)
	clear(c.probing)
}

// count counts the command being issued by its first reply p, as Redis
// counts a command: refused before it ran (a rejected call), queued by
// MULTI (EXEC counts it, unless MULTI refused it), or a call that ran
// (ran true: drain counts its time, and its error if it answers one).
func (c *conn) count(p Pending) (ran bool) {
	cs := c.timing.stat
	if cs == nil {
		return false
	}
	d, ready := p.(done)
	switch {
	case c.timing.queued && ready && d.r.GetError() != "", ready && rejected(d.r):
		cs.rejected.Add(1)
		return false
	case c.timing.queued:
		return false
	}
	c.s.stats.ran(cs)
	return true
}

// rejected reports whether r refuses a command before it ran, as Redis's
// processCommand refuses one (rejected_calls): its arity, an unknown
// subcommand, authentication, ACL rules, the context (pub/sub, MONITOR),
// a read-only replica, a cluster's redirections and retries.
func rejected(r *messages.Reply) bool {
	e := r.GetError()
	if e == "" {
		return false
	}
	for _, p := range rejections {
		if strings.HasPrefix(e, p) {
			return true
		}
	}
	return false
}

var rejections = []string{
	"ERR wrong number of arguments", "ERR unknown subcommand '", "NOAUTH ", "NOPERM ",
	"ERR Can't execute '", "ERR Replica can't interact with the keyspace", "ERR Command not allowed inside a transaction",
	"READONLY ", "LOADING ", "BUSY ", "MISCONF ", "OOM ", "MASTERDOWN ", "NOREPLICAS ",
	"MOVED ", "ASK ", "TRYAGAIN ", "CROSSSLOT ", "CLUSTERDOWN ",
}

// runsInMulti reports whether a command runs at once in MULTI instead of
// being queued, as in Redis.
func runsInMulti(name string) bool {
	switch name {
	case "exec", "discard", "multi", "watch", "quit", "reset":
		return true
	}
	return false
}

func (c *conn) lower(b []byte) string {
	c.nameBuf = append(c.nameBuf[:0], b...)
	for i, ch := range c.nameBuf {
		if 'A' <= ch && ch <= 'Z' {
			c.nameBuf[i] = ch + 'a' - 'A'
		}
	}
	return string(c.nameBuf)
}

func (c *conn) command(args [][]byte) {
	name := c.lower(args[0])
	if c.authRequired() && name != "auth" && name != "hello" && name != "quit" && name != "reset" {
		c.reject(args, "NOAUTH Authentication required.")
		return
	}
	u := c.aclUser()
	if u == nil {
		c.quit = true // its user was deleted: SetACL closes it
		return
	}
	if !u.Open() && !c.checkACL(u, args) {
		return
	}
	if c.monitoring.Load() && c.spec != nil && !c.spec.Node {
		c.reply(errorf("ERR Replica can't interact with the keyspace"))
		return
	}
	if name == "reset" {
		// Redis feeds monitors once a command ran: a monitor's RESET
		// is not shown to itself.
		c.unmonitor()
	}
	if (c.tx == nil && name != "exec") || name == "discard" {
		c.feedMonitors(args) // a transaction's at its EXEC
	}
	if c.subscribedOnly(name, args) || c.txCommand(name, args) {
		return
	}
	c.waitPause(func() bool { return c.pausesAsWrite(name, args) })
	if c.trk != nil {
		c.rememberRead(name, args)
	}
	c.dispatch(name, args)
}

// dispatch runs a command that passed command's checks.
func (c *conn) dispatch(name string, args [][]byte) {
	switch name {
	case "ping":
		switch {
		case len(args) > 2:
			c.reply(arityError(name))
		case c.proto == 2 && c.subscribed():
			// Redis's answer in this context: a pub/sub-like array.
			arg := []byte{}
			if len(args) == 2 {
				arg = clone(args[1])
			}
			c.reply(array(bulkString("pong"), bulk(arg)))
		case len(args) == 1:
			c.reply(replyPong)
		default:
			c.reply(bulk(clone(args[1])))
		}
	case "echo":
		if len(args) != 2 {
			c.reply(arityError(name))
			return
		}
		c.reply(bulk(clone(args[1])))
	case "quit":
		c.reply(replyOK)
		c.quit = true
	case "auth":
		c.auth(args)
	case "acl":
		c.acl(args)
	case "migrate":
		c.migrate(args)
	case "asking":
		// A Redis Cluster client's, before a command an -ASK redirect
		// sent it with; this cluster never redirects so.
		if len(args) != 1 {
			c.reply(arityError(name))
			return
		}
		c.reply(replyOK)
	case "hello":
		c.hello(args)
	case "select":
		c.selectDB(args)
	case "client":
		c.client(args)
	case "command":
		c.reply(kv.Command(args))
	case "config":
		c.reply(c.s.config(args))
	case "info":
		c.reply(c.s.info(args))
	case "cluster":
		c.cluster(args)
	case "slowlog":
		c.reply(c.s.slowlogCmd(args))
	case "latency":
		c.reply(c.s.latencyCmd(args))
	case "memory":
		c.memory(args)
	case "debug":
		c.debugCmd(args)
	case "role":
		c.role(args)
	case "lastsave":
		if len(args) != 1 {
			c.reply(arityError(name))
			return
		}
		c.reply(integer(c.s.lastSave()))
	case "save", "bgsave", "bgrewriteaof":
		c.persistence(name, args)
	case "lolwut":
		c.reply(lolwut(args))
	case "shutdown":
		c.shutdown(args)
	case "monitor":
		if len(args) != 1 {
			c.reply(arityError(name))
			return
		}
		c.monitor()
	case "time":
		if len(args) != 1 {
			c.reply(arityError(name))
			return
		}
		now := time.Now()
		c.reply(array(bulkString(strconv.FormatInt(now.Unix(), 10)), bulkString(strconv.Itoa(now.Nanosecond()/1000))))
	case "subscribe":
		c.subscribe(channelSub, args)
	case "psubscribe":
		c.subscribe(patternSub, args)
	case "ssubscribe":
		c.subscribe(shardSub, args)
	case "unsubscribe":
		c.unsubscribe(channelSub, args)
	case "punsubscribe":
		c.unsubscribe(patternSub, args)
	case "sunsubscribe":
		c.unsubscribe(shardSub, args)
	case "publish":
		c.publish(false, args)
	case "spublish":
		c.publish(true, args)
	case "pubsub":
		c.pubsubCmd(args)
	case "script":
		c.scriptCmd(args)
	case "function":
		c.functionCmd(args)
	case "reset":
		c.reset(args)
	case "xread":
		c.xread(args)
	case "xreadgroup":
		c.xreadgroup(args)
	case "blpop", "brpop", "blmpop", "blmove", "brpoplpush", "bzpopmin", "bzpopmax", "bzmpop":
		c.blocking(name, args)
	case "wait":
		c.wait(args)
	case "module":
		c.module(args)
	case "replicaof", "slaveof", "failover", "sync", "psync", "replconf":
		c.replication(name, args)
	case "pfselftest":
		c.pfSelfTest(args)
	case "readonly", "readwrite":
		// Cluster clients send READONLY before reading from a replica.
		// Every node serves every read as of the leader's latest write,
		// so both modes read the same.
		if len(args) != 1 {
			c.reply(arityError(name))
			return
		}
		c.reply(replyOK)
	default:
		c.data(name, args)
	}
}

func arityError(name string) *messages.Reply {
	return errorf(fmt.Sprintf("ERR wrong number of arguments for '%s' command", name))
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// hello: HELLO [protover [AUTH username password] [SETNAME clientname]]
func (c *conn) hello(args [][]byte) {
	proto := c.proto
	if len(args) >= 2 {
		v, err := strconv.Atoi(string(args[1]))
		if err != nil {
			c.reply(errorf("ERR Protocol version is not an integer or out of range"))
			return
		}
		if v != 2 && v != 3 {
			c.reply(errorf("NOPROTO unsupported protocol version"))
			return
		}
		proto = v
	}
	name := c.name
	for i := 2; i < len(args); i++ {
		opt := c.lower(args[i])
		switch {
		case opt == "auth" && i+2 < len(args):
			if !c.login(args[i+1], args[i+2], string(args[0])) {
				c.reply(errWrongPass)
				return
			}
			i += 2
		case opt == "setname" && i+1 < len(args):
			name = string(args[i+1])
			i++
		default:
			c.reply(errorf(fmt.Sprintf("ERR Syntax error in HELLO option '%s'", args[i])))
			return
		}
	}
	if c.authRequired() {
		c.reply(errorf("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"))
		return
	}
	c.setMeta(name, proto)
	c.reply(mapReply(
		bulkString("server"), bulkString("redis"),
		bulkString("version"), bulkString(redisVersion),
		bulkString("proto"), integer(int64(proto)),
		bulkString("id"), integer(c.id),
		bulkString("mode"), bulkString("standalone"),
		bulkString("role"), bulkString("master"),
		bulkString("modules"), array(),
	))
}

// reset: RESET, a connection as new: no MONITOR, no tracking, no
// transaction, no watched keys, no subscriptions, no name, RESP2, CLIENT
// REPLY ON, and not authenticated when the port wants a password.
func (c *conn) reset(args [][]byte) {
	if len(args) != 1 {
		c.reply(arityError("reset"))
		return
	}
	// Redis's clearClientConnectionState: MONITOR, tracking, the
	// transaction, subscriptions, name, protocol and user all go, and
	// CLIENT REPLY is ON again.
	c.unmonitor()
	c.untrack()
	c.tx, c.watch = nil, nil
	c.flag.Store(0)
	if c.subscribed() {
		c.dropAllSubs()
	}
	c.setMeta("", 2)
	c.setUser("default")
	c.authed = c.s.loginFree()
	c.replyOff, c.skipNext = false, false
	c.reply(status("RESET"))
}

func (c *conn) selectDB(args [][]byte) {
	if len(args) != 2 {
		c.reply(arityError("select"))
		return
	}
	n, err := strconv.ParseInt(string(args[1]), 10, 64)
	switch {
	case err != nil:
		c.reply(errorf("ERR value is not an integer or out of range"))
	case n != 0:
		c.reply(errorf("ERR DB index is out of range"))
	default:
		c.reply(replyOK)
	}
}

func (c *conn) client(args [][]byte) {
	if len(args) < 2 {
		c.reply(arityError("client"))
		return
	}
	if r := kv.CheckSubcommand(args); r != nil && strings.HasPrefix(r.GetError(), "ERR wrong number") {
		c.reply(r) // a subcommand of the table, with the wrong arity
		return
	}
	sub := c.lower(args[1])
	switch {
	case sub == "setname" && len(args) == 3:
		if bytes.ContainsAny(args[2], " \n") {
			c.reply(errorf("ERR Client names cannot contain spaces, newlines or special characters."))
			return
		}
		c.setMeta(string(args[2]), c.proto)
		c.reply(replyOK)
	case sub == "getname" && len(args) == 2:
		if c.name == "" {
			c.reply(nullBulk())
		} else {
			c.reply(bulkString(c.name))
		}
	case sub == "id" && len(args) == 2:
		c.reply(integer(c.id))
	case sub == "setinfo" && len(args) == 4:
		c.reply(replyOK)
	case sub == "info" && len(args) == 2:
		c.reply(verbatim(c.info()))
	case sub == "list":
		c.reply(c.s.clientList(args[2:]))
	case sub == "kill" && len(args) >= 3:
		c.reply(c.s.clientKill(c, args[2:]))
	case c.trackingCmd(sub, args), c.moreClient(sub, args):
	case sub == "setname" || sub == "getname" || sub == "id" || sub == "setinfo" || sub == "info" || sub == "kill":
		c.reply(errorf(fmt.Sprintf("ERR wrong number of arguments for 'client|%s' command", sub)))
	default:
		c.reply(errorf(fmt.Sprintf("ERR unknown subcommand '%s'. Try CLIENT HELP.", args[1])))
	}
}

// setMeta sets the connection's name and protocol, which CLIENT LIST
// reads from other connections' goroutines.
func (c *conn) setMeta(name string, proto int) {
	c.metaMu.Lock()
	c.name, c.proto = name, proto
	c.metaMu.Unlock()
}

// info is the connection's line of CLIENT INFO and CLIENT LIST, Redis's
// fields that apply here.
func (c *conn) info() string {
	c.metaMu.Lock()
	name, proto := c.name, c.proto
	c.metaMu.Unlock()
	var flags []byte
	if c.nsubs.Load() > 0 {
		flags = append(flags, 'P')
	}
	if f := c.flag.Load(); f == 'p' { // held by CLIENT PAUSE: blocked, to Redis
		flags = append(flags, 'b')
	} else if f != 0 {
		flags = append(flags, byte(f))
	}
	tflags, redir := c.trackingState()
	flags = append(flags, tflags...)
	if c.monitoring.Load() {
		flags = append(flags, 'O')
	}
	if len(flags) == 0 {
		flags = append(flags, 'N')
	}
	cmd := "NULL"
	if sp := c.lastCmd.Load(); sp != nil {
		cmd = sp.Name
	}
	now := time.Now()
	// Redis's fields, in its order. The query buffer is the connection's
	// reader's, not readable from here: 0; the reply buffer is the
	// writer's, a fixed size; nothing waits in an output list.
	return fmt.Sprintf("id=%d addr=%s laddr=%s fd=%d name=%s age=%d idle=%d flags=%s db=0 sub=%d psub=%d ssub=%d multi=%d "+
		"qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=%d rbp=%d obl=0 oll=0 omem=0 tot-mem=%d events=r cmd=%s user=%s redir=%d resp=%d\n",
		c.id, c.nc.RemoteAddr(), c.nc.LocalAddr(), c.fd, name, int64(now.Sub(c.since).Seconds()),
		(now.UnixNano()-c.lastAt.Load())/int64(time.Second), flags,
		c.nsubsBy[channelSub].Load(), c.nsubsBy[patternSub].Load(), c.nsubsBy[shardSub].Load(), c.queued.Load(),
		resp.WriteBufSize, resp.WriteBufSize, resp.WriteBufSize+resp.ReadBufSize, cmd, c.userName(), redir, proto)
}

// noteCommand records the command being run, for CLIENT LIST's cmd and
// idle (Redis names a subcommand with its container: client|list).
func (c *conn) noteCommand(args [][]byte) {
	c.lastAt.Store(c.timing.begin.UnixNano())
	sp := c.spec
	if sp != nil && len(sp.Subcommands) > 0 && len(args) > 1 {
		if sub := sp.Sub(args[1]); sub != nil {
			sp = sub
		}
	}
	c.lastCmd.Store(sp) // an unknown command: NULL, as Redis shows it
}

// nowMs is the time a command is stamped with.
func nowMs() int64 { return time.Now().UnixMilli() }
