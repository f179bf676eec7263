package cluster

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coppice-kv/coppice/messages"
	"google.golang.org/protobuf/proto"
)

// WALBridgeable reports whether a node whose shard has applied up to
// targetIndex can catch up by replaying the leader's log, whose first entry
// is leaderFirstIndex: every entry after targetIndex must still be there.
// An empty log (leaderFirstIndex 0) bridges any gap from its snapshot, so
// Raft sends the snapshot: that is not a bridge unless the target is
// already at or past it, which only the leader's last index can tell, so
// it counts as not bridgeable.
func WALBridgeable(targetIndex, leaderFirstIndex uint64) bool {
	if leaderFirstIndex == 0 {
		return false
	}
	return targetIndex+1 >= leaderFirstIndex
}

// NeedsResync reports whether a shard on a target must be copied from the
// leader rather than replayed: its applied index does not reach the
// leader's log.
func NeedsResync(targetApplied, leaderFirstIndex, leaderLastIndex uint64) bool {
	if targetApplied >= leaderLastIndex {
		return false
	}
	return !WALBridgeable(targetApplied, leaderFirstIndex)
}

// CheckRemoval reports whether removing node from a group (a shard, or
// the system group; named in the error) whose voters are voters leaves it
// able to make progress: the remaining voters must not be empty, and
// those up must be a majority of them. down tells why a voter is not up,
// "" when it is: gossip sees it failed, or the group's leader has not
// heard from it (a node gossip sees alive can be cut off from its Raft
// peers, and a group left with it as the voter it needs stalls).
func CheckRemoval(group string, voters []string, node string, down func(string) string) error {
	if !slices.Contains(voters, node) {
		return nil // a non-voter never counts toward quorum
	}
	rest := slices.DeleteFunc(slices.Clone(voters), func(v string) bool { return v == node })
	if len(rest) == 0 {
		return fmt.Errorf("%w: %s, node %s", ErrLastVoter, group, node)
	}
	var why []string
	for _, v := range rest {
		if d := down(v); d != "" {
			why = append(why, v+" "+d)
		}
	}
	if up := len(rest) - len(why); up <= len(rest)/2 {
		return fmt.Errorf("%w: %s would keep %d voters of which %d are up (%s)", ErrQuorum, group, len(rest), up, strings.Join(why, "; "))
	}
	return nil
}

// replayCost is how much more a byte of replayed log costs than a byte
// of copied checkpoint: a replayed entry is sent, appended, fsynced and
// executed into Pebble, a checkpoint's files are streamed. Measured on a
// 1 GiB join (docs/cluster-benchmarks.md): a shard's 460 MiB checkpoint
// arrived in 7.5 s, another shard's 260 MiB of log replayed in 28 s, so a
// factor of about 7; 4 keeps to the safe side of that.
const replayCost = 4

// minCopyBytes is the smallest replay CopyCheaper would trade for a copy.
const minCopyBytes = 64 << 20

// CopyCheaper reports whether copying a shard's checkpoint (dataBytes)
// costs less than replaying the leader's log from targetIndex: the log
// holds entries firstIndex..lastIndex in logBytes, and the replay sends
// those after targetIndex (estimated at the log's average entry size),
// each byte replayCost times a copied one. A node far behind is better
// served by a copy even while the log still bridges its gap.
//
// Only an empty target is considered, and only a replay of at least
// minCopyBytes: a node with data (a restart, a disk clone) replays what it
// lacks, and a small replay is quick either way. The size of the shard on
// disk does not decide it: Pebble compresses, the log does not, so a shard
// of 13 MiB on disk may take 256 MiB of log to replay (it did, on a join of
// values that compress 20x: 23 s of replay against 5 s of copies).
func CopyCheaper(targetIndex, firstIndex, lastIndex, logBytes, dataBytes uint64) bool {
	if targetIndex != 0 || firstIndex == 0 || lastIndex < firstIndex || dataBytes == 0 {
		return false
	}
	entries := lastIndex - firstIndex + 1
	from := max(targetIndex+1, firstIndex)
	replay := float64(logBytes) * float64(lastIndex-from+1) / float64(entries)
	return replay >= minCopyBytes && replay*replayCost > float64(dataBytes)
}

