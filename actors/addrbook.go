package actors

import (
	"sync"

	"github.com/hashicorp/raft"
)

// addrBook is every node's cluster address as gossip last gave it, by
// name, and every Raft group's raft.ServerAddressProvider: a group dials
// the address gossip gives a server ahead of the one in its configuration.
// A node restarted at new addresses is reached at once, before the
// coordinator re-addresses it in every group; and a cluster whose nodes
// all moved (a full restart where every container got a new IP) can still
// elect leaders, which a group dialling only its configuration's addresses
// never could, so no coordinator would ever re-address anyone.
type addrBook struct {
	mu sync.RWMutex
	m  map[string]string
}

// set records name's cluster address; "" forgets it.
func (b *addrBook) set(name, addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if addr == "" {
		delete(b.m, name)
		return
	}
	if b.m == nil {
		b.m = map[string]string{}
	}
	b.m[name] = addr
}

// ServerAddr is the address gossip gives server id, or "" when it gives
// none: the transport then dials the configuration's (the raft fork's
// no-override answer).
func (b *addrBook) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return raft.ServerAddress(b.m[string(id)]), nil
}
