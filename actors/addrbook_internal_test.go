package actors

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// A group dials the address gossip gives a server, else its configuration's;
// one neither knows is an error, on which the transport dials the address
// it was given.
func TestGroupAddrs(t *testing.T) {
	conf := raft.DefaultConfig()
	conf.LocalID = "a"
	conf.LogOutput = nil
	conf.LogLevel = "off"
	store := raft.NewInmemStore()
	_, trans := raft.NewInmemTransport("a:1")
	r, err := raft.NewRaft(conf, &raft.MockFSM{}, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown()
	if err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{
		{Suffrage: raft.Voter, ID: "a", Address: "a:1"},
		{Suffrage: raft.Voter, ID: "b", Address: "b:1"},
		{Suffrage: raft.Nonvoter, ID: "c", Address: "c:1"},
	}}).Error(); err != nil {
		t.Fatal(err)
	}

	var book addrBook
	g := &groupAddrs{book: &book}
	if a, err := g.ServerAddr("b"); !errors.Is(err, errNoAddress) {
		t.Errorf("before the group runs: %q, %v; want errNoAddress", a, err)
	}
	g.r.Store(r)
	book.set("c", "c:2") // c moved, and gossip says so
	for id, want := range map[raft.ServerID]raft.ServerAddress{"b": "b:1", "c": "c:2"} {
		if a, err := g.ServerAddr(id); err != nil || a != want {
			t.Errorf("server %s: %q, %v; want %q", id, a, err, want)
		}
	}
	if a, err := g.ServerAddr("d"); !errors.Is(err, errNoAddress) {
		t.Errorf("unknown server: %q, %v; want errNoAddress", a, err)
	}
	book.set("c", "")
	if a, err := g.ServerAddr("c"); err != nil || a != "c:1" {
		t.Errorf("c forgotten by gossip: %q, %v; want the configuration's c:1", a, err)
	}
}
