package actors

// raft-<i>: supervised by shard-<i> (rest_for_one), permanent worker. It
// owns shard i's raft.Raft: it proposes write commands, answers read
// barriers (batched VerifyLeader) and status requests. It never blocks its
// mailbox on Raft: apply futures are awaited by a waiter goroutine it owns,
// verifications and status by short goroutines that report back.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/storage"
	"github.com/coppice-kv/coppice/supervisor"
	"github.com/coppice-kv/coppice/transport"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

const (
	applyTimeout = 10 * time.Second
	readTimeout  = 5 * time.Second
	// pendingApplies is the room in a shard actor's queue of entries in
	// flight to its waiter. Entries go one at a time (maxInflight) but
	// for full batches (maxBatchCommands, maxBatchBytes), which a flood
	// of pipelined writes makes; past this many the actor waits for the
	// waiter to take one. 256 full batches are a quarter million
	// commands; the queue's 40 bytes a slot are paid by every shard
	// (4096 were 10 MB at 64 shards).
	pendingApplies = 256
)

// Error texts replies carry: ErrNotLeader when this node does not lead the
// shard (the request was not taken), ErrLeadershipLost when it lost
// leadership with the request in its log (it may or may not be applied),
// ErrNotTaken when the shard's actor stopped (a node's stop, a crash)
// before proposing it (it was not applied: safe to try again),
// ErrNotApplied when it committed and the store here failed to apply it.
const (
	ErrNotLeader      = "not_leader"
	ErrLeadershipLost = "leadership_lost"
	ErrNotTaken       = "not_taken"
	// ErrNotApplied: the write is committed in the shard's log, but this
	// node's store failed as it applied it (the store is rebuilt, or the
	// node stops): its reply is unknown.
	ErrNotApplied = "not_applied"
)

type raftActor struct {
	rt    *Runtime
	shard int

	system *actor.ActorSystem
	self   *actor.PID
	fsm    *storage.Shard
	snaps  *storage.SnapshotStore
	logs   storage.LogStore
	trans  *raft.NetworkTransport
	r      *raft.Raft

	applies    chan pendingApply
	waiterDone chan struct{}
	unwatch    func() // stops watchLeadership
	termStart  termStart

	reads     []replyTo
	verifying bool

	// Proposals waiting for the next log entry: every Propose already in
	// the mailbox joins one entry (group commit), flushed by proposeFlush.
	batch       []*messages.Command
	batchTo     []replyTo
	batchBytes  int
	flushQueued bool
	compacting  bool
	// inflight counts entries proposed and not yet answered by the
	// waiter; at maxInflight, proposals wait for one to finish and go
	// together in the next entry.
	inflight int

	// expiring is set while an active expiry look or entry is under way
	// (expiry.go); stopExpiry stops its ticks. expiryFrom is the floor of
	// the looks, expiryFull the time of the last look from the start.
	expiring   bool
	stopExpiry func()
	expiryFrom int64
	expiryFull time.Time
	// expiryQuiet is the last look that found nothing due, and until
	// when (expiry.go): the expiry ticker reads it and sends no tick
	// while it holds.
	expiryQuiet atomic.Pointer[expiryChecked]

	// rebuilt is when the shard's damaged store was last rebuilt
	// (rebuild).
	rebuilt time.Time
}

// termStart is where a leader's log stood when watchLeadership first saw
// it leading in a term (status reports it; readiness waits for it).
type termStart struct {
	mu          sync.Mutex
	term, index uint64
}

// set records index for term unless one is recorded already, and returns
// the one recorded.
func (t *termStart) set(term, index uint64) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.term != term {
		t.term, t.index = term, index
	}
	return t.index
}

// in returns the index recorded for term, and whether there is one.
func (t *termStart) in(term uint64) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.index, t.term == term
}

// applyDone reports that the waiter answered an entry's proposals; apps
// names the waiter (a restarted actor ignores its predecessor's).
type applyDone struct{ apps chan pendingApply }

// compacted reports the end of a CompactLog.
type compacted struct{}

// proposeFlush makes the proposals gathered so far one log entry.
type proposeFlush struct{}

// A log entry holds at most this many commands or bytes of them.
const (
	maxBatchCommands = 1024
	maxBatchBytes    = 4 << 20
)

