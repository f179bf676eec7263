package actors

// client: supervised by node (rest_for_one), permanent worker. It owns the
// RESP listener (package server) and is its Backend: writes go to the
// shard's raft actor as messages.Propose, reads after a messages.ReadBarrier
// (or directly while this node is the shard's only voter and leader).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/resp"
	"github.com/coppice-kv/coppice/server"
	"github.com/coppice-kv/coppice/transport"
	"google.golang.org/protobuf/proto"
)

const (
	proposeTimeout = 15 * time.Second
	barrierTimeout = 10 * time.Second
	// writeBytesPerSecond is the slowest rate a write's bytes are
	// expected to move through a node at (read, logged, copied,
	// applied): a write's answer is waited for proposeTimeout plus its
	// bytes at this rate (bytesTime), since a value of hundreds of MB
	// takes seconds on a slow machine; a 512 MB SET gets two more minutes.
	writeBytesPerSecond = 4 << 20
)

// bytesTime is how long cmd's bytes may take at writeBytesPerSecond.
func bytesTime(cmd *messages.Command) time.Duration {
	return time.Duration(proto.Size(cmd)) * time.Second / writeBytesPerSecond
}

// ClientPath is the client actor's path: peers send it messages.Forward.
const ClientPath = RootName + "/client"

type clientActor struct {
	rt  *Runtime
	srv *server.Server
	pub *publisher
	// local runs forwarded commands: it answers here or fails, and never
	// forwards again, so a stale leader hint cannot bounce a command around.
	local *backend
	// closePort ends the waits of the client port's commands.
	closePort context.CancelCauseFunc
}

// errPortClosed ends the waits of the client port's commands when the
// port closes (the node stops): their connections are closed, no answer
// can reach them, and the stop would otherwise wait for each, up to a
// write's 15 s when its shard has no quorum.
var errPortClosed = errors.New("the client port closed")

func (c *clientActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		sys := ctx.ActorSystem()
		c.pub = newPublisher(c.rt)
		b := &broadcastingBackend{newBackend(c.rt, sys), c.pub}
		b.backend.ctx, c.closePort = context.WithCancelCause(context.Background())
		c.local = newBackend(c.rt, sys)
		c.local.local = true
		limits := resp.DefaultLimits()
		if c.rt.MaxBulkLen > 0 {
			limits.MaxBulkLen = c.rt.MaxBulkLen
		}
		srv, err := server.Listen(server.Config{
			Addr: c.rt.ClientAddr, RequirePass: c.rt.RequirePass, DataDir: c.rt.DataDir, TLS: c.rt.ClientTLS,
			Limits: limits, MaxWriteBytes: c.rt.MaxWriteBytes,
			SlowlogSlowerThan: c.rt.SlowlogSlowerThan, SlowlogMaxLen: c.rt.SlowlogMaxLen,
			NodeName: c.rt.Name, Version: c.rt.Version, Log: c.rt.logger(), Stats: &c.rt.clients, Notify: c.rt.Notify,
			Shutdown:     c.rt.OnShutdown,
			Cluster:      func() (*server.ClusterView, error) { return c.rt.clusterView(sys) },
			LastSave:     c.rt.LastSnapshot,
			ActiveExpire: c.rt.SetActiveExpiry,
			ACL:          c.rt.aclUsers(), ACLUpdate: c.rt.proposeACL,
		}, b)
		if err != nil {
			panic(err)
		}
		c.srv = srv
		run := c.local.runForwarded
		c.rt.forwarder.Store(&run)
		c.rt.port.Store(srv)
		srv.SetACL(c.rt.aclUsers()) // any applied since Listen read them
		c.rt.setClientAddr(srv.Addr().String())
		c.rt.logger().Info("client port", "addr", srv.Addr().String(), "tls", c.rt.ClientTLS != nil)
	case *messages.Forward:
		// Waiting on the shard would block the mailbox: answer from a
		// goroutine (the sender is a future). Peers' requests come here
		// only while the transport cannot run them itself (forwarder).
		to, root, b := ctx.Sender(), ctx.ActorSystem().Root, c.local
		go func() { root.Send(to, b.runForwarded(context.Background(), m)) }()
	case *actor.Stopping:
		c.rt.forwarder.Store(nil)
		c.rt.port.Store(nil)
		if c.closePort != nil {
			c.closePort(errPortClosed)
		}
		if c.srv != nil {
			c.srv.Close()
		}
		if c.pub != nil {
			c.pub.close()
		}
	}
}

