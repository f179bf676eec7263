package actors

import (
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
