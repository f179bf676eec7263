package actors

// sync-<op>-<shard>: supervised by syncs (simple_one_for_one), transient
// worker. It brings one shard to one node: it finds the shard's leader,
// decides between log replay and a snapshot copy (cluster.WALBridgeable),
// adds the node as a non-voter so the leader streams it what it lacks (a
// Pebble checkpoint, file by file, checksummed and fsynced into a staging
// dir and moved into place by the target's snapshot store, then the log
// from the checkpoint's index on), waits until the node has caught up and
// stayed caught up, and promotes it to voter when its role says so. Writes
// never pause: the leader keeps committing while it streams.
//
// A failed attempt crashes the actor; the supervisor restarts it alone,
// with backoff, and the manager stops it after --sync-retries attempts.
// Every step is safe to repeat, so a restart (or a new leader) resumes
// where the last attempt stood.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/cluster"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/supervisor"
	"github.com/coppice-kv/coppice/transport"
	"google.golang.org/protobuf/proto"
)

const (
	syncPoll    = 100 * time.Millisecond
	syncRequest = 10 * time.Second
	// stablePolls is how many polls in a row a node must be caught up
	// before it is promoted: caught up for 300 ms.
	stablePolls = 3
	// syncTimeout bounds one attempt: copying a large shard and catching
	// up with the writes made meanwhile.
	syncTimeout = 30 * time.Minute
)

type syncActor struct {
	rt     *Runtime
	job    *messages.SyncShard
	cancel context.CancelFunc
}

// syncEnded is the sync goroutine's outcome.
type syncEnded struct{ err error }

func newSyncActor(rt *Runtime) supervisor.StartFunc {
	return func(args ...any) (actor.Actor, error) {
		if len(args) != 1 {
			return nil, fmt.Errorf("sync: want one *messages.SyncShard argument, got %d", len(args))
		}
		job, ok := args[0].(*messages.SyncShard)
		if !ok || job.Node == nil {
			return nil, fmt.Errorf("sync: bad argument %T", args[0])
		}
		return &syncActor{rt: rt, job: job}, nil
	}
}

func (a *syncActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		// An attempt that has not brought the shard over within
		// syncTimeout fails, and the next one starts over.
		runCtx, cancel := context.WithTimeout(context.Background(), syncTimeout)
		a.cancel = cancel
		self, root := ctx.Self(), ctx.ActorSystem().Root
		manager := actor.NewPID(ctx.ActorSystem().Address(), ManagerPath)
		s := &shardSync{rt: a.rt, job: a.job, report: func(p *messages.ShardSync) {
			root.Send(manager, &messages.SyncProgress{Op: a.job.Op, Sync: proto.Clone(p).(*messages.ShardSync)})
		}}
		go func() { root.Send(self, &syncEnded{err: s.run(runCtx)}) }()
	case *syncEnded:
		supervisor.Exit(m.err) // nil: done, the transient child stays down
	case *actor.Stopping:
		if a.cancel != nil {
			a.cancel()
		}
	}
}

// shardSync is one attempt's I/O.
type shardSync struct {
	rt     *Runtime
	job    *messages.SyncShard
	report func(*messages.ShardSync)
	st     messages.ShardSync
}

func (s *shardSync) fail(err error) error {
	s.st.State, s.st.Error = messages.SyncState_SYNC_FAILED, err.Error()
	s.st.FinishedMs = time.Now().UnixMilli()
	s.report(&s.st)
	return err
}

