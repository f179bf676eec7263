package actors

// store: supervised by node (rest_for_one), permanent worker. It checks the
// data dir's identity, then opens every shard's Pebble store and snapshot
// store for the Raft actors and the client; it closes them when it stops.

import (
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/storage"
)

// snapshotsRetained is how many Raft snapshots each shard keeps.
const snapshotsRetained = 2

type storeActor struct {
	rt     *Runtime
	shards []*storage.Shard
}

func (s *storeActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		if err := s.open(); err != nil {
			s.close()
			panic(err)
		}
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
	// The cluster this data belongs to, if any: gossip announces it from
	// the start, so a node with another cluster's data is refused.
	rt.setClusterID(id.ClusterID)
	switch state {
	case storage.DirNew:
		if err := l.WriteIdentity(storage.Identity{Name: rt.Name, Shards: rt.Shards}); err != nil {
			return fmt.Errorf("node: write %s: %w", l.IdentityFile(), err)
		}
	case storage.DirClone:
		// A copy of another node's data dir: the cluster issue handles
		// joining it; standalone, refuse rather than guess.
		return fmt.Errorf("%w: %s was written by node %q, this node is %q", storage.ErrOtherNode, l.Dir, id.Name, rt.Name)
	}
	snaps := make([]*storage.SnapshotStore, rt.Shards)
	for i := 0; i < rt.Shards; i++ {
		st, err := storage.NewSnapshotStore(l.SnapshotDir(i), snapshotsRetained)
		if err != nil {
			return err
		}
		sh, err := storage.OpenShard(l, i, rt.Exec, st)
		if err != nil {
			return err
		}
		snaps[i] = st
		s.shards = append(s.shards, sh)
	}
	rt.setShards(s.shards, snaps)
	idx := make([]uint64, len(s.shards))
	for i, sh := range s.shards {
		idx[i], _ = sh.Applied()
	}
	rt.logger().Info("storage open", "dir", l.Dir, "shards", rt.Shards, "applied", idx)
	return nil
}

func (s *storeActor) close() {
	s.rt.setShards(nil, nil)
	var errs []error
	for _, sh := range s.shards {
		errs = append(errs, sh.Close())
	}
	s.shards = nil
	if err := errors.Join(errs...); err != nil {
		s.rt.logger().Error("closing storage", "err", err)
	}
}
