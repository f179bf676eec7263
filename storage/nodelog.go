package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// NodeLog is one node's Raft logs and stable stores, every group's (the
// shards' and the system group's) in one Pebble store under
// <data>/raftlog. Sharing it is the point: Pebble commits concurrent synced
// batches with one fsync between them, so the groups' appends that arrive
// together cost one fsync, not one per group.
//
// Keys: 'l' group(4) index(8) -> an entry; 's' group(4) key -> a stable
// store value. Big-endian, so a group's entries are one ordered range.
type NodeLog struct {
	db *pebble.DB

	mu     sync.Mutex
	groups map[uint32]*groupLog
}

const (
	logPrefix    = 'l'
	stablePrefix = 's'
)

// OpenNodeLog opens (or creates) the node's log store in dir.
func OpenNodeLog(dir string) (*NodeLog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	db, err := pebble.Open(dir, &pebble.Options{
		Logger: quietLogger{},
		// Entries mostly die (a snapshot truncates them) before a
		// memtable this size fills and is flushed.
		MemTableSize: 64 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("storage: raft log %s: %w", dir, err)
	}
	return &NodeLog{db: db, groups: map[uint32]*groupLog{}}, nil
}

// Close closes the store; every group's LogStore must be out of use.
func (n *NodeLog) Close() error { return n.db.Close() }

// Group returns group id's log and stable store. A group has one LogStore
// at a time: a restarted Raft actor asks again once the old one is closed.
func (n *NodeLog) Group(id uint32) (LogStore, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, open := n.groups[id]; open {
		return nil, fmt.Errorf("storage: raft log of group %d is already open", id)
	}
	g := &groupLog{n: n, id: id}
	var err error
	if g.first, g.last, err = g.bounds(); err != nil {
		return nil, err
	}
	n.groups[id] = g
	return g, nil
}

func groupPrefix(p byte, id uint32) []byte {
	k := make([]byte, 5, 13)
	k[0] = p
	binary.BigEndian.PutUint32(k[1:], id)
	return k
}

// groupEnd is the first key after group id's keys under prefix p.
func groupEnd(p byte, id uint32) []byte {
	if id == ^uint32(0) {
		return []byte{p + 1}
	}
	return groupPrefix(p, id+1)
}

func entryKey(id uint32, index uint64) []byte {
	return binary.BigEndian.AppendUint64(groupPrefix(logPrefix, id), index)
}

// groupLog is one group's view of the NodeLog. First and last index are
// kept in memory (read from the store when the view opens).
type groupLog struct {
	n  *NodeLog
	id uint32

	mu          sync.Mutex
	first, last uint64
}

// bounds reads the group's first and last index from the store.
func (g *groupLog) bounds() (first, last uint64, err error) {
	it, err := g.n.db.NewIter(&pebble.IterOptions{
		LowerBound: groupPrefix(logPrefix, g.id), UpperBound: groupEnd(logPrefix, g.id)})
	if err != nil {
		return 0, 0, err
	}
	if it.First() {
		first = binary.BigEndian.Uint64(it.Key()[5:])
	}
	if it.Last() {
		last = binary.BigEndian.Uint64(it.Key()[5:])
	}
	return first, last, errors.Join(it.Error(), it.Close())
}

func (g *groupLog) FirstIndex() (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.first, nil
}

func (g *groupLog) LastIndex() (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last, nil
}

// GetLog returns entry index, raft.ErrLogNotFound when the group does not
// hold it.
func (g *groupLog) GetLog(index uint64, log *raft.Log) error {
	v, closer, err := g.n.db.Get(entryKey(g.id, index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	if err := decodeEntry(v, log); err != nil {
		return fmt.Errorf("storage: raft log group %d entry %d: %w", g.id, index, err)
	}
	log.Index = index
	return nil
}

func (g *groupLog) StoreLog(log *raft.Log) error { return g.StoreLogs([]*raft.Log{log}) }

// StoreLogs appends logs, fsynced: concurrent calls of every group share
// the fsync.
func (g *groupLog) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	b := g.n.db.NewBatch()
	defer b.Close()
	var buf []byte
	for _, l := range logs {
		buf = encodeEntry(buf[:0], l)
		if err := b.Set(entryKey(g.id, l.Index), buf, nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("storage: raft log group %d: %w", g.id, err)
	}
	g.mu.Lock()
	if g.first == 0 || logs[0].Index < g.first {
		g.first = logs[0].Index
	}
	if last := logs[len(logs)-1].Index; last > g.last {
		g.last = last
	}
	g.mu.Unlock()
	return nil
}

// DeleteRange removes entries min..max: a compacted head, or a follower's
// conflicting tail.
func (g *groupLog) DeleteRange(min, max uint64) error {
	if max < min {
		return nil
	}
	end := groupEnd(logPrefix, g.id)
	if max < ^uint64(0) {
		end = entryKey(g.id, max+1)
	}
	if err := g.n.db.DeleteRange(entryKey(g.id, min), end, pebble.Sync); err != nil {
		return fmt.Errorf("storage: raft log group %d: %w", g.id, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if min <= g.first {
		g.first = max + 1
	}
	if max >= g.last {
		g.last = min - 1
	}
	if g.first > g.last || g.last == 0 {
		g.first, g.last = 0, 0
	}
	return nil
}

func (g *groupLog) stableKey(key []byte) []byte {
	return append(groupPrefix(stablePrefix, g.id), key...)
}

func (g *groupLog) Set(key, val []byte) error {
	return g.n.db.Set(g.stableKey(key), val, pebble.Sync)
}

// Get returns the value of key, empty (and no error) when it is unset, as
// hashicorp/raft expects of a stable store.
func (g *groupLog) Get(key []byte) ([]byte, error) {
	v, closer, err := g.n.db.Get(g.stableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return []byte{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

func (g *groupLog) SetUint64(key []byte, val uint64) error {
	return g.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

func (g *groupLog) GetUint64(key []byte) (uint64, error) {
	v, err := g.Get(key)
	if err != nil || len(v) == 0 {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("storage: raft stable store group %d: key %q holds %d bytes, want 8", g.id, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Close releases the group's view (the NodeLog stays open).
func (g *groupLog) Close() error {
	g.n.mu.Lock()
	if g.n.groups[g.id] == g {
		delete(g.n.groups, g.id)
	}
	g.n.mu.Unlock()
	return nil
}

// An entry: term(8) type(1) appended-at unix nanos(8) uvarint len(data)
// data extensions.
func encodeEntry(buf []byte, l *raft.Log) []byte {
	buf = binary.BigEndian.AppendUint64(buf, l.Term)
	buf = append(buf, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	buf = binary.BigEndian.AppendUint64(buf, uint64(at))
	buf = binary.AppendUvarint(buf, uint64(len(l.Data)))
	buf = append(buf, l.Data...)
	return append(buf, l.Extensions...)
}

var errBadEntry = errors.New("bad entry encoding")

func decodeEntry(v []byte, l *raft.Log) error {
	if len(v) < 17 {
		return errBadEntry
	}
	l.Term = binary.BigEndian.Uint64(v)
	l.Type = raft.LogType(v[8])
	l.AppendedAt = time.Time{}
	if at := int64(binary.BigEndian.Uint64(v[9:17])); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	n, w := binary.Uvarint(v[17:])
	if w <= 0 || uint64(len(v)-17-w) < n {
		return errBadEntry
	}
	rest := v[17+w:]
	l.Data = bytes.Clone(rest[:n])
	l.Extensions = nil
	if len(rest) > int(n) {
		l.Extensions = bytes.Clone(rest[n:])
	}
	return nil
}

// SystemGroup is the system Raft group's id in the NodeLog (shards are
// 0..n-1).
const SystemGroup = ^uint32(0)

// ImportOldLogs moves the raft-wal logs of a data dir written before the
// NodeLog (OldRaftDir of the system group and of shards 0..shards-1) into
// n, entries and stable values, then removes each old dir. A crash midway
// imports that group again at the next start (the same keys, rewritten).
// It returns the groups it imported.
func (l Layout) ImportOldLogs(n *NodeLog, shards int) ([]uint32, error) {
	ids := []uint32{SystemGroup}
	for i := 0; i < shards; i++ {
		ids = append(ids, uint32(i))
	}
	var done []uint32
	for _, id := range ids {
		dir := l.OldRaftDir(id)
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := importOldLog(dir, n, id); err != nil {
			return done, fmt.Errorf("storage: importing the raft-wal log %s: %w", dir, err)
		}
		if err := os.RemoveAll(dir); err != nil {
			return done, err
		}
		done = append(done, id)
	}
	return done, nil
}

func importOldLog(dir string, n *NodeLog, id uint32) error {
	old, err := OpenLogStore(dir)
	if err != nil {
		return err
	}
	defer old.Close()
	g, err := n.Group(id)
	if err != nil {
		return err
	}
	defer g.Close()
	// Through GetUint64 and SetUint64 for the numbers: raft-wal stores
	// them little-endian.
	for _, k := range []string{"CurrentTerm", "LastVoteTerm"} {
		v, err := old.GetUint64([]byte(k))
		if err != nil {
			return err
		}
		if err := g.SetUint64([]byte(k), v); err != nil {
			return err
		}
	}
	cand, err := old.Get([]byte("LastVoteCand"))
	if err != nil {
		return err
	}
	if err := g.Set([]byte("LastVoteCand"), cand); err != nil {
		return err
	}
	first, err := old.FirstIndex()
	if err != nil {
		return err
	}
	last, err := old.LastIndex()
	if err != nil || first == 0 {
		return err
	}
	const batch = 512
	for i := first; i <= last; i += batch {
		var logs []*raft.Log
		for j := i; j <= last && j < i+batch; j++ {
			l := new(raft.Log)
			if err := old.GetLog(j, l); err != nil {
				return fmt.Errorf("entry %d: %w", j, err)
			}
			logs = append(logs, l)
		}
		if err := g.StoreLogs(logs); err != nil {
			return err
		}
	}
	return nil
}