// DueRemoval picks the removal the cluster should journal now, or nil:
// of a node that gossip has seen down (downSince) for at least delay and
// that is not self. That is a member with no operation under way, or a
// node with an add op (a node still joining, or a replica being promoted)
// and no sync to it running (syncing tells, by op id; a node being synced
// is never removed). Its join or promotion is abandoned: the removal
// keeps the add op's id, replacing it, so the syncs to it are found stale
// and it leaves the shards it was in. Of those due, the one down longest (then
// by name). Removals go one at a time: while one is in the journal, none
// is due. The op it returns has cause "failed": the node is added again
// if it comes back.
func DueRemoval(st *messages.ClusterState, self string, downSince map[string]time.Time, now time.Time, delay time.Duration, syncing func(op uint64) bool) *messages.MembershipOp {
	if slices.ContainsFunc(st.Ops, func(o *messages.MembershipOp) bool { return o.Kind == messages.OpKind_REMOVE_NODE }) {
		return nil
	}
	var due *messages.MembershipOp
	consider := func(node *messages.ClusterMember, id uint64) {
		since, down := downSince[node.Name]
		if node.Name == self || !down || now.Sub(since) < delay {
			return
		}
		if due == nil || cmp.Or(since.Compare(downSince[due.Node.Name]), cmp.Compare(node.Name, due.Node.Name)) < 0 {
			due = RemovalOp(node, id, "failed", now)
		}
	}
	for _, m := range st.Members {
		if !slices.ContainsFunc(st.Ops, func(o *messages.MembershipOp) bool { return o.Node.GetName() == m.Name }) {
			consider(m, 0)
		}
	}
	for _, o := range st.Ops {
		if o.Kind == messages.OpKind_ADD_NODE && o.Node != nil && !syncing(o.Id) {
			consider(o.Node, o.Id)
		}
	}
	return due
}

// RemovalOp is the journal op that removes node for cause, started now.
// replaces is the id of the node's add op it takes the place of (its join
// abandoned: the syncs of that op then find it no longer a join), or 0 for
// a new op.
func RemovalOp(node *messages.ClusterMember, replaces uint64, cause string, now time.Time) *messages.MembershipOp {
	return &messages.MembershipOp{Id: replaces, Kind: messages.OpKind_REMOVE_NODE, Node: node,
		StartedMs: now.UnixMilli(), Cause: cause}
}

// Moved tells whether the node gossip sees at the addresses of at is
// recorded in st at other ones: a node restarted on other ports or on
// another host, with its data. It returns the record to bring up to date
// with at's addresses: the node of its add op, with the op, for a node
// still joining or a non-voter being promoted, then the member (the role
// and the time it was added are kept); one record per call. It
// returns nil when st has no record of the node, when the addresses are
// the ones recorded, and while the node is being removed: a removal goes
// by name, and the node joins again at its new addresses if it comes back.
func Moved(st *messages.ClusterState, at *messages.ClusterMember) (*messages.ClusterMember, *messages.MembershipOp) {
	if at.ClusterAddr == "" {
		return nil, nil // not announced yet
	}
	var op *messages.MembershipOp
	for _, o := range st.Ops {
		if o.Node.GetName() == at.Name {
			op = o
		}
	}
	if op != nil && op.Kind == messages.OpKind_REMOVE_NODE {
		return nil, nil
	}
	// A join's node, or a promotion's (the member's record with the voter
	// role): its syncs go to that record's address, so it goes first; a
	// member's own record once that one is up to date. (A demotion's node
	// gives only its name and role.)
	if op != nil && op.Kind == messages.OpKind_ADD_NODE && op.Node != nil && !sameAddrs(at, op.Node) {
		return movedTo(op.Node, at), op
	}
	if rec := Member(st, at.Name); rec != nil && !sameAddrs(at, rec) {
		return movedTo(rec, at), nil
	}
	return nil, nil
}

// NewDataDir tells whether the member gossip sees as at runs on another
// data dir than its record says: it returns the record with at's data
// dir ID, and the ID recorded ("" in a record from before the IDs, which
// only needs filling in), or nil when there is nothing to record: the IDs
// agree, gossip gives none, or a membership op for the node is under way
// (it records the node as the op ends).
func NewDataDir(st *messages.ClusterState, at *messages.ClusterMember) (*messages.ClusterMember, string) {
	rec := Member(st, at.Name)
	if rec == nil || at.DataDirId == "" || rec.DataDirId == at.DataDirId || OpFor(st, at.Name) != nil {
		return nil, ""
	}
	next := proto.Clone(rec).(*messages.ClusterMember)
	next.DataDirId = at.DataDirId
	return next, rec.DataDirId
}