func (s *shardSync) run(ctx context.Context) error {
	node := s.job.Node
	s.st = messages.ShardSync{Shard: s.job.Shard, Node: node.Name, State: messages.SyncState_SYNC_NOT_STARTED,
		StartedMs: time.Now().UnixMilli()}
	s.report(&s.st)
	leader, err := s.leader(ctx)
	if err != nil {
		return s.fail(err)
	}
	target, err := s.status(ctx, memberPeer(node))
	if err != nil {
		return s.fail(fmt.Errorf("target %s: %w", node.Name, err))
	}
	if !cluster.NeedsResync(target.AppliedIndex, leader.FirstIndex, leader.LastIndex) &&
		cluster.CopyCheaper(target.AppliedIndex, leader.FirstIndex, leader.LastIndex, leader.LogBytes, leader.DataBytes) {
		// The log bridges the gap, but replaying it would move more than
		// the checkpoint: have the leader compact its log so Raft sends
		// the checkpoint instead.
		if err := s.compact(ctx, leader); err != nil {
			return s.fail(err)
		}
		if leader, err = s.leader(ctx); err != nil {
			return s.fail(err)
		}
	}
	if cluster.NeedsResync(target.AppliedIndex, leader.FirstIndex, leader.LastIndex) {
		s.st.Method, s.st.State = "snapshot", messages.SyncState_SYNC_COPYING
	} else {
		s.st.Method, s.st.State = "replay", messages.SyncState_SYNC_CATCHING_UP
	}
	s.st.TargetApplied, s.st.LeaderCommit = target.AppliedIndex, leader.CommitIndex
	s.report(&s.st)
	if err := s.change(ctx, leader, messages.ChangeMembership_ADD_NONVOTER); err != nil {
		return s.fail(err)
	}
	stable := 0
	for stable < stablePolls {
		select {
		case <-ctx.Done():
			return s.fail(ctx.Err())
		case <-time.After(syncPoll):
		}
		if leader, err = s.leader(ctx); err != nil {
			return s.fail(err)
		}
		if target, err = s.status(ctx, memberPeer(node)); err != nil {
			return s.fail(fmt.Errorf("target %s: %w", node.Name, err))
		}
		switch {
		case target.SnapshotBytesTotal > 0:
			// The leader is streaming it a checkpoint.
			s.st.State, s.st.Method = messages.SyncState_SYNC_COPYING, "snapshot"
			s.st.BytesDone, s.st.BytesTotal = target.SnapshotBytesDone, target.SnapshotBytesTotal
			stable = 0
		case target.AppliedIndex >= s.st.LeaderCommit && target.AppliedIndex > 0:
			// Caught up: the target has applied what the leader had
			// committed at the previous poll.
			stable++
			s.st.State = messages.SyncState_SYNC_CATCHING_UP
			if s.st.BytesTotal > 0 {
				s.st.BytesDone = s.st.BytesTotal
			}
		default:
			stable = 0
		}
		s.st.TargetApplied, s.st.LeaderCommit = target.AppliedIndex, leader.CommitIndex
		s.report(&s.st)
	}
	if node.Role == messages.Role_ROLE_VOTER {
		if err := s.change(ctx, leader, messages.ChangeMembership_ADD_VOTER); err != nil {
			return s.fail(err)
		}
	}
	s.st.State, s.st.Error = messages.SyncState_SYNC_SYNCED, ""
	s.st.FinishedMs = time.Now().UnixMilli()
	s.report(&s.st)
	return nil
}

// leaderWait bounds how long a sync step waits out an election.
const leaderWait = 20 * time.Second

// leader finds the shard's leader and returns its status, waiting out an
// election (bounded by leaderWait): a shard without a leader for a moment
// is not a failed attempt.
func (s *shardSync) leader(ctx context.Context) (*messages.ShardStatusReply, error) {
	deadline := time.Now().Add(leaderWait)
	for {
		st, err := s.leaderOnce(ctx)
		if err == nil || time.Now().After(deadline) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(syncPoll):
		}
	}
}

// leaderOnce asks this node's view of the shard who leads it, and the
// leader for its status.
func (s *shardSync) leaderOnce(ctx context.Context) (*messages.ShardStatusReply, error) {
	local, err := s.statusSized(ctx, transport.Peer{}, true)
	if err != nil {
		return nil, err
	}
	if local.LeaderAddr == "" {
		return nil, fmt.Errorf("shard %d has no leader", s.job.Shard)
	}
	if local.LeaderId == s.rt.Name {
		return local, nil
	}
	st, err := s.statusSized(ctx, leaderPeer(local), true)
	if err != nil {
		return nil, fmt.Errorf("leader %s: %w", local.LeaderId, err)
	}
	if st.State != "Leader" {
		return nil, fmt.Errorf("shard %d: %s no longer leads", s.job.Shard, local.LeaderId)
	}
	return st, nil
}

// status asks the shard's Raft actor on node at (transport.Peer{} for
// this node) for its status.
func (s *shardSync) status(ctx context.Context, at transport.Peer) (*messages.ShardStatusReply, error) {
	return s.statusSized(ctx, at, false)
}