// broadcastingBackend is the client port's backend: the shards, and the
// other nodes for pub/sub (server.Broadcaster).
type broadcastingBackend struct {
	*backend
	*publisher
}

type backend struct {
	rt    *Runtime
	root  *actor.RootContext
	pids  []*actor.PID
	local bool
	// ctx bounds the waits of the commands the backend runs for its
	// clients (errPortClosed); a forwarded command's request bounds its.
	ctx context.Context
}

func newBackend(rt *Runtime, sys *actor.ActorSystem) *backend {
	b := &backend{rt: rt, root: sys.Root, ctx: context.Background()}
	for i := 0; i < rt.Shards; i++ {
		b.pids = append(b.pids, actor.NewPID(sys.Address(), RaftPath(i)))
	}
	return b
}

func (b *backend) Shards() int { return b.rt.Shards }

// runForwarded runs a command a peer forwarded to this node and waits for
// its answer, or for ctx's end (the peer gave up, or its connection is
// closing): NotApplied tells the peer it may try it again.
func (b *backend) runForwarded(ctx context.Context, m *messages.Forward) *messages.ForwardReply {
	reply := &messages.ForwardReply{}
	p := b.forwarded(ctx, m)
	if cp, ok := p.(*confirmedProbe); ok {
		if r, ok := cp.confirm(); ok {
			reply.Reply = r
			return reply
		}
		p = cp.propose()
	}
	if rp, ok := p.(retrying); ok {
		reply.Reply, reply.NotApplied = rp.result()
	} else {
		reply.Reply = p.Wait()
	}
	if w, ok := p.(*proposal); ok {
		reply.Index = w.index
	}
	return reply
}

// forwarded runs a command a peer forwarded to this node; its waits end
// with ctx.
func (b *backend) forwarded(ctx context.Context, m *messages.Forward) server.Pending {
	shard := int(m.Shard)
	switch {
	case shard < 0 || shard >= b.rt.Shards:
		return ready{errReply(fmt.Sprintf("ERR shard %d does not exist (this node has %d)", shard, b.rt.Shards))}
	case m.Scan != nil && m.Scan.Hash == nil:
		return b.scan(ctx, shard, m.Scan)
	case m.HashScan != nil && m.HashScan.Hash != nil:
		return b.scan(ctx, shard, m.HashScan)
	case m.SetScan != nil && m.SetScan.Set != nil && m.SetScan.Hash == nil:
		return b.scan(ctx, shard, m.SetScan)
	case m.ZsetScan != nil && m.ZsetScan.Zset != nil && m.ZsetScan.Hash == nil && m.ZsetScan.Set == nil:
		return b.scan(ctx, shard, m.ZsetScan)
	case m.Command == nil:
		return ready{errReply("ERR forwarded request without a command")}
	case m.Write:
		// The node the client talks to checked the write against its own
		// limit; the leader holds it to this one too, so a node started
		// with a higher limit cannot push past the cluster's others.
		if limit, n := b.rt.MaxWriteBytes, kv.ArgsBytes(m.Command.Args); limit > 0 && n > limit {
			return ready{errReply(fmt.Sprintf("ERR write of %d bytes is over the limit of %d bytes of node %s, the shard's leader (--max-write-mib)", n, limit, b.rt.Name))}
		}
		// A write that changes nothing is answered here without the log,
		// as for this node's own clients: the node that forwarded it
		// sends a connection's writes one at a time, each once the one
		// before is answered, so the probe sees them.
		if kv.Probed(m.Command.Args) {
			if p, _ := b.probeWrite(ctx, shard, m.Command, nil, false); p != nil {
				return p
			}
		}
		return b.propose(ctx, shard, m.Command)
	}
	return b.readCommand(ctx, shard, m.Command)
}

