// coppice: a log that cannot be read as Raft starts is NewRaft's error
// (api.go), where upstream panics.

package raft

import (
	"errors"
	"testing"
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
