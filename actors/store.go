package actors

// store: supervised by node (rest_for_one), permanent worker. It checks the
// data dir's identity, then opens the Raft log store and every shard's
// Pebble store and snapshot store for the Raft actors and the client; it
// closes them when it stops.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/storage"
	"github.com/coppice-kv/coppice/supervisor"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// snapshotsRetained is how many Raft snapshots each shard keeps,
// systemSnapshotsRetained the system group.
const (
	snapshotsRetained       = 2
	systemSnapshotsRetained = 2
)

type storeActor struct {
	rt     *Runtime
	logs   *storage.RaftLogs
	shards []*storage.Shard
	// shared is what the shards' stores share (compactions, block
	// cache, memtable budget).
	shared *storage.Stores
	// throttle paces the shards' snapshot streams (nil: no limit).
	throttle *storage.Throttle
	// unwatch stops watchFaults.
	unwatch chan struct{}
}

func (s *storeActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		if err := s.open(); err != nil {
			s.close()
			if errors.Is(err, supervisor.ErrShutdown) {
				// A refused rebuild: the node does not start, and says
				// why once (its start's error), with no crash to log.
				supervisor.Exit(err)
			}
			panic(err)
		}
		s.unwatch = make(chan struct{})
		s.watchFaults(ctx.ActorSystem().Root, ctx.Self().Address, s.unwatch)
		s.scrub(s.unwatch)
	case *actor.Stopping:
		s.close()
	}
}

func (s *storeActor) open() error {
	rt := s.rt
	l := rt.Layout()
	state, id, err := l.Check(rt.Name, rt.Shards)
	if err != nil {
		return err
	}
	clone := false
	// The cluster this data belongs to, if any: gossip announces it from
	// the start, so a node with another cluster's data is refused.
	rt.setClusterID(id.ClusterID, id.ClusterID != "")
	rt.founder.Store(state == storage.DirSame && id.Founder)
	rt.raftLogRebuilt.Store(state == storage.DirSame && !id.RaftLogRebuilt.IsZero())
	switch state {
	case storage.DirNew:
		ident := storage.Identity{Name: rt.Name, Shards: rt.Shards, DataDirID: storage.NewDataDirID()}
		if len(rt.Join) == 0 {
			// A new node that joins no one founds a cluster: its ID is
			// made now, before the node listens, so the cluster
			// transport refuses other clusters' nodes from the first
			// connection (a founder that took their Raft traffic before
			// its system group ran could have its groups taken over).
			ident.ClusterID = storage.NewClusterID()
		}
		if err := l.WriteIdentity(ident); err != nil {
			return fmt.Errorf("node: write %s: %w", l.IdentityFile(), err)
		}
		rt.setClusterID(ident.ClusterID, ident.ClusterID != "")
		id = ident
	case storage.DirSame:
		if id.DataDirID == "" { // a data dir from before the ID
			id.DataDirID = storage.NewDataDirID()
			if err := l.WriteIdentity(id); err != nil {
				return fmt.Errorf("node: write %s: %w", l.IdentityFile(), err)
			}
		}
	case storage.DirClone:
		// A copy of another node's data dir: keep the data, drop the
		// other node's Raft state, and join as this node.
		if len(rt.Join) == 0 {
			return fmt.Errorf("%w: %s was written by node %q, this node is %q: start a disk clone with --join to join its cluster", storage.ErrOtherNode, l.Dir, id.Name, rt.Name)
		}
		if err := l.ForgetRaftState(rt.Shards); err != nil {
			return err
		}
		clone = true
		rt.logger().Info("disk clone: kept the data, dropped the Raft state", "of", id.Name, "dir", l.Dir)
	}
	// The shards' snapshot stores first: a damaged Raft log store's
	// rebuild reads their newest configurations (openRaftLogs).
	snaps := make([]*storage.SnapshotStore, rt.Shards)
	for i := range snaps {
		if snaps[i], err = storage.NewSnapshotStore(l.SnapshotDir(i), snapshotsRetained); err != nil {
			return err
		}
	}
	if s.logs, err = s.openRaftLogs(l, &id, snaps); err != nil {
		return err
	}
	s.logs.SplitLogCache(rt.LogCache, rt.Shards+1) // and the system group
	// One throttle for the node's snapshot streams.
	if rt.SnapshotYield {
		logs := s.logs
		s.throttle = storage.NewYieldingThrottle(func() (uint64, float64) {
			st := logs.Stats()
			return st.Syncs, st.SyncSeconds
		}, rt.SnapshotRate)
	} else {
		s.throttle = storage.NewThrottle(rt.SnapshotRate)
	}
	// One compaction scheduler, block cache and memtable budget for the
	// node's shards (storage.Stores).
	s.shared = storage.NewStores(storage.StoresConfig{Shards: rt.Shards, Compactions: rt.Compactions,
		MemTables: rt.MemTables, BlockCache: rt.BlockCache})
	for i, st := range snaps {
		st.SetThrottle(s.throttle)
		sh, err := storage.OpenShard(l, i, rt.Exec, st, rt.shardCache(), s.shared)
		if err != nil {
			return err
		}
		if err := sh.Failure(); err != nil {
			// Its Raft actor rebuilds it, or stops the node (rebuild).
			rt.logger().Warn("shard store damaged", "shard", i, "err", err)
		}
		sh.SetNotifier(keyspaceNotifier{rt: rt})
		s.shards = append(s.shards, sh)
		if clone {
			if err := sh.MarkApplied(); err != nil {
				return fmt.Errorf("node: disk clone: shard %d: %w", i, err)
			}
		}
	}
	if clone {
		// Written last: a crash before this point finds a clone again.
		id = storage.Identity{Name: rt.Name, Shards: rt.Shards, ClusterID: id.ClusterID, DataDirID: storage.NewDataDirID()}
		if err := l.WriteIdentity(id); err != nil {
			return fmt.Errorf("node: write %s: %w", l.IdentityFile(), err)
		}
	}
	rt.setDataDirID(id.DataDirID)
	rt.setStores(&openStores{logs: s.logs, shards: s.shards, snaps: snaps, throttle: s.throttle, shared: s.shared, fail: s.failOnce()})
	idx := make([]uint64, len(s.shards))
	for i, sh := range s.shards {
		idx[i], _ = sh.Applied()
	}
	rt.logger().Info("storage open", "dir", l.Dir, "shards", rt.Shards, "applied", idx)
	return nil
}