func (b *backend) Propose(shard int, cmd *messages.Command) server.Pending {
	if node := b.diskLowFor(cmd); node != "" {
		return ready{errReply(fmt.Sprintf("ERR disk space low on %s (under its --min-free-disk-mib): writes are refused until it has room again; writes that add no data (DEL, UNLINK, HDEL, GETDEL, EXPIRE, PERSIST, FLUSHDB...) still run", node))}
	}
	return b.propose(b.ctx, shard, cmd)
}

// ProposeIndexed is Propose, noting the write's log index in to once it
// is committed (server.ReplicaBackend: WAIT).
func (b *backend) ProposeIndexed(shard int, cmd *messages.Command, to *server.LogIndexes) server.Pending {
	p := b.Propose(shard, cmd)
	if w, ok := p.(*proposal); ok {
		w.noted = to
	}
	return p
}

// diskLowFor names the node whose low disk refuses cmd, a write that
// may add data (addsData); "" when none does.
func (b *backend) diskLowFor(cmd *messages.Command) string {
	if node := b.rt.diskLowNode(); node != "" && addsData(cmd) {
		return node
	}
	return ""
}

// addsData tells whether a write may add data: Redis's denyoom flag, the
// writes Redis refuses once it reaches maxmemory. They are refused while a
// node's disk is low; the others (DEL, UNLINK, HDEL, GETDEL, EXPIRE,
// PERSIST, FLUSHDB...) run, so that room can be made.
func addsData(cmd *messages.Command) bool { return kv.AddsData(cmd.Args) }

func (b *backend) propose(ctx context.Context, shard int, cmd *messages.Command) *proposal {
	p := &proposal{b: b, ctx: ctx, shard: shard, cmd: cmd}
	p.issue()
	return p
}

// retryWindow bounds how long a command waits out a leadership change
// (an election, a leader moving) before the client gets TRYAGAIN. Only a
// command that surely was not applied is tried again.
const retryWindow = 5 * time.Second

// retrying is a Pending that can tell whether its failure is safe to try
// again: the command was not applied.
type retrying interface {
	server.Pending
	issue()
	result() (reply *messages.Reply, retry bool)
}

// await waits for p, trying it again while its failure is safe to retry,
// within retryWindow. A forwarded command is tried once: the node that
// forwarded it retries.
func await(b *backend, p retrying) *messages.Reply {
	deadline := time.Now().Add(retryWindow)
	for i := 0; ; i++ {
		r, retry := p.result()
		if !retry || b.local || time.Now().After(deadline) || b.ctx.Err() != nil {
			return r
		}
		time.Sleep(min(20*time.Millisecond<<i, 250*time.Millisecond))
		p.issue()
	}
}

type proposal struct {
	b     *backend
	ctx   context.Context // a forwarded command's request: its end ends the wait
	shard int
	cmd   *messages.Command
	ch    chan proto.Message
	msg   localPropose // what issue sends the shard's actor (no allocation of its own)
	leaderHint
	// index is the log index of the entry that carried the write, once
	// committed (0 before, or when unknown); noted, if set, is told it.
	index uint64
	noted *server.LogIndexes
}

// committed records the log index of the entry that carried the write.
func (p *proposal) committed(index uint64) {
	p.index = index
	if p.noted != nil && index > 0 {
		p.noted.Note(p.shard, index)
	}
}

// leaderHint is where a command goes on its first try: to the leader
// another node is known to be (Runtime.remoteLeader), at once. Otherwise,
// and on every retry, the shard's Raft actor takes it, and names the
// leader if it is not one: it knows best.
type leaderHint struct {
	to     leaderRef
	hinted bool
}

// direct tells whether this try goes straight to the leader in h.to. A
// forwarded command (b.local) is never forwarded again.
func (h *leaderHint) direct(b *backend, shard int) bool {
	h.to = leaderRef{}
	if !h.hinted && !b.local {
		h.to = b.rt.remoteLeader(shard)
	}
	h.hinted = true
	return h.to.addr != ""
}