// maxInflight is how many entries a shard's Raft actor has proposed and
// not yet seen answered before it holds new proposals back to join the
// next entry: group commit that adapts to load. With nothing in flight a
// proposal goes at once; under load each round of Raft (the leader's
// fsync, the followers' fsyncs, the apply) carries everything that arrived
// during the last one, so a busy shard makes fewer, bigger entries, and
// fewer fsyncs and AppendEntries per write. One, measured against two and
// against no limit: a 3-node cluster under SET -c 50 did 30-40% more
// writes; a standalone node and one client did the same
// (docs/cluster-benchmarks.md).
const maxInflight = 1

type pendingApply struct {
	f  raft.ApplyFuture
	to []replyTo
}

// replyTo is where an answer goes: a PID (a peer's request, or a future),
// or for this node's own client port a channel, which spares a future (a
// registered process and a timer) per command.
type replyTo struct {
	pid *actor.PID
	ch  chan<- proto.Message
}

func (r replyTo) send(root *actor.RootContext, m proto.Message) {
	if r.ch != nil {
		r.ch <- m // buffered for the one answer
		return
	}
	if r.pid != nil {
		root.Send(r.pid, m)
	}
}

// localPropose and localReadBarrier are Propose and ReadBarrier from this
// node's client port, answered on a channel (capacity 1).
type localPropose struct {
	cmd   *messages.Command
	reply chan<- proto.Message
}

type localReadBarrier struct{ reply chan<- proto.Message }

// Refuse answers a proposal its actor never took (supervisor.Refuser): it
// stopped first, or is between two incarnations.
func (m *localPropose) Refuse() { refuse(m.reply, &messages.ProposeReply{Error: ErrNotTaken}) }

// Refuse answers a read barrier its actor never took (supervisor.Refuser).
func (m *localReadBarrier) Refuse() { refuse(m.reply, &messages.ReadBarrierReply{Error: ErrNotTaken}) }

// refuse answers on reply once only: the channel holds one answer, and a
// Refuser may be refused more than once.
func refuse(reply chan<- proto.Message, m proto.Message) {
	select {
	case reply <- m:
	default:
	}
}

// verifyDone reports a batched read barrier.
type verifyDone struct {
	waiting []replyTo
	err     error
}

// bootstrapGroup asks a group's actor to make this node the group's only
// voter if the group has no Raft state yet: the node has just founded its
// cluster (watcherActor.found).
type bootstrapGroup struct{}

// bootstrapAlone makes this node (id, at trans's address) the only voter
// of r's group, unless the group has Raft state already.
func bootstrapAlone(r *raft.Raft, id raft.ServerID, trans raft.Transport) error {
	f := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{
		{Suffrage: raft.Voter, ID: id, Address: trans.LocalAddr()},
	}})
	if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return err
	}
	return nil
}

// failGroupStart ends a Raft group's actor (stopped) whose start failed
// with err: with reason shutdown when the node stops for it (a refused
// rebuild, or the node's Raft log store failed: the node logs the cause
// once as it stops), else as a crash, for its supervisor to restart.
func failGroupStart(rt *Runtime, err error) {
	if errors.Is(err, supervisor.ErrShutdown) {
		supervisor.Exit(err)
	}
	if st := rt.stores.Load(); st != nil && st.logs.Failure() != nil {
		// Reported here, before the start fails: the store's fault watch
		// reports it too, but may be stopped with the tree first, and the
		// node would then neither record the damage nor start again.
		st.fail(st.logs.Failure())
		supervisor.Exit(supervisor.Shutdown(err))
	}
	panic(err)
}

// bootstrapLater runs bootstrapAlone off the actor's mailbox (the Raft
// main loop answers it) and logs a failure: the group then waits to be
// added, as a joining node's does, and its next start bootstraps it
// (Runtime.bootstrap).
func bootstrapLater(rt *Runtime, r *raft.Raft, trans raft.Transport, group string) {
	go func() {
		if err := bootstrapAlone(r, raft.ServerID(rt.Name), trans); err != nil {
			rt.logger().Error("founding the cluster: the group did not bootstrap", "group", group, "err", err)
		}
	}()
}

func shardName(i int) string { return "shard-" + strconv.Itoa(i) }
func raftName(i int) string  { return "raft-" + strconv.Itoa(i) }

