package actors

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// addrBook is every node's cluster address as gossip last gave it, by
// name: what the Raft groups dial (groupAddrs), ahead of the addresses in
// their configurations. A node restarted at new addresses is reached at
// once, before the coordinator re-addresses it in every group; and a
// cluster whose nodes all moved (a full restart where every container got
// a new IP) can still elect leaders, which a group dialling only its
// configuration's addresses never could, so no coordinator would ever
// re-address anyone.
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

func (b *addrBook) get(name string) (string, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	a, ok := b.m[name]
	return a, ok
}

// errNoAddress: neither gossip nor the group's configuration has the server.
var errNoAddress = errors.New("no address known for the server")

// groupAddrs is one Raft group's raft.ServerAddressProvider: the address
// gossip gives a server, else the one in the group's latest configuration
// (read without the group's main loop), else an error, on which the
// transport dials the address it was given.
type groupAddrs struct {
	book *addrBook
	r    atomic.Pointer[raft.Raft]
}

func (g *groupAddrs) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	if a, ok := g.book.get(string(id)); ok {
		return raft.ServerAddress(a), nil
	}
	if r := g.r.Load(); r != nil {
		f := r.GetConfiguration()
		if f.Error() == nil {
			for _, s := range f.Configuration().Servers {
				if s.ID == id {
					return s.Address, nil
				}
			}
		}
	}
	return "", errNoAddress
}
