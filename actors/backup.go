package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/storage"
	"github.com/coppice-kv/coppice/transport"
)

// backupCatchUp bounds how long a backup waits for this node to apply
// what a shard's leader had applied at its read barrier.
const backupCatchUp = 30 * time.Second

// backupPoll is how often it looks.
const backupPoll = 20 * time.Millisecond

// Backup is this node's shards, checkpointed for a backup (storage's
// backup format): every write acknowledged to a client before Backup was
// called is in it, whichever node took it. Close removes the checkpoints.
type Backup struct {
	rt    *Runtime
	ckpts []*storage.ShardCheckpoint
}

// Backup checkpoints every shard of this node, each once it has applied
// what the shard's leader had applied after a read barrier (a verified
// leadership, and its log applied). A shard with no leader, or a replica
// here that does not catch up within backupCatchUp, fails the backup.
func (rt *Runtime) Backup(ctx context.Context) (*Backup, error) {
	b := &Backup{rt: rt}
	for i := range rt.Shards {
		err := rt.backupBarrier(ctx, i)
		var c *storage.ShardCheckpoint
		if err == nil {
			var sh *storage.Shard
			if sh, _, err = rt.Shard(i); err == nil {
				c, err = sh.BackupCheckpoint()
			}
		}
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("backup: shard %d: %w", i, err)
		}
		b.ckpts = append(b.ckpts, c)
	}
	return b, nil
}

// Write writes the backup to w, paced as the node's snapshot streams are
// (--snapshot-yield, --snapshot-rate-mib): it yields to writes as a
// joining node's copy does.
func (b *Backup) Write(w io.Writer) (storage.BackupInfo, error) {
	var throttle *storage.Throttle
	if st := b.rt.stores.Load(); st != nil {
		throttle = st.throttle
	}
	return storage.WriteBackup(w, b.rt.ClusterID(), b.rt.Name, b.ckpts, throttle)
}

// Close removes the checkpoints.
func (b *Backup) Close() error {
	var errs []error
	for _, c := range b.ckpts {
		errs = append(errs, c.Remove())
	}
	b.ckpts = nil
	return errors.Join(errs...)
}

// backupBarrier returns once this node's replica of shard has applied
// every write the shard's leader acknowledged before the call.
func (rt *Runtime) backupBarrier(ctx context.Context, shard int) error {
	local, err := rt.awaitLocal(ctx, shard, leaderWait, func(st *messages.ShardStatusReply) bool { return st.LeaderAddr != "" })
	if err != nil {
		return err
	}
	if local.LeaderAddr == "" {
		return fmt.Errorf("no leader in %s: a backup needs every shard to have one", leaderWait)
	}
	leader := transport.Peer{}
	if local.LeaderId != rt.Name {
		leader = leaderPeer(local)
	}
	res, err := rt.ask(ctx, leader, RaftPath(shard), &messages.ReadBarrier{})
	if err != nil {
		return fmt.Errorf("read barrier at the leader %s: %w", local.LeaderId, err)
	}
	if r, ok := res.(*messages.ReadBarrierReply); !ok {
		return fmt.Errorf("read barrier at the leader %s: answered %T", local.LeaderId, res)
	} else if r.Error != "" {
		return fmt.Errorf("read barrier at the leader %s: %s", local.LeaderId, r.Error)
	}
	if leader == (transport.Peer{}) {
		return nil // the barrier waited for this node's store
	}
	st, err := rt.shardStatusAt(ctx, leader, shard, false)
	if err != nil {
		return fmt.Errorf("the leader %s: %w", local.LeaderId, err)
	}
	caughtUp := func(l *messages.ShardStatusReply) bool { return l.AppliedIndex >= st.AppliedIndex }
	if local, err = rt.awaitLocal(ctx, shard, backupCatchUp, caughtUp); err != nil {
		return err
	}
	if !caughtUp(local) {
		return fmt.Errorf("this node applied %d of the %d the leader %s had in %s: take the backup on a caught-up member",
			local.AppliedIndex, st.AppliedIndex, local.LeaderId, backupCatchUp)
	}
	return nil
}

// awaitLocal asks this node's Raft actor of shard for its status every
// backupPoll until done holds, for at most d, and returns the last.
func (rt *Runtime) awaitLocal(ctx context.Context, shard int, d time.Duration, done func(*messages.ShardStatusReply) bool) (*messages.ShardStatusReply, error) {
	deadline := time.Now().Add(d)
	for {
		st, err := rt.shardStatusAt(ctx, transport.Peer{}, shard, false)
		if err != nil || done(st) || time.Now().After(deadline) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backupPoll):
		}
	}
}

// shardStatusAt asks shard's Raft actor on node at (transport.Peer{}:
// this node) for its status, with the sizes of its data and log if sizes.
func (rt *Runtime) shardStatusAt(ctx context.Context, at transport.Peer, shard int, sizes bool) (*messages.ShardStatusReply, error) {
	res, err := rt.ask(ctx, at, RaftPath(shard), &messages.ShardStatus{WithSizes: sizes})
	if err != nil {
		return nil, err
	}
	st, ok := res.(*messages.ShardStatusReply)
	if !ok {
		return nil, fmt.Errorf("shard status: got %T", res)
	}
	if st.Error != "" {
		return nil, fmt.Errorf("shard %d: %s", shard, st.Error)
	}
	return st, nil
}