func (p *proposal) issue() {
	if p.direct(p.b, p.shard) {
		return
	}
	p.ch = make(chan proto.Message, 1)
	// A try is issued again only once the last one was answered: the
	// actor is done with msg.
	p.msg = localPropose{cmd: p.cmd, reply: p.ch}
	p.b.root.Send(p.b.pids[p.shard], &p.msg)
}

// answerTimers are answer's timers, reused: every client command waits
// for one answer, and a timer each was a tenth of a busy node's
// allocations. A stopped timer is safe to Reset (Go 1.23 timers).
var answerTimers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// answer waits (bounded by timeout and ctx) for the one answer on ch.
func answer(ctx context.Context, ch <-chan proto.Message, timeout time.Duration) (proto.Message, error) {
	t := answerTimers.Get().(*time.Timer)
	t.Reset(timeout)
	defer func() {
		t.Stop()
		answerTimers.Put(t)
	}()
	select {
	case m := <-ch:
		return m, nil
	case <-t.C:
		return nil, fmt.Errorf("no answer within %v", timeout)
	case <-ctx.Done():
		return nil, fmt.Errorf("request ended: %w", context.Cause(ctx))
	}
}

func (p *proposal) Wait() *messages.Reply { return await(p.b, p) }

func (p *proposal) result() (*messages.Reply, bool) {
	if p.to.addr != "" {
		return p.forward(p.to.id, p.to.addr)
	}
	res, err := answer(p.ctx, p.ch, proposeTimeout+bytesTime(p.cmd))
	if err != nil {
		// A timeout, or the request's end: the write may or may not
		// have been applied.
		return ambiguous(p.shard, err.Error()), false
	}
	pr, ok := res.(*messages.ProposeReply)
	switch {
	case !ok:
		return errReply(fmt.Sprintf("ERR shard %d answered %T", p.shard, res)), false
	case pr.Error == ErrNotLeader:
		return p.forward(pr.LeaderId, pr.LeaderAddr)
	case pr.Error == ErrLeadershipLost:
		return ambiguous(p.shard, "leadership lost"), false
	case pr.Error == ErrNotApplied:
		return ambiguous(p.shard, "it is in the shard's log, and the store of the node that applied it failed"), false
	case pr.Error == ErrNotTaken:
		// The shard's actor stopped before proposing it: not applied.
		return tryAgain(p.shard, "shard restarting"), true
	case pr.Error != "":
		return errReply("ERR shard " + fmt.Sprint(p.shard) + ": " + pr.Error), false
	case pr.Reply == nil:
		return errReply(fmt.Sprintf("ERR shard %d: no reply", p.shard)), false
	}
	p.committed(pr.Index)
	return pr.Reply, false
}

// forward sends the write to the shard's leader on another node.
func (p *proposal) forward(leaderID, leaderAddr string) (*messages.Reply, bool) {
	r, retry, index := p.b.forward(p.shard, leaderID, leaderAddr, &messages.Forward{Write: true, Command: p.cmd})
	p.committed(index)
	return r, retry
}

func (b *backend) Read(shard int, cmd *messages.Command) server.Pending {
	return b.readCommand(b.ctx, shard, cmd)
}

func (b *backend) readCommand(ctx context.Context, shard int, cmd *messages.Command) server.Pending {
	return b.read(ctx, shard, &messages.Forward{Command: cmd}, func(r kv.Reader) *messages.Reply {
		return kv.ReadCommand(r, cmd)
	})
}

// Watch wakes a blocked command (BLPOP...) when this node's replica of
// shard applies a write of one of keys (server.Watcher). A node without
// the shard open gives a channel that never fires: the command polls.
func (b *backend) Watch(shard int, keys [][]byte) (<-chan struct{}, func()) {
	sh, _, err := b.rt.Shard(shard)
	if err != nil {
		return nil, func() {}
	}
	records := make([][]byte, len(keys))
	for i, k := range keys {
		records[i] = kv.RecordKey(k)
	}
	return sh.Watch(records)
}