// raftLogRebuildAgainAfter: a Raft log store damaged again this soon
// after its rebuild is not rebuilt (a disk that damages what it is given).
const raftLogRebuildAgainAfter = 10 * time.Minute

// openRaftLogs opens the node's Raft log store, or rebuilds it when it is
// damaged: met as it opens (its journal's replay, Pebble's open), or
// before, by a read that stopped the node (Identity.RaftLogDamaged,
// recorded by failOnce). The shards' data is sound: only every group's
// log, term and vote are lost. So, when another node can catch the groups
// up (alone), the store is dropped and made again empty
// (storage.DropRaftLogs), every group marked to withhold its vote until a
// leader has caught it up (raft.MarkUnverified: it has forgotten the
// entries it acknowledged and the votes it cast, as a member on a lost
// data dir), and the node never founds a cluster again. Each group starts
// from its newest snapshot, or from nothing; its leader sends the entries
// after it, which the shard's store skips up to its applied index, or a
// snapshot when its log no longer reaches back. A standalone node has no
// one to catch up from: its start fails, with what to do (a shutdown
// reason, supervisor.Shutdown: the node stops for it, nothing crashed).
func (s *storeActor) openRaftLogs(l storage.Layout, id *storage.Identity, snaps []*storage.SnapshotStore) (*storage.RaftLogs, error) {
	rt := s.rt
	logs, err := storage.OpenRaftLogs(l.RaftLogDir())
	switch {
	case err == nil && id.RaftLogDamaged == "":
		return logs, nil
	case err == nil:
		// A clean close flushed it, but the damaged block is still there.
		// It is dropped below, or the start fails: its close's error
		// changes neither.
		_ = logs.Close()
		err = errors.New(id.RaftLogDamaged)
	case !errors.Is(err, storage.ErrCorrupt):
		return nil, err
	}
	if !id.RaftLogRebuilt.IsZero() && time.Since(id.RaftLogRebuilt) < raftLogRebuildAgainAfter {
		return nil, supervisor.Shutdown(fmt.Errorf("%w; the Raft log store cannot be rebuilt: it was rebuilt %s ago and is damaged again: check the disk",
			err, time.Since(id.RaftLogRebuilt).Round(time.Second)))
	}
	if alone, serr := s.alone(l, snaps); serr != nil || alone != "" {
		return nil, supervisor.Shutdown(errors.Join(fmt.Errorf("%w; the Raft log store cannot be rebuilt: %s", err, alone), serr))
	}
	rt.logger().Warn("Raft log store damaged: rebuilding it empty, keeping the shards' data; each group catches up from its leader and votes once it has",
		"err", err)
	// Written first: a node that founded its cluster must not found
	// another on its empty groups (Runtime.bootstrap).
	id.Founder, id.RaftLogDamaged = false, err.Error()
	rt.founder.Store(false)
	rt.raftLogRebuilt.Store(true)
	if err := l.WriteIdentity(*id); err != nil {
		return nil, fmt.Errorf("node: write %s: %w", l.IdentityFile(), err)
	}
	if err := l.DropRaftLogs(rt.Shards); err != nil {
		return nil, err
	}
	if logs, err = storage.OpenRaftLogs(l.RaftLogDir()); err != nil {
		return nil, err
	}
	groups := []uint32{storage.SystemGroup}
	for i := range rt.Shards {
		groups = append(groups, uint32(i))
	}
	for _, g := range groups {
		st, err := logs.Group(g, "")
		if err == nil {
			err = errors.Join(raft.MarkUnverified(st), st.Close())
		}
		if err != nil {
			_ = logs.Close()
			return nil, fmt.Errorf("node: rebuilding the Raft log store: group %d: %w", g, err)
		}
	}
	// Written last: a crash before this point rebuilds it again.
	id.RaftLogDamaged, id.RaftLogRebuilt = "", time.Now().UTC()
	if err := l.WriteIdentity(*id); err != nil {
		_ = logs.Close()
		return nil, fmt.Errorf("node: write %s: %w", l.IdentityFile(), err)
	}
	return logs, nil
}

