package raft

// coppice's change (FORK.md): the leader replicates entries while it
// writes them to its own log store.

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// gatedStore holds StoreLogs while a gate is set, until the gate closes.
type gatedStore struct {
	*InmemStore
	gate atomic.Pointer[chan struct{}]
}

func (s *gatedStore) StoreLogs(logs []*Log) error {
	if g := s.gate.Load(); g != nil {
		<-*g
	}
	return s.InmemStore.StoreLogs(logs)
}

// While the leader's own write of an entry is held, both followers store
// it, and it is not committed; once the leader's write returns it is.
func TestLeaderReplicatesWhileItWrites(t *testing.T) {
	const n = 3
	var (
		trans  [n]*InmemTransport
		stores [n]*gatedStore
		rafts  [n]*Raft
		cfg    Configuration
	)
	for i := range trans {
		_, trans[i] = NewInmemTransport("")
		cfg.Servers = append(cfg.Servers, Server{Suffrage: Voter, ID: ServerID(fmt.Sprint(i)), Address: trans[i].LocalAddr()})
	}
	for i := range trans {
		for j := range trans {
			if i != j {
				trans[i].Connect(trans[j].LocalAddr(), trans[j])
			}
		}
	}
	for i := range rafts {
		conf := inmemConfig(t)
		conf.LocalID = cfg.Servers[i].ID
		stores[i] = &gatedStore{InmemStore: NewInmemStore()}
		snaps := NewInmemSnapshotStore()
		if err := BootstrapCluster(conf, stores[i], stores[i], snaps, trans[i], cfg); err != nil {
			t.Fatal(err)
		}
		r, err := NewRaft(conf, &MockFSM{}, stores[i], stores[i], snaps, trans[i])
		if err != nil {
			t.Fatal(err)
		}
		rafts[i] = r
		defer func() { _ = r.Shutdown().Error() }() // waits: no logging after the test
	}

	leader := -1
	for deadline := time.Now().Add(10 * time.Second); leader < 0; {
		for i, r := range rafts {
			if r.State() == Leader {
				leader = i
			}
		}
		if leader < 0 {
			if time.Now().After(deadline) {
				t.Fatal("no leader within 10s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Settle: the leader's first entry is committed everywhere.
	if err := rafts[leader].Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	want := rafts[leader].LastIndex() + 1

	gate := make(chan struct{})
	stores[leader].gate.Store(&gate)
	f := rafts[leader].Apply([]byte("x"), 5*time.Second)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()

	for i, s := range stores {
		if i == leader {
			continue
		}
		for deadline := time.Now().Add(10 * time.Second); ; {
			last, _ := s.LastIndex()
			if last >= want {
				break
			}
			if time.Now().After(deadline) {
				close(gate)
				t.Fatalf("follower %d holds up to index %d, not %d, while the leader's write is held", i, last, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	select {
	case err := <-done:
		close(gate)
		t.Fatalf("the apply returned (%v) while the leader's write is held", err)
	default:
	}
	close(gate)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		if f.Index() != want {
			t.Fatalf("the entry is at %d, want %d", f.Index(), want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not committed within 10s of the leader's write")
	}
}
