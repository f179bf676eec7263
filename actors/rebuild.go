package actors

// The rebuild of a shard whose store found on-disk corruption: the shard's
// Raft actor gets the data back from its group instead of stopping the
// node.

import (
	"errors"
	"fmt"
	"time"

	"github.com/coppice-kv/coppice/storage"
	"github.com/coppice-kv/coppice/supervisor"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// shardDamaged tells a shard's Raft actor that its store found on-disk
// corruption (its Failure, storage.ErrCorrupt): the store watch sends it.
type shardDamaged struct{}

// rebuildAgainAfter is how long after a rebuild a shard's store may be
// found damaged again and rebuilt again: sooner, the disk is taken to
// damage what is written to it, and the node stops.
const rebuildAgainAfter = 10 * time.Minute

// rebuildRefusal says why a group of configuration c cannot give self's
// replica its data back, or "" when it can: a member whose store is
// renewed withholds its vote until a leader has caught it up (the Raft
// fork's LostStoreGuard), so the group's other voters must be able to
// elect a leader without it. A replica that knows no configuration (its
// log and snapshots dropped by a rebuild a crash cut short, or a member
// not yet added) holds nothing its group needs: it is emptied.
func rebuildRefusal(c raft.Configuration, self raft.ServerID) string {
	if len(c.Servers) == 0 {
		return ""
	}
	others, selfVotes := countVoters(c, self)
	voters := voterCount(others, selfVotes)
	switch {
	case others == 0:
		return "no other voter of its group holds the data"
	case others < voters/2+1:
		return fmt.Sprintf("its group's %d other voter(s) of %d cannot elect a leader without this node's vote", others, voters)
	}
	return ""
}

// rebuild acts on a damaged store found while the group runs
// (shardDamaged): it stops the group, handing its leadership over first,
// and starts it again, and the start rebuilds the store
// (rebuildIfDamaged) or stops the node.
func (a *raftActor) rebuild() {
	if a.fsm == nil || !errors.Is(a.fsm.Failure(), storage.ErrCorrupt) {
		return // renewed already: a second report of the same damage
	}
	a.stop()
	if err := a.start(); err != nil {
		a.failStart(err)
	}
}

// failStart ends the actor after its group failed to start.
func (a *raftActor) failStart(err error) {
	a.stop()
	failGroupStart(a.rt, err)
}

// rebuildIfDamaged rebuilds the shard's store if it is damaged (its
// Failure is storage.ErrCorrupt, met by a read or as it opened), before
// the group starts: when the group's other voters can send the data back
// (rebuildRefusal, from the configuration in the group's log and
// snapshots) and the store was not rebuilt in the last
// rebuildAgainAfter, it empties the replica (renew), and the group starts
// on the empty one: its leader sends the data as to a new member (a
// snapshot, or the log), and the replica votes once it has caught up.
// Otherwise the node stops, as on any other store failure, and the start
// fails with a shutdown reason (supervisor.Shutdown). The group's log is not touched by the damage: it is in the
// node's Raft log store, apart from the shards' stores.
func (a *raftActor) rebuildIfDamaged(logger hclog.Logger) error {
	cause := a.fsm.Failure()
	if !errors.Is(cause, storage.ErrCorrupt) {
		return nil
	}
	rt, self := a.rt, raft.ServerID(a.rt.Name)
	conf := raft.DefaultConfig()
	conf.LocalID, conf.Logger, conf.NoSnapshotRestoreOnStart = self, logger, true
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	c, err := raft.GetConfiguration(conf, a.fsm, a.logs, a.logs, a.snaps, trans)
	refusal := ""
	switch {
	case err != nil:
		refusal = fmt.Sprintf("its group's configuration cannot be read: %v", err)
	case !a.rebuilt.IsZero() && time.Since(a.rebuilt) < rebuildAgainAfter:
		refusal = fmt.Sprintf("it was rebuilt %s ago and is damaged again: check the disk", time.Since(a.rebuilt).Round(time.Second))
	default:
		refusal = rebuildRefusal(c, self)
	}
	if refusal != "" {
		err := fmt.Errorf("%w; shard %d cannot be rebuilt from its group: %s", cause, a.shard, refusal)
		rt.storeFailed(err)
		return supervisor.Shutdown(err)
	}
	rt.logger().Warn("shard store damaged: emptying it for its group's other members to send the data back; the node serves the shard through them meanwhile",
		"shard", a.shard, "err", cause)
	if err := a.renew(); err != nil {
		err = fmt.Errorf("%w; rebuilding shard %d: %w", cause, a.shard, err)
		rt.storeFailed(err)
		return supervisor.Shutdown(err)
	}
	a.rebuilt = time.Now()
	rt.rebuilds.Add(1)
	return nil
}

// renew empties the shard's replica, its group not running: the group's
// stable values are marked first, so that the replica votes only once a
// leader has caught it up (it keeps its term and vote, which
// raft.HasExistingState finds), then its log, its snapshots (hard links
// to the damaged tables, maybe) and its store go. A crash half-way
// leaves the mark, and a damaged store that is met and rebuilt again.
func (a *raftActor) renew() error {
	if err := raft.MarkUnverified(a.logs); err != nil {
		return err
	}
	if err := a.logs.DropAll(); err != nil {
		return fmt.Errorf("dropping the Raft log: %w", err)
	}
	if err := a.snaps.DropAll(); err != nil {
		return err
	}
	return a.fsm.Renew()
}
