// coppice: a log that cannot be read, or a term that cannot be saved, is
// an error or the server's shutdown (api.go, raft.go), where upstream
// panics.

package raft

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

var errDamagedEntry = errors.New("checksum mismatch")

// damagedStore fails every read of one entry, as a store whose block
// holding it is damaged.
type damagedStore struct {
	*InmemStore
	damaged uint64
}

func (s *damagedStore) GetLog(index uint64, l *Log) error {
	if index == s.damaged {
		return errDamagedEntry
	}
	return s.InmemStore.GetLog(index, l)
}

// damagedScanningStore is a damagedStore that reads ranges (LogScanner).
type damagedScanningStore struct{ *damagedStore }

func (s damagedScanningStore) ScanLogs(from, to uint64, fn func(*Log) error) error {
	for i := from; i <= to; i++ {
		l := new(Log)
		if err := s.GetLog(i, l); err != nil {
			return err
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	return nil
}

// TestRaft_NewRaftReturnsALogReadError: NewRaft, scanning its log for the
// configuration, meets an entry it cannot read, one by one or in a
// range: it returns the store's error, and its caller decides (coppice
// stops the node and rebuilds the store); upstream panics.
func TestRaft_NewRaftReturnsALogReadError(t *testing.T) {
	for _, scan := range []bool{false, true} {
		conf := inmemConfig(t)
		addr, trans := NewInmemTransport("")
		conf.LocalID = ServerID(addr)
		damaged := &damagedStore{InmemStore: NewInmemStore(), damaged: 2}
		var logs LogStore = damaged
		if scan {
			logs = damagedScanningStore{damaged}
		}
		snaps := NewInmemSnapshotStore()
		if err := BootstrapCluster(conf, logs, damaged, snaps, trans, Configuration{Servers: []Server{
			{Suffrage: Voter, ID: conf.LocalID, Address: addr},
		}}); err != nil {
			t.Fatal(err)
		}
		if err := damaged.StoreLogs([]*Log{{Index: 2, Term: 1, Type: LogCommand}, {Index: 3, Term: 1, Type: LogCommand}}); err != nil {
			t.Fatal(err)
		}
		r, err := NewRaft(conf, &MockFSM{}, logs, damaged, snaps, trans)
		if r != nil {
			r.Shutdown()
		}
		if !errors.Is(err, errDamagedEntry) {
			t.Fatalf("scan %v: NewRaft: %v, want the store's error", scan, err)
		}
	}
}

// TestRaft_FollowerThatCannotReadItsLogShutsDown: a follower stores the
// entries its leader sends and then cannot read one back to apply it
// (processLogs): it shuts down, and the leader goes on; upstream panics,
// which ends the whole process.
func TestRaft_FollowerThatCannotReadItsLogShutsDown(t *testing.T) {
	leader, addr2, trans2 := leaderAlone(t)
	// Committed before the follower is added: it gets them in one go,
	// with the commit index, and applies them at once.
	for i := 0; i < 10; i++ {
		if err := leader.Apply([]byte("entry"), 5*time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	conf2 := inmemConfig(t)
	conf2.LocalID = ServerID(addr2)
	store2 := &damagedStore{InmemStore: NewInmemStore(), damaged: 5}
	follower, err := NewRaft(conf2, &MockFSM{}, store2, store2, NewInmemSnapshotStore(), trans2)
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Shutdown()
	if err := leader.AddNonvoter(conf2.LocalID, addr2, 0, 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	waitShutdown(t, follower)
	if applied := follower.AppliedIndex(); applied >= 5 {
		t.Fatalf("the follower applied up to %d, past the entry it could not read", applied)
	}
	if err := leader.Apply([]byte("after"), 5*time.Second).Error(); err != nil {
		t.Fatalf("the leader after its follower shut down: %v", err)
	}
}

// failingTermStore cannot save a term once failing is set, as a stable
// store on a disk that fails writes.
type failingTermStore struct {
	*InmemStore
	failing atomic.Bool
}

func (s *failingTermStore) SetUint64(key []byte, val uint64) error {
	if s.failing.Load() && bytes.Equal(key, keyCurrentTerm) {
		return errDamagedEntry
	}
	return s.InmemStore.SetUint64(key, val)
}

// TestRaft_ServerThatCannotSaveItsTermShutsDown: a server told of a newer
// term by its leader's first AppendEntries cannot save it: it shuts down,
// not acting in a term it may forget, and its leader goes on; upstream
// panics.
func TestRaft_ServerThatCannotSaveItsTermShutsDown(t *testing.T) {
	leader, addr2, trans2 := leaderAlone(t)
	conf2 := inmemConfig(t)
	conf2.LocalID = ServerID(addr2)
	store2 := &failingTermStore{InmemStore: NewInmemStore()}
	other, err := NewRaft(conf2, &MockFSM{}, store2, store2, NewInmemSnapshotStore(), trans2)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Shutdown()
	store2.failing.Store(true)
	if err := leader.AddNonvoter(conf2.LocalID, addr2, 0, 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	waitShutdown(t, other)
	if term, _ := store2.InmemStore.GetUint64(keyCurrentTerm); term != 0 {
		t.Fatalf("the server saved term %d", term)
	}
	if err := leader.Apply([]byte("after"), 5*time.Second).Error(); err != nil {
		t.Fatalf("the leader after the other server shut down: %v", err)
	}
}

// leaderAlone starts a server that bootstraps alone and leads (shut down
// as the test ends), and a second transport connected to it, for the
// server a test adds (a Raft, where soleLeader's is a testFollower).
func leaderAlone(t *testing.T) (leader *Raft, addr2 ServerAddress, trans2 *InmemTransport) {
	t.Helper()
	conf := inmemConfig(t)
	addr1, trans1 := NewInmemTransport("")
	addr2, trans2 = NewInmemTransport("")
	trans1.Connect(addr2, trans2)
	trans2.Connect(addr1, trans1)
	conf.LocalID = ServerID(addr1)
	store := NewInmemStore()
	snaps := NewInmemSnapshotStore()
	if err := BootstrapCluster(conf, store, store, snaps, trans1, Configuration{Servers: []Server{
		{Suffrage: Voter, ID: conf.LocalID, Address: addr1},
	}}); err != nil {
		t.Fatal(err)
	}
	leader, err := NewRaft(conf, &MockFSM{}, store, store, snaps, trans1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leader.Shutdown() })
	select {
	case <-leader.LeaderCh():
	case <-time.After(10 * time.Second):
		t.Fatal("no leader within 10s")
	}
	return leader, addr2, trans2
}

// waitShutdown waits (waitFor's bound) until r has shut down.
func waitShutdown(t *testing.T, r *Raft) {
	t.Helper()
	waitFor(t, "the server shut down", func() error {
		if st := r.State(); st != Shutdown {
			return fmt.Errorf("state %v", st)
		}
		return nil
	})
}
