package storage

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// A disk clone is a copy of another node's data dir started under a new
// name: its data and applied indexes are worth keeping (they spare the
// copy), but its Raft state is the other node's. ForgetRaftState drops the
// clone's Raft logs, stable stores and snapshots (every shard's and the
// system group's) and its gossip snapshot; MarkApplied then records, for
// an open shard, a snapshot at the shard's applied index and term (a
// checkpoint: hard links), with no configuration. Raft starts from there
// as a non-member at that index, so once a leader adds the node it sends
// only the entries after it when its log still holds them (replay), and a
// snapshot otherwise.

// ForgetRaftState removes the Raft state of every shard and of the system
// group, and serf's snapshot, keeping the shards' data.
func (l Layout) ForgetRaftState(shards int) error {
	dirs := []string{l.RaftLogDir(), l.SystemDir(), filepath.Join(l.Dir, "serf.snapshot")}
	for i := 0; i < shards; i++ {
		dirs = append(dirs, l.LegacyRaftDir(i), l.SnapshotDir(i))
	}
	return removeAll("disk clone", dirs)
}

// removeAll removes every path of paths, for what (in its error).
func removeAll(what string, paths []string) error {
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("storage: %s: %w", what, err)
		}
	}
	return nil
}

// DropRaftLogs removes the node's Raft log store (every group's log and
// stable values) and the groups' logs from before it, keeping the
// shards' data, their snapshots and the system group's: a damaged store
// is rebuilt empty, and each group catches up from its leader from its
// newest snapshot on.
func (l Layout) DropRaftLogs(shards int) error {
	dirs := []string{l.RaftLogDir(), l.LegacySystemRaftDir()}
	for i := 0; i < shards; i++ {
		dirs = append(dirs, l.LegacyRaftDir(i))
	}
	if err := removeAll("dropping the Raft log store", dirs); err != nil {
		return err
	}
	return syncFSDir(vfs.Default, l.Dir)
}

// MarkApplied records a snapshot of s at its applied index (nothing when
// the shard is empty).
func (s *Shard) MarkApplied() error {
	index, term := s.Applied()
	if index == 0 {
		return nil
	}
	sink, err := s.snaps.Create(1, index, term, raft.Configuration{}, 0, nil)
	if err != nil {
		return err
	}
	snap, err := s.Snapshot()
	if err != nil {
		sink.Cancel()
		return err
	}
	defer snap.Release()
	return snap.Persist(sink)
}