// groupPaths are the actor paths of every Raft group's actor on a node of
// shards shards: the system group's, then each shard's.
func groupPaths(shards int) []string {
	paths := []string{SystemPath}
	for i := range shards {
		paths = append(paths, RaftPath(i))
	}
	return paths
}

// RaftPath is the actor path of shard i's Raft actor.
func RaftPath(i int) string { return RootName + "/shards/" + shardName(i) + "/" + raftName(i) }

func (a *raftActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.system, a.self = ctx.ActorSystem(), ctx.Self()
		if err := a.start(); err != nil {
			a.failStart(err)
		}
	case *actor.Stopping:
		a.stop()
	case *messages.Propose:
		a.propose(ctx, m.Command, replyTo{pid: ctx.Sender()})
	case *localPropose:
		a.propose(ctx, m.cmd, replyTo{ch: m.reply})
	case proposeFlush:
		a.flushQueued = false
		if a.inflight < maxInflight {
			a.flush()
		}
	case applyDone:
		if m.apps == a.applies {
			a.inflight--
			a.flush()
		}
	case *messages.ReadBarrier:
		a.readBarrier(replyTo{pid: ctx.Sender()})
	case *localReadBarrier:
		a.readBarrier(replyTo{ch: m.reply})
	case *verifyDone:
		a.verifying = false
		reply := &messages.ReadBarrierReply{}
		if m.err != nil {
			reply.Error, reply.LeaderAddr, reply.LeaderId = a.leaderError(m.err)
		}
		for _, to := range m.waiting {
			to.send(a.system.Root, reply)
		}
		if len(a.reads) > 0 {
			a.verify()
		}
	case handOverNow:
		startHandOver(a.system.Root, ctx.Sender(), a.r, a.rt.logger(), fmt.Sprintf("shard %d", a.shard))
	case bootstrapGroup:
		bootstrapLater(a.rt, a.r, a.trans, fmt.Sprintf("shard %d", a.shard))
	case trustStores:
		answerTrust(a.system.Root, ctx.Sender(), a.r)
	case shardDamaged:
		a.rebuild()
	case *messages.ShardStatus:
		a.status(ctx.Sender(), m.WithSizes)
	case *messages.ReplicaAcks:
		a.replicaAcks(ctx.Sender(), m)
	case *messages.ShardChecksum:
		fsm, to, shard := a.fsm, ctx.Sender(), uint32(a.shard)
		go func() {
			reply := &messages.ShardChecksumReply{Shard: shard}
			applied, sum, keys, err := fsm.Checksum()
			if err != nil {
				reply.Error = err.Error()
			}
			reply.AppliedIndex, reply.Crc32C, reply.Keys = applied, sum, uint64(keys)
			a.system.Root.Send(to, reply)
		}()
	case *messages.CompactLog:
		a.compactLog(ctx.Sender(), m)
	case compacted:
		a.compacting = false
	case *messages.ChangeMembership:
		changeMembership(a.system.Root, ctx.Sender(), a.r, m)
	case *messages.TransferLeadership:
		transferLeadership(a.system.Root, ctx.Sender(), a.r, m)
	default:
		a.expiryReceive(ctx, m)
	}
}

