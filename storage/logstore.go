package storage

import "github.com/hashicorp/raft"

// LogStore is a Raft group's log and stable store: its part of the node's
// RaftLogs (RaftLogs.Group).
type LogStore interface {
	raft.LogStore
	raft.StableStore
	// DropAll deletes every entry, durably; the stable values stay.
	DropAll() error
	Close() error
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