func (s *shardSync) statusSized(ctx context.Context, at transport.Peer, sizes bool) (*messages.ShardStatusReply, error) {
	return s.rt.shardStatusAt(ctx, at, int(s.job.Shard), sizes)
}

// compactTrailing is how many entries a compaction for a copy keeps.
const compactTrailing = 64

func (s *shardSync) compact(ctx context.Context, leader *messages.ShardStatusReply) error {
	res, err := s.rt.ask(ctx, leaderPeer(leader), RaftPath(int(s.job.Shard)), &messages.CompactLog{Trailing: compactTrailing})
	if err != nil {
		return fmt.Errorf("shard %d: compacting the leader's log: %w", s.job.Shard, err)
	}
	if r, ok := res.(*messages.CompactLogReply); !ok || r.Error != "" {
		return fmt.Errorf("shard %d: compacting the leader's log: %v", s.job.Shard, res)
	}
	return nil
}

// change makes op, for the job's node, on the shard's leader, conditional
// on the configuration in the leader's status (PrevIndex): if the
// configuration changed since, the change fails instead of landing on a
// configuration it was not decided on. A removal fences a shard this way
// (removeFromShard): a sync's change still on its way when the sync was
// stopped cannot add the node back behind it.
//
// An addition already in effect in the status is done at once. A sync
// that is still running (its context not done) decides again when another
// change came first (another node joining the same shard), up to
// changeTries times, rather than fail an attempt that may have copied the
// whole shard. A stopped sync's context is done before any removal of its
// node runs, so it never decides again after a fence.
func (s *shardSync) change(ctx context.Context, leader *messages.ShardStatusReply, op messages.ChangeMembership_Op) error {
	for try := 1; ; try++ {
		if added(leader, s.job.Node.Name, op) {
			return nil
		}
		err := s.changeOnce(ctx, leader, op)
		if err == nil || try == changeTries || ctx.Err() != nil ||
			op == messages.ChangeMembership_REMOVE || op == messages.ChangeMembership_DEMOTE || !strings.Contains(err.Error(), configChanged) {
			return err
		}
		s.rt.logger().Info("shard sync: another membership change came first; deciding again",
			"shard", s.job.Shard, "node", s.job.Node.Name, "op", op, "err", err)
		if leader, err = s.leader(ctx); err != nil {
			return err
		}
	}
}

// added reports whether op, an addition, is in effect for node in st's
// configuration already: any suffrage for ADD_NONVOTER, a voter for
// ADD_VOTER. Any other op is not.
func added(st *messages.ShardStatusReply, node string, op messages.ChangeMembership_Op) bool {
	switch op {
	case messages.ChangeMembership_ADD_NONVOTER:
		return member(st, node) != messages.Suffrage_SUFFRAGE_UNSPECIFIED
	case messages.ChangeMembership_ADD_VOTER:
		return member(st, node) == messages.Suffrage_VOTER
	}
	return false
}

// changeTries bounds how often change decides again.
const changeTries = 3

// configChanged is in hashicorp/raft's refusal of a change whose
// configuration is no longer the latest.
const configChanged = "configuration changed since"

// changeOnce sends one conditional change (change).
func (s *shardSync) changeOnce(ctx context.Context, leader *messages.ShardStatusReply, op messages.ChangeMembership_Op) error {
	node := s.job.Node
	res, err := s.rt.ask(ctx, leaderPeer(leader), RaftPath(int(s.job.Shard)),
		&messages.ChangeMembership{Op: op, Id: node.Name, Address: node.ClusterAddr, PrevIndex: leader.ConfigurationIndex})
	if err != nil {
		return err
	}
	r, ok := res.(*messages.ChangeMembershipReply)
	if !ok {
		return fmt.Errorf("membership change: got %T", res)
	}
	if r.Error != "" {
		return fmt.Errorf("shard %d: %v %s: %s", s.job.Shard, op, node.Name, r.Error)
	}
	return nil
}

// member returns node's suffrage in the status's configuration
// (unspecified when it is not there).
func member(st *messages.ShardStatusReply, node string) messages.Suffrage {
	for _, s := range st.Configuration {
		if s.Id == node {
			return s.Suffrage
		}
	}
	return messages.Suffrage_SUFFRAGE_UNSPECIFIED
}