func (a *raftActor) start() error {
	rt := a.rt
	fsm, snaps, err := rt.Shard(a.shard)
	if err != nil {
		return err
	}
	mux, err := rt.Mux()
	if err != nil {
		return err
	}
	a.fsm, a.snaps = fsm, snaps
	if a.logs, err = rt.RaftLog(uint32(a.shard), rt.Layout().LegacyRaftDir(a.shard)); err != nil {
		return err
	}
	logger := raftLogger(rt.Log, raftName(a.shard), &rt.raftRepeats)
	if err := a.rebuildIfDamaged(logger); err != nil {
		return err
	}
	trans, watch := groupTransport(rt, fmt.Sprintf("shard %d", a.shard), mux.Layer(transport.ShardStream(a.shard)), 3, logger)
	a.trans = trans
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(rt.Name)
	conf.Logger = logger
	conf.BatchApplyCh = true
	conf.MaxAppendEntries = 256
	// A node whose data dir was lost and that comes back under its name is
	// still a voter to the others: it votes only once it has caught up
	// (the Raft fork's LostStoreGuard; README, "A lost data dir").
	conf.LostStoreGuard = true
	// A group whose only voter is this node (a standalone node's) elects
	// it at once, not after a heartbeat timeout (the fork's
	// SoleVoterStandsAtOnce): the node serves about 0.1 s after its start.
	conf.SoleVoterStandsAtOnce = true
	// Once a node that led several shards is gone, their followers take
	// turns to stand in an order of their own per shard (the fork's
	// GroupSeed), spreading the new leaders over the other nodes.
	conf.GroupSeed = uint64(a.shard)
	// The Pebble store is at its applied index and Raft need not restore
	// a snapshot into it, unless a restore was cut short (storeBehind).
	behind, err := storeBehind(fsm, snaps)
	if err != nil {
		return err
	}
	if behind != nil {
		applied, _ := fsm.Applied()
		rt.logger().Warn("shard store behind its newest snapshot (a restore cut short): restoring the snapshot",
			"shard", a.shard, "applied_index", applied, "snapshot", behind.ID, "snapshot_index", behind.Index)
	}
	conf.NoSnapshotRestoreOnStart = behind == nil
	setRaftTimers(conf)
	conf.SnapshotThreshold = 16384
	if rt.Snapshots.Threshold > 0 {
		conf.SnapshotThreshold = rt.Snapshots.Threshold
	}
	if rt.Snapshots.Interval > 0 {
		conf.SnapshotInterval = rt.Snapshots.Interval
	}
	if rt.Snapshots.TrailingLogs > 0 {
		conf.TrailingLogs = rt.Snapshots.TrailingLogs
	}
	if err := raft.ValidateConfig(conf); err != nil {
		return err
	}
	existing, err := raft.HasExistingState(a.logs, a.logs, snaps)
	if err != nil {
		return err
	}
	if a.r, err = raft.NewRaft(conf, fsm, a.logs, a.logs, snaps, rt.raftTransport(transport.ShardStream(a.shard), a.trans)); err != nil {
		return fmt.Errorf("node: shard %d: raft: %w", a.shard, err)
	}
	watch.r.Store(a.r)
	if !existing && rt.bootstrap() {
		if err := bootstrapAlone(a.r, conf.LocalID, a.trans); err != nil {
			return fmt.Errorf("node: shard %d: bootstrap: %w", a.shard, err)
		}
	}
	a.applies = make(chan pendingApply, pendingApplies)
	a.waiterDone = make(chan struct{})
	go a.waiter(a.applies, a.waiterDone, a.r)
	a.watchLeadership()
	a.unwatch = alsoOnLogFailure(rt, a.r, fmt.Sprintf("shard %d", a.shard), a.unwatch)
	a.stopExpiry = a.startExpiry()
	return nil
}

// storeBehind returns the shard's newest snapshot if its store has not
// applied up to it. That happens only when a restore was cut short: Raft
// keeps a snapshot it receives before the state machine restores it, and
// a crash (or a failed restore) in between leaves the store at its old
// index. Raft's log may no longer hold the entries between the two (that
// is why the snapshot was sent), and a Raft started with
// NoSnapshotRestoreOnStart takes the snapshot's index as applied: without
// the restore the store would silently lack those entries for good.
func storeBehind(fsm *storage.Shard, snaps *storage.SnapshotStore) (*raft.SnapshotMeta, error) {
	metas, err := snaps.List()
	if err != nil {
		return nil, fmt.Errorf("node: listing the shard's snapshots: %w", err)
	}
	if applied, _ := fsm.Applied(); len(metas) > 0 && metas[0].Index > applied {
		return metas[0], nil
	}
	return nil, nil
}