// sameAddrs tells whether rec has the addresses gossip gives, a.
func sameAddrs(a, rec *messages.ClusterMember) bool {
	return rec.ClusterAddr == a.ClusterAddr && rec.ClientAddr == a.ClientAddr &&
		rec.HttpAddr == a.HttpAddr && rec.GossipAddr == a.GossipAddr
}

// movedTo is rec with the addresses gossip gives, at.
func movedTo(rec, at *messages.ClusterMember) *messages.ClusterMember {
	moved := proto.Clone(rec).(*messages.ClusterMember)
	moved.ClusterAddr, moved.ClientAddr, moved.HttpAddr, moved.GossipAddr = at.ClusterAddr, at.ClientAddr, at.HttpAddr, at.GossipAddr
	return moved
}

// LeaderMove is one leadership transfer: shard's leadership from From to
// To.
type LeaderMove struct {
	Shard    int
	From, To string
}

// BalanceLeaders picks the leadership transfer that evens out how many
// shards each node leads, or reports false when none is due. leaders[i]
// is shard i's leader; voters[i] are the voters of shard i that could lead
// it (alive, able to serve). Every node in some voters list counts, with
// the shards it leads (possibly none). A move goes from a node that leads
// the most to a voter of one of its shards that leads at least two fewer,
// so every move narrows the spread and moves stop once the counts differ by
// at most one. Any shard without a leader, or led by a node not among its
// own voters, means the cluster is mid-change: no move.
//
// Of the possible moves it picks the one from the busiest node (then by
// name) to the idlest (then by name), of the lowest-numbered shard: every
// coordinator computes the same move from the same view.
func BalanceLeaders(leaders []string, voters [][]string) (LeaderMove, bool) {
	if len(leaders) != len(voters) {
		return LeaderMove{}, false
	}
	led := map[string]int{}
	for i, l := range leaders {
		if l == "" || !slices.Contains(voters[i], l) {
			return LeaderMove{}, false
		}
		for _, v := range voters[i] {
			led[v] += 0 // counted, leading nothing yet
		}
		led[l]++
	}
	var best LeaderMove
	found := false
	better := func(m LeaderMove) bool {
		if !found {
			return true
		}
		return cmp.Or(
			cmp.Compare(led[best.From], led[m.From]), // busier source first
			cmp.Compare(m.From, best.From),
			cmp.Compare(led[m.To], led[best.To]), // idler target first
			cmp.Compare(m.To, best.To),
			cmp.Compare(m.Shard, best.Shard),
		) < 0
	}
	for i, l := range leaders {
		for _, v := range voters[i] {
			if v == l || led[v]+2 > led[l] {
				continue
			}
			if m := (LeaderMove{Shard: i, From: l, To: v}); better(m) {
				best, found = m, true
			}
		}
	}
	return best, found
}

// PlanLeaderMoves is up to max of BalanceLeaders' moves, one after another
// as if each were done, each of another shard: the moves one balancing
// pass can make at once. A cluster grown from one node with hundreds of
// shards would otherwise take a pass per shard to even out.
func PlanLeaderMoves(leaders []string, voters [][]string, max int) []LeaderMove {
	leaders = slices.Clone(leaders)
	var moves []LeaderMove
	for len(moves) < max {
		m, ok := BalanceLeaders(leaders, voters)
		if !ok || slices.ContainsFunc(moves, func(p LeaderMove) bool { return p.Shard == m.Shard }) {
			break
		}
		moves = append(moves, m)
		leaders[m.Shard] = m.To
	}
	return moves
}

// EvenLeaders returns nil when every shard is led by one of nodes and each
// of them leads as many shards as any other, give or take one: where
// BalanceLeaders stops when every node is a voter of every shard.
// Otherwise its error says how the leaders stand.
func EvenLeaders(leaders, nodes []string) error {
	led := make(map[string]int, len(nodes))
	for _, n := range nodes {
		led[n] = 0
	}
	for i, l := range leaders {
		if _, ok := led[l]; !ok {
			return fmt.Errorf("shard %d is led by %q, not one of %v", i, l, nodes)
		}
		led[l]++
	}
	lo, hi := len(leaders), 0
	for _, c := range led {
		lo, hi = min(lo, c), max(hi, c)
	}
	if hi-lo > 1 {
		return fmt.Errorf("uneven leaders: %v", led)
	}
	return nil
}
