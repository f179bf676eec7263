package actors

import (
	"fmt"
	"time"

	"github.com/coppice-kv/coppice/messages"
	"github.com/hashicorp/raft"
)

// silentVoterAfter is how long a group's leader may go without an answer
// from a server before a membership change stops counting on it: twice
// the election timeout, so a follower held up by a slow fsync on a busy
// machine still counts, and one cut off from its peers does not.
const silentVoterAfter = 2 * time.Second

// silence is, as a group's leader tells it, how long each other server
// of the group has not answered it.
type silence map[string]time.Duration

// configSilence is the silence in a group's status (its leader's answer
// has it; any other's is empty).
func configSilence(conf []*messages.RaftServer) silence {
	out := silence{}
	for _, srv := range conf {
		if srv.SilentMs != nil {
			out[srv.Id] = time.Duration(*srv.SilentMs) * time.Millisecond
		}
	}
	return out
}

// markSilence sets each server's SilentMs when r leads its group.
func markSilence(r *raft.Raft, servers []*messages.RaftServer) {
	silent := groupSilence(r)
	for _, srv := range servers {
		if d, ok := silent[srv.Id]; ok {
			ms := uint64(d.Milliseconds())
			srv.SilentMs = &ms
		}
	}
}

// groupSilence is r's silence, r leading its group (nil otherwise).
func groupSilence(r *raft.Raft) silence {
	contacts := r.FollowerContacts()
	if contacts == nil {
		return nil
	}
	now := time.Now()
	out := make(silence, len(contacts))
	for id, at := range contacts {
		out[string(id)] = max(now.Sub(at), 0)
	}
	return out
}

// down tells why a server of a group with silent does not count as up,
// "" when it does: gossip does not see it alive, or the group's leader has
// not heard from it in silentVoterAfter. Gossip alone is not enough: a
// node whose gossip port answers can be cut off from its Raft peers (a
// partition of one port, a stuck process), and a group left needing its
// vote stalls.
func (in *managerInputs) down(silent silence) func(string) string {
	return func(name string) string {
		if !in.alive(name) {
			return "is not alive in gossip"
		}
		if d := silent[name]; d >= silentVoterAfter {
			return fmt.Sprintf("has not answered the group's leader for %s", d.Round(100*time.Millisecond))
		}
		return ""
	}
}