// watchLeadership keeps what Runtime knows of this shard's leadership
// current (setLead): it is recomputed on every leader and peer change, and
// every second.
//
// A sole voter's reads skip the read barrier, which is right only once its
// state machine has applied every entry of its log: a leader new in its
// term may not have yet. After a kill -9 the shard's store lost the writes
// Pebble had not yet written out, its applied index fell back with them,
// and Raft applies them again only once the new term's first entry
// commits; a read in between, without the barrier, missed acknowledged
// writes. So a sole leader is marked sole only after its state machine has
// caught up with its log, once per term; until then its reads take the
// barrier, which waits for the same.
func (a *raftActor) watchLeadership() {
	keep := func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.PeerObservation:
			return true
		}
		return false
	}
	r, rt, shard, self, fsm, logs, start := a.r, a.rt, a.shard, raft.ServerID(a.rt.Name), a.fsm, a.logs, &a.termStart
	ctx, cancel := context.WithCancel(context.Background())
	var caughtUp uint64 // the last term in which the state machine caught up as sole leader
	unwatch := watchRaft(r, keep, time.Second, func() {
		others, selfVotes, outside := 0, false, false
		if f := r.GetConfiguration(); f.Error() == nil {
			others, selfVotes = countVoters(f.Configuration(), self)
			outside = notMember(f.Configuration(), self)
		}
		voters := voterCount(others, selfVotes)
		if r.State() != raft.Leader {
			addr, id := r.LeaderWithID()
			if id == self {
				addr, id = "", "" // a stale view of itself
			}
			rt.setLead(shard, shardLead{other: leaderRef{id: string(id), addr: string(addr)}, current: !r.VotesWithheld(), voters: voters, outside: outside})
			return
		}
		term := r.CurrentTerm()
		first := start.set(term, r.LastIndex())
		sole := selfVotes && others == 0
		if sole && caughtUp != term {
			// The same wait as readiness's: the log as it stood when
			// this term's lead was first seen (later writes are
			// answered only once applied).
			rt.setLead(shard, shardLead{voters: voters}) // reads take the barrier meanwhile
			if catchUp(ctx, fsm, logs, first) != nil || r.State() != raft.Leader || r.CurrentTerm() != term {
				return // tried again on the next change or tick
			}
			caughtUp = term
		}
		rt.setLead(shard, shardLead{sole: sole, leads: true, current: !r.VotesWithheld(), voters: voters})
	})
	a.unwatch = func() {
		cancel()
		unwatch()
		rt.setLead(shard, shardLead{})
	}
}

func (a *raftActor) stop() {
	if a.stopExpiry != nil {
		a.stopExpiry()
		a.stopExpiry = nil
	}
	a.expiring = false
	handOver(a.r, a.rt.logger(), fmt.Sprintf("shard %d", a.shard))
	// Commands not proposed yet: to the new leader, if there is one.
	stopping := &messages.ProposeReply{Error: ErrNotTaken}
	if e, addr, id := a.leaderError(raft.ErrNotLeader); id != "" && id != a.rt.Name {
		stopping = &messages.ProposeReply{Error: e, LeaderAddr: addr, LeaderId: id}
	}
	for _, to := range a.batchTo {
		to.send(a.system.Root, stopping)
	}
	a.batch, a.batchTo = nil, nil
	if a.unwatch != nil {
		a.unwatch()
		a.unwatch = nil
	}
	if a.applies != nil {
		close(a.applies)
		<-a.waiterDone
		a.applies, a.inflight = nil, 0
	}
	if err := closeGroup(a.rt, transport.ShardStream(a.shard), a.r, a.trans, a.logs); err != nil {
		a.rt.logger().Error("raft shutdown", "shard", a.shard, "err", err)
	}
	a.r, a.trans, a.logs = nil, nil, nil
}

// stallWarnAfter is how long a proposed entry may go unanswered before
// the shard's Raft actor logs what its group knows: the actor keeps one
// entry in flight (maxInflight), so every later write of the shard waits
// behind it, and clients see timeouts with nothing else to go on.
const stallWarnAfter = 3 * time.Second

