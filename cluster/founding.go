package cluster

import (
	"fmt"
	"slices"
	"strings"

	"github.com/coppice-kv/coppice/messages"
)

// Founding is what a node on a new data dir, started with --join and
// --bootstrap-expect, makes of the members its gossip sees
// (DecideFounding).
type Founding struct {
	// Found: this node founds the cluster now.
	Found bool
	// Join is the ID of a cluster a member already belongs to: the node
	// joins it and founds nothing.
	Join string
	// Wait says why the node neither founds nor joins yet.
	Wait string
}

// DecideFounding decides for node self, started with --bootstrap-expect
// expect, from the members its gossip sees (itself included):
//
//   - a live member that belongs to a cluster: join that cluster. A node
//     whose data dir was lost, started again with the same flags, so
//     rejoins the cluster it was in; it never founds another;
//   - else, once expect live members, none in a cluster, all started with
//     the same --bootstrap-expect, see each other, the first of them by
//     name founds the cluster and the others wait for it (then join it);
//   - a live member that asks for another count stops the founding: the
//     nodes disagree on how many found the cluster, and two of them could
//     each see a quorum of its own.
//
// Members started with --join only (no count) are not counted and stop
// nothing: they join the cluster once it is founded. Every node that is
// counted sees the same expect nodes and picks the same first one; only
// more nodes than expect started with the count, before the founder's
// cluster ID has spread, could see different sets, which is why every
// founding node must be given the same count, that of the nodes started
// together.
func DecideFounding(self string, expect int, members []*messages.Member) Founding {
	seen, other := []string{self}, []string(nil) // self, also before gossip lists it
	for _, m := range members {
		if m.Status != messages.MemberStatus_ALIVE || m.Name == self {
			continue
		}
		switch {
		case m.ClusterId != "":
			return Founding{Join: m.ClusterId}
		case m.BootstrapExpect == 0:
		case int(m.BootstrapExpect) == expect:
			seen = append(seen, m.Name)
		default:
			other = append(other, fmt.Sprintf("%s %d", m.Name, m.BootstrapExpect))
		}
	}
	if len(other) > 0 {
		return Founding{Wait: fmt.Sprintf("nodes ask for another --bootstrap-expect than this node's %d (%s): give every founding node the same",
			expect, strings.Join(other, ", "))}
	}
	slices.Sort(seen)
	if len(seen) < expect {
		return Founding{Wait: fmt.Sprintf("%d of the %d nodes of --bootstrap-expect seen (%s), and no cluster",
			len(seen), expect, strings.Join(seen, ", "))}
	}
	if seen[0] != self {
		return Founding{Wait: fmt.Sprintf("%s founds the cluster (the first by name of %s)", seen[0], strings.Join(seen, ", "))}
	}
	return Founding{Found: true}
}
