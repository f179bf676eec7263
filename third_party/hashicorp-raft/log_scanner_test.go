// coppice: a restarted Raft reads its log in ranges when the store is a
// LogScanner (log.go; NewRaft's scan for the configuration, processLogs'
// replay).

package raft

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// scanningStore counts the entries read one by one (GetLog) and in ranges
// (ScanLogs).
type scanningStore struct {
	*InmemStore
	gets, scanned atomic.Int64
}

func (s *scanningStore) GetLog(index uint64, l *Log) error {
	s.gets.Add(1)
	return s.InmemStore.GetLog(index, l)
}

func (s *scanningStore) ScanLogs(from, to uint64, fn func(*Log) error) error {
	for i := from; i <= to; i++ {
		l := new(Log)
		if err := s.InmemStore.GetLog(i, l); err != nil {
			return err
		}
		s.scanned.Add(1)
		if err := fn(l); err != nil {
			return err
		}
	}
	return nil
}

// TestRaft_RestartReadsTheLogInRanges: a node that restarts with 600
// entries its FSM never saw (no snapshot) finds its configuration (added
// half-way, not the bootstrap's) and replays every entry, in order, with
// the store's ScanLogs; one GetLog each (upstream's way) would be 1200.
func TestRaft_RestartReadsTheLogInRanges(t *testing.T) {
	conf := inmemConfig(t)
	conf.SnapshotThreshold = 1 << 30
	conf.TrailingLogs = 1 << 30
	store := &scanningStore{InmemStore: NewInmemStore()}
	addr, trans := NewInmemTransport("")
	conf.LocalID = ServerID(addr)
	snaps := NewInmemSnapshotStore()
	if err := BootstrapCluster(conf, store, store, snaps, trans, Configuration{Servers: []Server{
		{Suffrage: Voter, ID: conf.LocalID, Address: addr},
	}}); err != nil {
		t.Fatal(err)
	}
	r, err := NewRaft(conf, &MockFSM{}, store, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.LeaderCh():
	case <-time.After(10 * time.Second):
		t.Fatal("no leader within 10s")
	}
	var want [][]byte
	apply := func(n int) {
		for i := 0; i < n; i++ {
			want = append(want, []byte(fmt.Sprint("entry ", len(want))))
			if err := r.Apply(want[len(want)-1], 5*time.Second).Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
	apply(300)
	// A non-voter that never answers: the configuration to find is at
	// the middle of the log.
	if err := r.AddNonvoter("absent", "absent", 0, 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	apply(300)
	if err := r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	trans.Close()

	store.gets.Store(0)
	store.scanned.Store(0)
	fsm := &MockFSM{}
	_, trans = NewInmemTransport(addr)
	r, err = NewRaft(conf, fsm, store, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown().Error() })
	if f := r.GetConfiguration(); f.Error() != nil || len(f.Configuration().Servers) != 2 {
		t.Fatalf("configuration after the restart: %+v, %v; want the leader and the non-voter", f.Configuration().Servers, f.Error())
	}
	waitFor(t, "replay of the 600 entries", func() error {
		if got := len(fsm.Logs()); got < len(want) {
			return fmt.Errorf("%d applied", got)
		}
		return nil
	})
	for i, got := range fsm.Logs()[:len(want)] {
		if !bytes.Equal(got, want[i]) {
			t.Fatalf("entry %d replayed as %q, want %q", i, got, want[i])
		}
	}
	// NewRaft reads the last entry with GetLog; the replay reads a range
	// from every index the scan did not cover.
	if gets := store.gets.Load(); gets > 10 {
		t.Errorf("%d entries read one by one after the restart (%d in ranges); want the ranges to read them", gets, store.scanned.Load())
	}
	if n := store.scanned.Load(); n < 2*int64(len(want)) {
		t.Errorf("%d entries read in ranges, want the configuration scan's and the replay's, at least %d", n, 2*len(want))
	}
}