// waiter answers proposals in commit order (futures complete in order);
// an entry unanswered for stallWarnAfter is logged (warnStall).
func (a *raftActor) waiter(apps chan pendingApply, done chan<- struct{}, r *raft.Raft) {
	defer close(done)
	after, fsm := a.rt.StallWarnAfter, a.fsm
	if after <= 0 {
		after = stallWarnAfter
	}
	for p := range apps {
		failed := &messages.ProposeReply{}
		var replies []*messages.Reply
		since := time.Now()
		stall := time.AfterFunc(after, func() { a.warnStall(r, fsm, since, len(p.to)) })
		err := p.f.Error()
		if !stall.Stop() {
			a.rt.logger().Info("shard's stalled entry answered", "shard", a.shard, "after", time.Since(since).Round(time.Millisecond), "err", err)
		}
		var index uint64
		if err != nil {
			// No p.f.Index() here: the fork's future answers
			// ErrRaftShutdown as the group shuts down, maybe while its
			// leader loop is still giving the entry its index.
			failed.Error, failed.LeaderAddr, failed.LeaderId = a.leaderError(err)
		} else {
			index = p.f.Index()
			switch r := p.f.Response().(type) {
			case []*messages.Reply:
				replies = r
			case error:
				failed.Error = r.Error()
				if errors.Is(r, storage.ErrStoreFailed) {
					// Committed, so applied on the group's other
					// replicas; not here (storage.Shard.ApplyBatch).
					// The failure is logged once, by the store watch
					// or the rebuild, not for every entry after it.
					failed.Error = ErrNotApplied
				}
			}
			if failed.Error == "" && len(replies) != len(p.to) {
				failed.Error = fmt.Sprintf("entry %d: %d replies for %d commands", index, len(replies), len(p.to))
			}
		}
		for i, to := range p.to {
			if failed.Error != "" {
				to.send(a.system.Root, failed)
			} else {
				to.send(a.system.Root, &messages.ProposeReply{Reply: replies[i], Index: index})
			}
		}
		a.system.Root.Send(a.self, applyDone{apps: apps})
	}
}

// warnStall logs an entry of commands proposed at since and still
// unanswered, with r's view of the group: whether it is committed (commit
// index at the last index) and waits for the state machine, or waits for
// followers, and which of them its leader has not heard from.
func (a *raftActor) warnStall(r *raft.Raft, fsm *storage.Shard, since time.Time, commands int) {
	applied, _ := fsm.Applied()
	var silent []string
	for id, d := range groupSilence(r) {
		if d >= time.Second {
			silent = append(silent, fmt.Sprintf("%s=%s", id, d.Round(100*time.Millisecond)))
		}
	}
	slices.Sort(silent)
	_, leader := r.LeaderWithID()
	a.rt.logger().Warn("a shard's proposed entry is not answered yet; its later writes wait behind it",
		"shard", a.shard, "waited", time.Since(since).Round(time.Millisecond), "commands", commands,
		"state", r.State().String(), "leader", string(leader), "term", r.CurrentTerm(),
		"last_index", r.LastIndex(), "commit_index", r.CommitIndex(), "applied_index", applied,
		"silent_followers", silent)
}

func (a *raftActor) propose(ctx actor.Context, cmd *messages.Command, to replyTo) {
	if a.r.State() != raft.Leader {
		e, addr, id := a.leaderError(raft.ErrNotLeader)
		to.send(a.system.Root, &messages.ProposeReply{Error: e, LeaderAddr: addr, LeaderId: id})
		return
	}
	if cmd == nil {
		to.send(a.system.Root, &messages.ProposeReply{Error: "propose: no command"})
		return
	}
	a.batch = append(a.batch, cmd)
	a.batchTo = append(a.batchTo, to)
	a.batchBytes += messages.CommandSize(cmd)
	if len(a.batch) >= maxBatchCommands || a.batchBytes >= maxBatchBytes {
		a.flush()
		return
	}
	if !a.flushQueued {
		a.flushQueued = true
		ctx.Send(ctx.Self(), proposeFlush{})
	}
}

// flush proposes the gathered commands as one log entry; the waiter
// answers each in order.
func (a *raftActor) flush() {
	if len(a.batch) == 0 {
		return
	}
	cmds, to, size := a.batch, a.batchTo, a.batchBytes
	a.batch, a.batchTo, a.batchBytes = nil, nil, 0
	data := messages.AppendCommandBatch(make([]byte, 0, messages.CommandBatchRoom(size, len(cmds))), cmds)
	a.inflight++
	a.applies <- pendingApply{f: a.r.Apply(data, applyTimeout), to: to}
}

