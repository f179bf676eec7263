package storage

import (
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// LogStore is a shard's Raft log and stable store. coppice uses
// hashicorp/raft-wal: on this machine it appends and fsyncs entries several
// times faster than raft-boltdb/v2 (BenchmarkLogStore; docs/storage.md).
type LogStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// OpenLogStore opens (or creates) the Raft log and stable store in dir.
func OpenLogStore(dir string) (LogStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// raft-wal's Close leaves its metadata database open (and locked), so
	// the store owns it and closes it after the WAL.
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithMetaStore(meta))
	if err != nil {
		meta.Close()
		return nil, fmt.Errorf("storage: raft log %s: %w", dir, err)
	}
	return &walStore{WAL: w, cache: newLogCache(w, logCacheEntries, logCacheBytes), meta: meta}, nil
}

// A LogStore keeps its latest entries in memory (logCache): at most this
// many, and this many bytes of them.
const (
	logCacheEntries = 1024
	logCacheBytes   = 16 << 20
)

type walStore struct {
	*wal.WAL
	cache *logCache
	meta  *metadb.BoltMetaDB
}

func (s *walStore) StoreLog(l *raft.Log) error        { return s.cache.StoreLog(l) }
func (s *walStore) StoreLogs(ls []*raft.Log) error    { return s.cache.StoreLogs(ls) }
func (s *walStore) DeleteRange(min, max uint64) error { return s.cache.DeleteRange(min, max) }

// GetLog returns entry index, and raft.ErrLogNotFound for one below the
// first index. raft-wal drops a trimmed head only in whole segments and
// still serves entries of a partly trimmed tail segment; hashicorp/raft
// would then replay entries the trailing-logs policy discarded to a new
// follower instead of sending it a snapshot, and the sync's choice between
// replay and copy (cluster.WALBridgeable, from FirstIndex) would not be
// what happens.
func (s *walStore) GetLog(index uint64, log *raft.Log) error {
	first, err := s.WAL.FirstIndex()
	if err != nil {
		return err
	}
	if index < first {
		return raft.ErrLogNotFound
	}
	return s.cache.GetLog(index, log)
}

func (s *walStore) Close() error {
	return errors.Join(s.WAL.Close(), s.meta.Close())
}

// maxInvisibleRun bounds how far LastVisible walks back: a leader appends
// one no-op per term, so a long run of entries the state machine never sees
// does not happen.
const maxInvisibleRun = 1024

// LastVisible returns the index of the last entry at or below index that the
// state machine is handed (a command or a configuration), or floor when
// every entry in (floor, index] is one it never sees (a leader's no-op, a
// barrier). hashicorp/raft does not pass those to a BatchingFSM, so the
// shard's applied index stops below them: a read barrier or a readiness
// check waits for LastVisible, not for the raw index. An entry already
// compacted out of the log is covered by a snapshot and counts as visible.
// An index at or below floor (already applied: a read barrier's index is
// taken before the entries applied since) is returned as it is.
func LastVisible(logs raft.LogStore, index, floor uint64) uint64 {
	if index <= floor {
		return index
	}
	for i := index; i > floor && index-i < maxInvisibleRun; i-- {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return i
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i
		}
	}
	if index-floor >= maxInvisibleRun {
		return index - maxInvisibleRun
	}
	return floor
}

// logSamples is how many entries LogBytes reads.
const logSamples = 16

// LogBytes estimates the bytes of the entries first..last of logs from a
// sample of them, evenly spread (a preallocated WAL's file sizes say
// nothing of it).
func LogBytes(logs raft.LogStore, first, last uint64) uint64 {
	if first == 0 || last < first {
		return 0
	}
	n := last - first + 1
	step := max(n/logSamples, 1)
	var sum, read uint64
	for i := first; i <= last && read < logSamples; i += step {
		var l raft.Log
		if logs.GetLog(i, &l) == nil {
			sum += uint64(len(l.Data))
			read++
		}
	}
	if read == 0 {
		return 0
	}
	return sum / read * n
}