func (b *backend) Scan(shard int, req *messages.ScanShard) server.Pending {
	return b.scan(b.ctx, shard, req)
}

func (b *backend) scan(ctx context.Context, shard int, req *messages.ScanShard) server.Pending {
	fwd := &messages.Forward{Scan: req}
	switch {
	case req.Hash != nil:
		fwd = &messages.Forward{HashScan: req}
	case req.Set != nil:
		fwd = &messages.Forward{SetScan: req}
	case req.Zset != nil:
		fwd = &messages.Forward{ZsetScan: req}
	}
	return b.read(ctx, shard, fwd, func(r kv.Reader) *messages.Reply {
		var keys [][]byte
		var next []byte
		var wrong *messages.Reply
		var err error
		switch {
		case req.Hash != nil:
			keys, next, wrong, err = kv.HScan(r, req.Hash, req.After, int(req.Count), req.Match, req.NowMs)
		case req.Set != nil:
			keys, next, wrong, err = kv.SScan(r, req.Set, req.After, int(req.Count), req.Match, req.NowMs)
		case req.Zset != nil:
			keys, next, wrong, err = kv.ZScan(r, req.Zset, req.After, int(req.Count), req.Match, req.NowMs)
		default:
			keys, next, err = kv.Scan(r, req.After, int(req.Count), req.Match, req.Type, req.NowMs)
		}
		if wrong != nil {
			return wrong
		}
		if err != nil {
			return errReply("ERR " + err.Error())
		}
		items := make([]*messages.Reply, 0, len(keys)+1)
		if next == nil {
			items = append(items, &messages.Reply{Value: &messages.Reply_NullBulk{NullBulk: true}})
		} else {
			items = append(items, &messages.Reply{Value: &messages.Reply_Bulk{Bulk: next}})
		}
		for _, k := range keys {
			items = append(items, &messages.Reply{Value: &messages.Reply_Bulk{Bulk: k}})
		}
		return &messages.Reply{Value: &messages.Reply_Array{Array: &messages.Replies{Items: items}}}
	})
}

// read runs fn on shard after a read barrier, or forwards fwd to the
// shard's leader when this node does not lead it.
func (b *backend) read(ctx context.Context, shard int, fwd *messages.Forward, fn func(r kv.Reader) *messages.Reply) server.Pending {
	if b.rt.soleLeader(shard) || b.rt.staleReads(shard) {
		// The only voter needs no barrier; a read-only node serves
		// what it has applied (a stale read, by its role), once its
		// replica is current.
		return ready{b.view(shard, fn)}
	}
	r := &read{b: b, ctx: ctx, shard: shard, fwd: fwd, fn: fn}
	r.issue()
	return r
}

// Probe answers a write that would change nothing (kv.Probe), without
// the log, on a shard this node leads (server.Prober). As its only voter
// it answers at once: no other node can lead the shard, and every write
// acknowledged is applied here. With other voters, another node may lead
// by now and have taken writes this replica lacks: a write the probe
// finds would change nothing here gets a read's barrier (leadership
// confirmed, the log applied), then the probe again, and is proposed if
// it writes after all (confirmedProbe). Elsewhere, or when the probe
// finds it writes, Probe declines, and the write is proposed at once.
func (b *backend) Probe(shard int, cmd *messages.Command, to *server.LogIndexes, behind bool) (server.Pending, bool) {
	return b.probeWrite(b.ctx, shard, cmd, to, behind)
}

// probeWrite is Probe for a write of a client of this node, or of one a
// peer forwarded (its waits end with ctx). behind: the connection has
// probes in flight on shard that may write yet; this one is answered only
// when waited for, after them, by a confirmedProbe, even by a sole
// voter.
func (b *backend) probeWrite(ctx context.Context, shard int, cmd *messages.Command, to *server.LogIndexes, behind bool) (server.Pending, bool) {
	l := b.rt.shardLead(shard)
	if !l.sole && !l.leads || b.diskLowFor(cmd) != "" {
		return nil, false // proposed, or refused as Propose refuses it
	}
	reply, ok := b.probe(shard, cmd)
	switch {
	case !ok:
		return nil, false
	case l.sole && !behind:
		b.rt.clients.Unlogged()
		return ready{reply}, true
	}
	p := &confirmedProbe{b: b, ctx: ctx, shard: shard, cmd: cmd, to: to, ch: make(chan proto.Message, 1)}
	b.root.Send(b.pids[shard], &localReadBarrier{reply: p.ch})
	return p, false
}