// compactLog snapshots now with only m.Trailing entries kept behind the
// snapshot, then restores the configured trailing logs. One at a time.
func (a *raftActor) compactLog(to *actor.PID, m *messages.CompactLog) {
	root, r, logs, self := a.system.Root, a.r, a.logs, a.self
	if a.compacting {
		root.Send(to, &messages.CompactLogReply{Error: "a compaction is under way"})
		return
	}
	if r.State() != raft.Leader {
		e, _, _ := a.leaderError(raft.ErrNotLeader)
		root.Send(to, &messages.CompactLogReply{Error: e})
		return
	}
	a.compacting = true
	go func() {
		defer root.Send(self, compacted{})
		reply := &messages.CompactLogReply{}
		keep := r.ReloadableConfig()
		short := keep
		short.TrailingLogs = max(m.Trailing, 1)
		err := r.ReloadConfig(short)
		if err == nil {
			err = r.Snapshot().Error()
			if errors.Is(err, raft.ErrNothingNewToSnapshot) {
				err = nil
			}
			if rerr := r.ReloadConfig(keep); err == nil {
				err = rerr
			}
		}
		if err != nil {
			reply.Error = err.Error()
		}
		reply.FirstIndex, _ = logs.FirstIndex()
		root.Send(to, reply)
	}()
}

func (a *raftActor) readBarrier(to replyTo) {
	a.reads = append(a.reads, to)
	if !a.verifying {
		a.verify()
	}
}

// verify runs one read barrier for every read waiting: leadership is
// confirmed with a quorum, and the state machine catches up with the last
// index the leader had when the barrier began (its log holds every
// committed entry).
func (a *raftActor) verify() {
	waiting := a.reads
	a.reads = nil
	a.verifying = true
	readIndex := a.r.LastIndex()
	f := a.r.VerifyLeader()
	fsm, logs, self, root := a.fsm, a.logs, a.self, a.system.Root
	go func() {
		err := f.Error()
		if err == nil {
			// The leader's no-op at the start of its term never reaches
			// the state machine: catchUp waits for the last entry that does.
			err = catchUp(context.Background(), fsm, logs, readIndex)
		}
		root.Send(self, &verifyDone{waiting: waiting, err: err})
	}()
}

// catchUp waits (bounded by readTimeout) until fsm has applied the log up
// to index, or its last entry before that which reaches a state machine.
func catchUp(ctx context.Context, fsm *storage.Shard, logs raft.LogStore, index uint64) error {
	applied, _ := fsm.Applied()
	index = storage.LastVisible(logs, index, applied)
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	return fsm.WaitApplied(ctx, index)
}

func (a *raftActor) leaderError(err error) (text, addr, id string) {
	return leaderError(a.r, err)
}

func (a *raftActor) status(to *actor.PID, withSizes bool) {
	r, logs, fsm, snaps, shard, root, start := a.r, a.logs, a.fsm, a.snaps, a.shard, a.system.Root, &a.termStart
	go func() {
		applied, _ := fsm.Applied()
		reply := groupStatus(r, logs, uint32(shard), applied)
		if reply.State == raft.Leader.String() {
			// Until watchLeadership has seen this term, the whole log.
			var ok bool
			if reply.TermStartIndex, ok = start.in(reply.Term); !ok {
				reply.TermStartIndex = reply.LastIndex
			}
		}
		done, total := snaps.Receiving()
		reply.SnapshotBytesDone, reply.SnapshotBytesTotal = uint64(done), uint64(total)
		cs := fsm.CacheStats()
		reply.CacheHits, reply.CacheMisses, reply.CacheBytes = cs.Hits, cs.Misses, cs.Bytes
		reply.FilterSkips, reply.FilterReady, reply.FilterError = cs.FilterSkips, cs.FilterReady, cs.FilterError
		if withSizes {
			reply.DataBytes = fsm.DataBytes()
			reply.LogBytes = storage.LogBytes(logs, reply.FirstIndex, reply.LastIndex)
		}
		// Entries the state machine never sees (no-ops) count as applied
		// once every entry before them is.
		if reply.AppliedIndex < reply.CommitIndex && storage.LastVisible(logs, reply.CommitIndex, reply.AppliedIndex) == reply.AppliedIndex {
			reply.AppliedIndex = reply.CommitIndex
		}
		root.Send(to, reply)
	}()
}

func suffrage(s raft.ServerSuffrage) messages.Suffrage {
	switch s {
	case raft.Voter:
		return messages.Suffrage_VOTER
	case raft.Nonvoter:
		return messages.Suffrage_NONVOTER
	case raft.Staging:
		return messages.Suffrage_STAGING
	}
	return messages.Suffrage_SUFFRAGE_UNSPECIFIED
}