// alone says why no other node could catch up this node's groups, were
// its Raft log store rebuilt empty ("" when one could). Another voter in
// the newest snapshot of any group will do. Groups whose newest snapshots
// all show it alone are a standalone node's, or a founder's whose
// snapshots all predate the others' joining: a member in its gossip
// snapshot tells the second (--join does not: a node of --join and
// --bootstrap-expect 1 is alone too). A standalone node's groups, started
// empty, would never be caught up, and a trust-stores would elect them
// with a log behind the stores' applied indexes, whose new entries the
// stores would skip. The founder's are safe on the same start: they are
// marked to neither vote nor stand until a leader has caught them up, so
// their snapshots' configuration (this node alone) elects nothing, and
// their leader, a member of the configuration they lost, sends them what
// followed. With no snapshot to tell, another node must be known:
// --join, or a member in its gossip snapshot (a node that founded its
// cluster without --join rejoins it so).
func (s *storeActor) alone(l storage.Layout, snaps []*storage.SnapshotStore) (string, error) {
	rt := s.rt
	var confs []raft.Configuration
	for _, st := range snaps {
		metas, err := st.List()
		if err != nil {
			return "", err
		}
		if len(metas) > 0 {
			confs = append(confs, metas[0].Configuration)
		}
	}
	sys, err := systemSnapshots(l)
	if err != nil {
		return "", err
	}
	if metas, err := sys.List(); err != nil {
		return "", err
	} else if len(metas) > 0 {
		confs = append(confs, metas[0].Configuration)
	}
	for _, c := range confs {
		if others, _ := countVoters(c, raft.ServerID(rt.Name)); others > 0 {
			return "", nil
		}
	}
	if len(rt.Join) > 0 && len(confs) == 0 {
		return "", nil
	}
	if known, err := gossipKnowsOthers(filepath.Join(l.Dir, "serf.snapshot"), rt.Name); err != nil || known {
		return "", err
	}
	if len(confs) > 0 {
		return "its groups' newest snapshots show no voter but this node, and its gossip snapshot knows no other node: no other node holds their logs", nil
	}
	return "this node was started without --join, and neither its groups' snapshots nor its gossip snapshot know another node to catch up from", nil
}

