package actors

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

// A group dials the address gossip gives a server; for a server gossip
// gives none, the book answers "" and the transport dials the
// configuration's address (the raft fork's TestNetworkTransport_NoOverride).
func TestAddrBook(t *testing.T) {
	var book addrBook
	if a, err := book.ServerAddr("b"); err != nil || a != "" {
		t.Errorf("an empty book: %q, %v; want no override", a, err)
	}
	book.set("c", "c:2") // c moved, and gossip says so
	if a, err := book.ServerAddr("c"); err != nil || a != "c:2" {
		t.Errorf("server c: %q, %v; want c:2", a, err)
	}
	if a, err := book.ServerAddr("d"); err != nil || a != "" {
		t.Errorf("unknown server: %q, %v; want no override", a, err)
	}
	book.set("c", "")
	if a, err := book.ServerAddr("c"); err != nil || a != "" {
		t.Errorf("c forgotten by gossip: %q, %v; want no override", a, err)
	}
	var _ raft.ServerAddressProvider = &book
}

// Pub/sub's peers: the nodes with an address, but this one and those
// gossip says are down.
func TestAddrBookPeers(t *testing.T) {
	var book addrBook
	book.set("n3", "n3:1")
	book.set("n1", "n1:1")
	book.set("n2", "n2:1")
	book.setDown("n3", true)
	if got := fmt.Sprint(book.peers("n1")); got != "[n2 at n2:1]" {
		t.Fatalf("peers of n1 with n3 down: %s", got)
	}
	book.setDown("n3", false)
	book.set("n4", "n4:1")
	book.setDown("n4", true)
	book.set("n4", "") // reaped: forgotten, down or not
	book.set("n4", "n4:2")
	if got := fmt.Sprint(book.peers("n2")); got != "[n1 at n1:1 n3 at n3:1 n4 at n4:2]" {
		t.Fatalf("peers of n2: %s", got)
	}
}
