package actors

import (
	"slices"
	"strings"
	"sync"

	"github.com/coppice-kv/coppice/transport"

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
//
// It also knows which of them gossip says are down: pub/sub messages go to
// the others (peers).
type addrBook struct {
	mu   sync.RWMutex
	m    map[string]string
	down map[string]bool
}

// set records name's cluster address; "" forgets it.
func (b *addrBook) set(name, addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if addr == "" {
		delete(b.m, name)
		delete(b.down, name)
		return
	}
	if b.m == nil {
		b.m = map[string]string{}
	}
	b.m[name] = addr
}

// setDown records whether gossip says name is down (failed or left).
func (b *addrBook) setDown(name string, down bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !down {
		delete(b.down, name)
		return
	}
	if b.down == nil {
		b.down = map[string]bool{}
	}
	b.down[name] = true
}

// peers is every node but self with an address and not down, by name.
func (b *addrBook) peers(self string) []transport.Peer {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]transport.Peer, 0, len(b.m))
	for name, addr := range b.m {
		if name != self && !b.down[name] {
			out = append(out, transport.Peer{Name: name, Addr: addr})
		}
	}
	slices.SortFunc(out, func(a, b transport.Peer) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// ServerAddr is the address gossip gives server id, or "" when it gives
// none: the transport then dials the configuration's (the raft fork's
// no-override answer).
func (b *addrBook) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return raft.ServerAddress(b.m[string(id)]), nil
}