// gossipKnowsOthers tells whether serf's snapshot at path last saw a
// member other than self alive (false when there is no snapshot).
func gossipKnowsOthers(path, self string) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	alive := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSuffix(line, "\n")
		if m, ok := strings.CutPrefix(line, "alive: "); ok {
			if i := strings.LastIndexByte(m, ' '); i > 0 {
				alive[m[:i]] = true
			}
		} else if m, ok := strings.CutPrefix(line, "not-alive: "); ok {
			delete(alive, m)
		}
	}
	delete(alive, self)
	return len(alive) > 0, nil
}

// systemSnapshots opens the system group's snapshot store in l.
func systemSnapshots(l storage.Layout) (*raft.FileSnapshotStore, error) {
	return raft.NewFileSnapshotStoreWithLogger(l.SystemDir(), systemSnapshotsRetained, hclog.NewNullLogger())
}

// watchFaults reports the first store of the node that fails in a way
// retrying does not mend (Failure) to Runtime.OnFault, until unwatch is
// closed. A restart of this actor would open the same broken files, and
// a node left running serves from a store it cannot write while Pebble
// retries its failed flush in a busy loop; so the node stops, its
// groups' other members carry on, and an operator mends the disk.
//
// A shard's store that found on-disk corruption (storage.ErrCorrupt) is
// the shard's Raft actor's to act on (rebuild): it gets the store
// renewed from its group's other members when they can send it, and
// stops the node when they cannot. The watch then goes on with the
// renewed store.
func (s *storeActor) watchFaults(root *actor.RootContext, addr string, unwatch chan struct{}) {
	rt, logs := s.rt, s.logs
	go func() {
		select {
		case <-logs.Failed():
			rt.storeFailed(logs.Failure())
		case <-unwatch:
		}
	}()
	for i, sh := range s.shards {
		go func() {
			for {
				renewed, failed := sh.Renewed(), sh.Failed()
				select {
				case <-failed:
				case <-unwatch:
					return
				}
				err := sh.Failure()
				if !errors.Is(err, storage.ErrCorrupt) {
					rt.storeFailed(err)
					return
				}
				root.Send(actor.NewPID(addr, RaftPath(i)), shardDamaged{})
				select {
				case <-renewed:
				case <-unwatch:
					return
				}
			}
		}()
	}
}

// failOnce returns the node's way to stop on a store failure
// (openStores.fail): the first failure is logged and reported to
// Runtime.OnFault, later ones are not.
func (s *storeActor) failOnce() func(error) {
	var once sync.Once
	rt := s.rt
	return func(err error) {
		once.Do(func() {
			rt.logger().Error("a store failed; the node stops", "dir", rt.DataDir, "err", err)
			s.recordRaftLogDamage()
			if rt.OnFault != nil {
				rt.OnFault(err)
			}
		})
	}
}

// recordRaftLogDamage records in node.json that the Raft log store failed
// with on-disk corruption, for the next start to rebuild it
// (openRaftLogs): a read met the damage, and the store may open cleanly.
func (s *storeActor) recordRaftLogDamage() {
	if s.logs == nil || !errors.Is(s.logs.Failure(), storage.ErrCorrupt) {
		return
	}
	l := s.rt.Layout()
	id, ok, err := l.ReadIdentity()
	if err == nil && ok {
		id.RaftLogDamaged = s.logs.Failure().Error()
		err = l.WriteIdentity(id)
	}
	if err != nil {
		s.rt.logger().Error("recording the Raft log store's damage", "err", err)
		return
	}
	s.rt.raftLogDamaged.Store(true)
}

func (s *storeActor) close() {
	if s.unwatch != nil {
		close(s.unwatch)
		s.unwatch = nil
	}
	s.rt.setStores(nil)
	s.throttle.Close()
	var errs []error
	for _, sh := range s.shards {
		errs = append(errs, sh.Close())
	}
	if s.logs != nil {
		errs = append(errs, s.logs.Close())
	}
	s.shared.Close()
	s.shards, s.logs, s.shared = nil, nil, nil
	if err := errors.Join(errs...); err != nil {
		s.rt.logger().Error("closing storage", "err", err)
	}
}