// probe runs kv.Probe on one commit's state of this node's replica.
func (b *backend) probe(shard int, cmd *messages.Command) (reply *messages.Reply, ok bool) {
	sh, _, err := b.rt.Shard(shard)
	if err != nil {
		return nil, false
	}
	if sh.ViewAtOnce(func(r kv.Reader) error { reply, ok = kv.Probe(r, cmd); return nil }) != nil {
		return nil, false
	}
	return reply, ok
}

// confirmedProbe is a write that would change nothing on the replica of
// a shard this node leads with other voters, waiting for a read barrier.
type confirmedProbe struct {
	b     *backend
	ctx   context.Context // as proposal's
	shard int
	cmd   *messages.Command
	to    *server.LogIndexes // where a proposal notes its index (WAIT), or nil
	ch    chan proto.Message
}

// Wait answers from the replica if confirm does; otherwise the log
// decides: the write is proposed, and forwarded if another node leads.
func (p *confirmedProbe) Wait() *messages.Reply {
	if reply, ok := p.confirm(); ok {
		return reply
	}
	return p.propose().Wait()
}

// confirm waits for the barrier, and probes again once it confirmed this
// node's lead and the replica caught up with its log: ok when the write
// still changes nothing, with its reply.
func (p *confirmedProbe) confirm() (*messages.Reply, bool) {
	res, err := answer(p.ctx, p.ch, barrierTimeout)
	if rb, ok := res.(*messages.ReadBarrierReply); err == nil && ok && rb.Error == "" {
		if reply, ok := p.b.probe(p.shard, p.cmd); ok {
			p.b.rt.clients.Unlogged()
			return reply, true
		}
	}
	return nil, false
}

// propose sends the write to the log, as Propose (ProposeIndexed with a
// place to note its index) would have.
func (p *confirmedProbe) propose() *proposal {
	w := p.b.propose(p.ctx, p.shard, p.cmd)
	w.noted = p.to
	return w
}

// ready is a Pending whose reply is known already.
type ready struct{ r *messages.Reply }

func (r ready) Wait() *messages.Reply { return r.r }

type read struct {
	b     *backend
	ctx   context.Context // as proposal's
	shard int
	fwd   *messages.Forward
	fn    func(r kv.Reader) *messages.Reply
	ch    chan proto.Message
	leaderHint
}

func (r *read) issue() {
	if r.direct(r.b, r.shard) {
		return
	}
	r.ch = make(chan proto.Message, 1)
	r.b.root.Send(r.b.pids[r.shard], &localReadBarrier{reply: r.ch})
}

func (r *read) Wait() *messages.Reply { return await(r.b, r) }

// result: a read changes nothing, so every failure to reach a leader is
// safe to retry.
func (r *read) result() (*messages.Reply, bool) {
	if r.to.addr != "" {
		reply, retry, _ := r.b.forward(r.shard, r.to.id, r.to.addr, r.fwd)
		return reply, retry
	}
	res, err := answer(r.ctx, r.ch, barrierTimeout)
	if err != nil {
		return tryAgain(r.shard, err.Error()), true
	}
	rb, ok := res.(*messages.ReadBarrierReply)
	switch {
	case !ok:
		return errReply(fmt.Sprintf("ERR shard %d answered %T", r.shard, res)), false
	case rb.Error == ErrNotLeader || rb.Error == ErrLeadershipLost:
		reply, retry, _ := r.b.forward(r.shard, rb.LeaderId, rb.LeaderAddr, r.fwd)
		return reply, retry
	case rb.Error != "":
		return tryAgain(r.shard, rb.Error), true
	}
	return r.b.view(r.shard, r.fn), false
}

// forward sends a command this node cannot run to the shard's leader, and
// waits for its reply. retry tells the command surely was not applied (no
// leader known, or the leader moved before it took the command), so it may
// be tried again; a forwarded command is never forwarded again. index is
// a committed write's log index (0 for a read, or when unknown).
func (b *backend) forward(shard int, leaderID, leaderAddr string, fwd *messages.Forward) (reply *messages.Reply, retry bool, index uint64) {
	switch {
	case b.local:
		return tryAgain(shard, "leadership moved"), true, 0
	case leaderAddr == "" || leaderID == b.rt.Name:
		if why := b.rt.foundingWait(); why != "" {
			return tryAgain(shard, "this node is in no cluster yet: "+why), true, 0
		}
		if _, removed := b.rt.removedBy(); removed {
			// Not applied, but no leader will come: answered at once,
			// not waited on for retryWindow.
			return tryAgain(shard, errRemoved), false, 0
		}
		if b.rt.shardLead(shard).outside {
			return tryAgain(shard, errNotMember), true, 0
		}
		return tryAgain(shard, "no leader known"), true, 0
	}
	remote, err := b.rt.Remote()
	if err != nil {
		return tryAgain(shard, err.Error()), true, 0 // not sent
	}
	fwd.Shard = uint32(shard)
	timeout := proposeTimeout
	if fwd.Write {
		// The bytes go to the leader, then through it (its own wait).
		timeout += 2 * bytesTime(fwd.Command)
	}
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	res, err := remote.Request(ctx, transport.Peer{Name: leaderID, Addr: leaderAddr}, ClientPath, fwd)
	if err != nil {
		why := fmt.Sprintf("leader %s: %v", leaderID, err)
		if fwd.Write && !errors.Is(err, transport.ErrNotSent) {
			return ambiguous(shard, why), false, 0 // it reached the leader: it may have been applied
		}
		return tryAgain(shard, why), true, 0
	}
	fr, ok := res.(*messages.ForwardReply)
	if !ok || fr.Reply == nil {
		return errReply(fmt.Sprintf("ERR shard %d: leader %s answered %T", shard, leaderID, res)), false, 0
	}
	return fr.Reply, fr.NotApplied, fr.Index
}

func (b *backend) view(shard int, fn func(r kv.Reader) *messages.Reply) *messages.Reply {
	sh, _, err := b.rt.Shard(shard)
	if err != nil {
		return tryAgain(shard, err.Error())
	}
	var out *messages.Reply
	if err := sh.View(func(r kv.Reader) error { out = fn(r); return nil }); err != nil {
		return tryAgain(shard, err.Error())
	}
	return out
}

// tryAgain is the retryable error a client gets while a shard has no
// leader it can reach: the command was not applied.
func tryAgain(shard int, why string) *messages.Reply {
	return errReply(fmt.Sprintf("TRYAGAIN shard %d is not available: %s", shard, why))
}

// ambiguous is the error of a write whose outcome is not known: it reached
// a leader that lost its leadership or did not answer in time, so it may
// or may not have been applied. It is not TRYAGAIN, which Redis Cluster
// clients retry on their own: retrying an INCR that was applied would
// apply it twice. A client that knows its write is idempotent (SET) may
// send it again.
func ambiguous(shard int, why string) *messages.Reply {
	return errReply(fmt.Sprintf("AMBIGUOUS shard %d: the write may or may not have been applied: %s", shard, why))
}

func errReply(s string) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Error{Error: s}}
}

// LastSnapshot is when the newest Raft snapshot of the shards this node
// holds was written (its meta.json's time), taken or received; zero when
// there is none (LASTSAVE).
func (rt *Runtime) LastSnapshot() time.Time {
	var last time.Time
	for i := range rt.Shards {
		_, snaps, err := rt.Shard(i)
		if err != nil {
			continue
		}
		metas, err := snaps.List()
		if err != nil || len(metas) == 0 {
			continue
		}
		if fi, err := os.Stat(filepath.Join(snaps.Dir(), metas[0].ID, "meta.json")); err == nil && fi.ModTime().After(last) {
			last = fi.ModTime()
		}
	}
	return last
}
