package cluster

import (
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/messages"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

func TestWALBridgeable(t *testing.T) {
	for _, c := range []struct {
		target, first uint64
		want          bool
	}{
		{0, 1, true},    // the whole log is there
		{10, 11, true},  // the next entry is the first held
		{10, 5, true},   // overlap
		{10, 12, false}, // entry 11 is gone: a gap
		{0, 100, false},
		{50, 0, false}, // no log: only a snapshot can tell
	} {
		if got := WALBridgeable(c.target, c.first); got != c.want {
			t.Errorf("WALBridgeable(%d, %d) = %v, want %v", c.target, c.first, got, c.want)
		}
	}
	if NeedsResync(100, 500, 100) {
		t.Error("a target at the leader's last index needs no resync")
	}
	if !NeedsResync(10, 500, 900) {
		t.Error("a target behind the leader's first index needs a resync")
	}
}

func TestCheckRemoval(t *testing.T) {
	why := map[string]string{"d": "failed in gossip", "e": "silent for 3s"}
	down := func(n string) string { return why[n] }
	if err := CheckRemoval("shard 0", []string{"a", "b", "c"}, "c", down); err != nil {
		t.Errorf("3 voters, all up, remove one: %v", err)
	}
	err := CheckRemoval("shard 0", []string{"a", "b", "d"}, "a", down)
	if !errors.Is(err, ErrQuorum) || !strings.Contains(err.Error(), "1 are up (d failed in gossip)") {
		t.Errorf("remove a live voter with another dead: got %v, want ErrQuorum naming d", err)
	}
	// One down in gossip, one its leader does not hear from: of 4 left,
	// 2 are up, not a majority.
	err = CheckRemoval("shard 1", []string{"a", "b", "c", "d", "e"}, "c", down)
	if !errors.Is(err, ErrQuorum) || !strings.Contains(err.Error(), "d failed in gossip; e silent for 3s") {
		t.Errorf("remove a live voter of 5 with two down: got %v, want ErrQuorum naming d and e", err)
	}
	if err := CheckRemoval("shard 1", []string{"a", "b", "c", "d", "e"}, "d", down); err != nil {
		t.Errorf("removing a down voter of 5 keeps quorum: %v", err)
	}
	if err := CheckRemoval("shard 0", []string{"a", "b", "d"}, "d", down); err != nil {
		t.Errorf("removing the dead voter keeps quorum: %v", err)
	}
	if err := CheckRemoval("shard 0", []string{"a"}, "a", down); !errors.Is(err, ErrLastVoter) {
		t.Errorf("last voter: got %v", err)
	}
	if err := CheckRemoval("shard 0", []string{"a", "d"}, "x", down); err != nil {
		t.Errorf("a non-voter never counts: %v", err)
	}
}

func apply(t *testing.T, s *State, index uint64, c *messages.SystemCommand) any {
	t.Helper()
	b, err := proto.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return s.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: b})
}

func TestStateIsIdempotent(t *testing.T) {
	s := NewState()
	init := &messages.SystemCommand{Cmd: &messages.SystemCommand_Init{Init: &messages.InitCluster{ClusterId: "c1", Shards: 4,
		First: &messages.ClusterMember{Name: "n1"}}}}
	if r := apply(t, s, 1, init); r != nil {
		t.Fatal(r)
	}
	if r := apply(t, s, 2, init); r != nil {
		t.Fatalf("the same init again: %v", r)
	}
	other := &messages.SystemCommand{Cmd: &messages.SystemCommand_Init{Init: &messages.InitCluster{ClusterId: "c2", Shards: 4}}}
	if r, _ := apply(t, s, 3, other).(error); !errors.Is(r, ErrAlreadyInited) {
		t.Fatalf("another cluster id: %v", r)
	}
	add := &messages.SystemCommand{Cmd: &messages.SystemCommand_PutOp{PutOp: &messages.MembershipOp{Kind: messages.OpKind_ADD_NODE,
		Node: &messages.ClusterMember{Name: "n2"}}}}
	id1, _ := apply(t, s, 4, add).(uint64)
	add.GetPutOp().Id = 0
	id2, _ := apply(t, s, 5, add).(uint64)
	if id1 == 0 || id1 != id2 {
		t.Fatalf("adding n2 twice: op %d then %d, want the same op", id1, id2)
	}
	done := &messages.SystemCommand{Cmd: &messages.SystemCommand_ShardDone{ShardDone: &messages.ShardDone{Op: id1, Shard: 2}}}
	apply(t, s, 6, done)
	apply(t, s, 7, done)
	if m := s.Member("n1"); m == nil || m.Name != "n1" {
		t.Fatalf("Member(n1) = %v", m)
	} else if m.Name = "changed"; s.Member("n1") == nil {
		t.Fatal("Member handed out the state's own record: changing it changed the state")
	}
	if m := s.Member("n9"); m != nil {
		t.Fatalf("Member(n9) = %v, want nil", m)
	}
	st := s.Get()
	if len(st.Ops) != 1 || len(st.Ops[0].DoneShards) != 1 || st.ClusterId != "c1" || len(st.Members) != 1 {
		t.Fatalf("state %v", st)
	}
	if r, _ := s.Apply(&raft.Log{Index: 8, Type: raft.LogCommand, Data: []byte{0xff, 0xff}}).(error); !errors.Is(r, ErrBadCommand) {
		t.Fatalf("garbage entry: %v", r)
	}
	if !proto.Equal(s.Get(), st) {
		t.Fatal("a bad entry changed the state")
	}

	// A snapshot restores the same state.
	snap, _ := s.Snapshot()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	s2 := NewState()
	if err := s2.Restore(sink); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(s2.Get(), st) {
		t.Fatalf("restored %v, want %v", s2.Get(), st)
	}
}

type memSink struct{ b []byte }

func (m *memSink) Write(p []byte) (int, error) { m.b = append(m.b, p...); return len(p), nil }
func (m *memSink) Read(p []byte) (int, error) {
	if len(m.b) == 0 {
		return 0, errEOF
	}
	n := copy(p, m.b)
	m.b = m.b[n:]
	return n, nil
}
func (m *memSink) Close() error  { return nil }
func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }

var errEOF = io.EOF

func TestTombstones(t *testing.T) {
	st := &messages.ClusterState{}
	for i := 0; i < 2; i++ {
		Step(st, &messages.SystemCommand{Cmd: &messages.SystemCommand_Tombstone{Tombstone: "n2"}})
	}
	if len(st.Removed) != 1 || st.Removed[0] != "n2" {
		t.Fatalf("removed %v after two tombstones for n2", st.Removed)
	}
	Step(st, &messages.SystemCommand{Cmd: &messages.SystemCommand_ClearTombstone{ClearTombstone: "n2"}})
	if len(st.Removed) != 0 {
		t.Fatalf("removed %v after clearing n2", st.Removed)
	}
}

func TestCopyCheaper(t *testing.T) {
	for _, c := range []struct {
		target, first, last, logBytes, dataBytes uint64
		want                                     bool
	}{
		{0, 1, 1000, 1000 << 20, 600 << 20, true},     // replay 1000 MiB, copy 600 MiB
		{0, 1, 1000, 200 << 20, 600 << 20, true},      // replay 200 MiB costs as 800 MiB of copy
		{0, 901, 1000, 100 << 20, 600 << 20, false},   // replay 100 MiB: as 400 MiB of copy
		{900, 1, 1000, 1000 << 20, 600 << 20, false},  // a target with data replays
		{0, 1, 1000, 1000 << 20, 32 << 20, true},      // compressed data: replay 1000 MiB, copy 32 MiB
		{0, 1, 1000, 40 << 20, 8 << 20, false},        // replay 40 MiB: quick either way
		{0, 1, 1000, 10 << 20, 600 << 20, false},      // small entries: replay 10 MiB
		{1000, 1, 1000, 1000 << 20, 600 << 20, false}, // caught up
		{0, 0, 0, 0, 0, false},                        // empty log
		{0, 1, 1000, 1000 << 20, 0, false},            // no data
	} {
		if got := CopyCheaper(c.target, c.first, c.last, c.logBytes, c.dataBytes); got != c.want {
			t.Errorf("CopyCheaper(%d, %d, %d, %d, %d) = %v, want %v", c.target, c.first, c.last, c.logBytes, c.dataBytes, got, c.want)
		}
	}
}

func TestDueRemoval(t *testing.T) {
	now := time.Unix(1000, 0)
	delay := time.Minute
	members := func(names ...string) []*messages.ClusterMember {
		var out []*messages.ClusterMember
		for _, n := range names {
			out = append(out, &messages.ClusterMember{Name: n})
		}
		return out
	}
	op := func(kind messages.OpKind, node string) *messages.MembershipOp {
		return &messages.MembershipOp{Id: 7, Kind: kind, Node: &messages.ClusterMember{Name: node}}
	}
	for _, c := range []struct {
		name    string
		st      *messages.ClusterState
		down    map[string]time.Duration // how long each has been down
		want    string                   // "" for none
		wantID  uint64                   // the op id the removal replaces (an abandoned join's)
		syncing bool                     // a sync of op 7 runs
	}{
		{"all up", &messages.ClusterState{Members: members("a", "b", "c")}, nil, "", 0, false},
		{"down less than the delay", &messages.ClusterState{Members: members("a", "b", "c")},
			map[string]time.Duration{"c": delay - time.Second}, "", 0, false},
		{"down past the delay", &messages.ClusterState{Members: members("a", "b", "c")},
			map[string]time.Duration{"c": delay}, "c", 0, false},
		{"never self", &messages.ClusterState{Members: members("a", "b", "c")},
			map[string]time.Duration{"a": 2 * delay}, "", 0, false},
		{"the one down longest first", &messages.ClusterState{Members: members("a", "b", "c", "d", "e")},
			map[string]time.Duration{"b": 2 * delay, "c": 3 * delay, "d": 3 * delay}, "c", 0, false},
		{"one removal at a time", &messages.ClusterState{Members: members("a", "b", "c", "d", "e"),
			Ops: []*messages.MembershipOp{op(messages.OpKind_REMOVE_NODE, "d")}},
			map[string]time.Duration{"c": 2 * delay, "d": 2 * delay}, "", 0, false},
		{"never a member being promoted while a sync to it runs", &messages.ClusterState{Members: members("a", "b", "c", "d"),
			Ops: []*messages.MembershipOp{op(messages.OpKind_ADD_NODE, "c")}},
			map[string]time.Duration{"c": 2 * delay, "d": delay}, "d", 0, true},
		{"a member being promoted, down past the delay: its promotion is abandoned", &messages.ClusterState{Members: members("a", "b", "c", "d"),
			Ops: []*messages.MembershipOp{op(messages.OpKind_ADD_NODE, "c")}},
			map[string]time.Duration{"c": 2 * delay, "d": delay}, "c", 7, false},
		{"a node not a member is not removed", &messages.ClusterState{Members: members("a", "b")},
			map[string]time.Duration{"x": 2 * delay}, "", 0, false},
		{"a joining node down past the delay: its join is abandoned", &messages.ClusterState{Members: members("a", "b", "c"),
			Ops: []*messages.MembershipOp{op(messages.OpKind_ADD_NODE, "d")}},
			map[string]time.Duration{"d": delay}, "d", 7, false},
		{"a joining node down less than the delay", &messages.ClusterState{Members: members("a", "b", "c"),
			Ops: []*messages.MembershipOp{op(messages.OpKind_ADD_NODE, "d")}},
			map[string]time.Duration{"d": delay - time.Second}, "", 0, false},
		{"never a joining node being synced", &messages.ClusterState{Members: members("a", "b", "c"),
			Ops: []*messages.MembershipOp{op(messages.OpKind_ADD_NODE, "d")}},
			map[string]time.Duration{"d": 2 * delay}, "", 0, true},
		{"a joiner down longer goes before a member", &messages.ClusterState{Members: members("a", "b", "c"),
			Ops: []*messages.MembershipOp{op(messages.OpKind_ADD_NODE, "d")}},
			map[string]time.Duration{"c": delay, "d": 2 * delay}, "d", 7, false},
		{"a member down longer goes before a joiner", &messages.ClusterState{Members: members("a", "b", "c"),
			Ops: []*messages.MembershipOp{op(messages.OpKind_ADD_NODE, "d")}},
			map[string]time.Duration{"c": 3 * delay, "d": 2 * delay}, "c", 0, false},
		{"no join abandoned while a removal is under way", &messages.ClusterState{Members: members("a", "b", "c"),
			Ops: []*messages.MembershipOp{op(messages.OpKind_ADD_NODE, "d"), {Id: 8, Kind: messages.OpKind_REMOVE_NODE, Node: &messages.ClusterMember{Name: "c"}}}},
			map[string]time.Duration{"d": 2 * delay}, "", 0, false},
	} {
		downSince := map[string]time.Time{}
		for n, d := range c.down {
			downSince[n] = now.Add(-d)
		}
		syncing := func(op uint64) bool { return c.syncing && op == 7 }
		got := DueRemoval(c.st, "a", downSince, now, delay, syncing)
		if got.GetNode().GetName() != c.want || got.GetId() != c.wantID {
			t.Errorf("%s: due %q (op %d), want %q (op %d)", c.name, got.GetNode().GetName(), got.GetId(), c.want, c.wantID)
		}
		if got != nil && (got.Kind != messages.OpKind_REMOVE_NODE || got.Cause != "failed" || got.StartedMs != now.UnixMilli()) {
			t.Errorf("%s: due %v, want a removal with cause failed started now", c.name, got)
		}
	}
}

func TestBalanceLeaders(t *testing.T) {
	three := []string{"n1", "n2", "n3"}
	all := func(n int) [][]string {
		v := make([][]string, n)
		for i := range v {
			v[i] = three
		}
		return v
	}
	for _, c := range []struct {
		name    string
		leaders []string
		voters  [][]string
		want    LeaderMove
		ok      bool
	}{
		{"all on the first node", []string{"n1", "n1", "n1", "n1"}, all(4), LeaderMove{0, "n1", "n2"}, true},
		{"the idlest node first", []string{"n1", "n2", "n1", "n1"}, all(4), LeaderMove{0, "n1", "n3"}, true},
		{"even within one", []string{"n1", "n2", "n3", "n1"}, all(4), LeaderMove{}, false},
		{"the busiest source first", []string{"n1", "n2", "n2", "n2", "n1", "n1", "n1"}, all(7), LeaderMove{0, "n1", "n3"}, true},
		{"a shard without a leader", []string{"n1", "", "n1", "n1"}, all(4), LeaderMove{}, false},
		{"a leader outside the voters", []string{"n1", "n4", "n1", "n1"}, all(4), LeaderMove{}, false},
		{"a sole voter", []string{"n1", "n1"}, [][]string{{"n1"}, {"n1"}}, LeaderMove{}, false},
		{"only to a voter of the shard", []string{"n1", "n1", "n1"},
			[][]string{{"n1"}, {"n1", "n2"}, {"n1", "n2"}}, LeaderMove{1, "n1", "n2"}, true},
		{"a dead node is left out by the caller", []string{"n1", "n1", "n1", "n1"},
			[][]string{{"n1", "n3"}, {"n1", "n3"}, {"n1", "n3"}, {"n1", "n3"}}, LeaderMove{0, "n1", "n3"}, true},
		{"mismatched lengths", []string{"n1", "n1"}, all(3), LeaderMove{}, false},
	} {
		got, ok := BalanceLeaders(c.leaders, c.voters)
		if ok != c.ok || got != c.want {
			t.Errorf("%s: BalanceLeaders(%v) = %+v, %v; want %+v, %v", c.name, c.leaders, got, ok, c.want, c.ok)
		}
	}
}

func TestEvenLeaders(t *testing.T) {
	nodes := []string{"n1", "n2", "n3"}
	for _, c := range []struct {
		leaders []string
		even    bool
	}{
		{[]string{"n1", "n2", "n3", "n1"}, true},
		{[]string{"n1", "n2"}, true}, // n3 leads none: within one
		{[]string{"n1", "n1", "n2", "n3", "n1"}, false},
		{[]string{"n1", "n1", "n2", "n2"}, false}, // n3 leads none, two lead two
		{[]string{"n1", "", "n2"}, false},
		{[]string{"n1", "n4", "n2"}, false},
	} {
		if err := EvenLeaders(c.leaders, nodes); (err == nil) != c.even {
			t.Errorf("EvenLeaders(%v) = %v, want even %v", c.leaders, err, c.even)
		}
	}
}

// Applying BalanceLeaders' moves one after another evens the leaders out
// (counts within one of each other) in at most as many moves as shards,
// and each move goes from a shard's leader to one of its voters.
func TestBalanceLeadersConverges(t *testing.T) {
	nodes := []string{"a", "b", "c", "d", "e"}
	for seed := range 200 {
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		n, shards := 2+rng.IntN(4), 1+rng.IntN(16)
		leaders, voters := make([]string, shards), make([][]string, shards)
		for i := range shards {
			voters[i] = nodes[:n]
			leaders[i] = nodes[rng.IntN(min(n, 1+rng.IntN(2)))] // mostly the first node
		}
		moves := 0
		for {
			m, ok := BalanceLeaders(leaders, voters)
			if !ok {
				break
			}
			if leaders[m.Shard] != m.From || !slices.Contains(voters[m.Shard], m.To) {
				t.Fatalf("seed %d: move %+v with leaders %v", seed, m, leaders)
			}
			leaders[m.Shard] = m.To
			if moves++; moves > shards {
				t.Fatalf("seed %d: more than %d moves: %v", seed, shards, leaders)
			}
		}
		if err := EvenLeaders(leaders, nodes[:n]); err != nil {
			t.Fatalf("seed %d: %d nodes, %d shards: stopped at %v: %v", seed, n, shards, leaders, err)
		}
	}
}

func TestMoved(t *testing.T) {
	at := func(name, port string) *messages.ClusterMember {
		return &messages.ClusterMember{Name: name, Role: messages.Role_ROLE_VOTER, AddedMs: 5,
			ClusterAddr: "10.0.0.1:" + port + "1", ClientAddr: "10.0.0.1:" + port + "0",
			HttpAddr: "10.0.0.1:" + port + "3", GossipAddr: "10.0.0.1:" + port + "2"}
	}
	gossip := func(name, port string) *messages.ClusterMember {
		m := at(name, port)
		m.Role, m.AddedMs = messages.Role_ROLE_UNSPECIFIED, 0 // gossip tells neither
		return m
	}
	op := func(id uint64, kind messages.OpKind, node *messages.ClusterMember) *messages.MembershipOp {
		return &messages.MembershipOp{Id: id, Kind: kind, Node: node}
	}
	gossipOnly := gossip("b", "72")
	gossipOnly.ClientAddr = "10.0.0.9:6379"
	for _, c := range []struct {
		name   string
		st     *messages.ClusterState
		now    *messages.ClusterMember
		want   *messages.ClusterMember // nil: not moved
		wantOp uint64
	}{
		{"same addresses", &messages.ClusterState{Members: []*messages.ClusterMember{at("a", "71"), at("b", "72")}},
			gossip("b", "72"), nil, 0},
		{"a member at a new cluster address", &messages.ClusterState{Members: []*messages.ClusterMember{at("a", "71"), at("b", "72")}},
			gossip("b", "82"), at("b", "82"), 0},
		{"a member at a new client address only", &messages.ClusterState{Members: []*messages.ClusterMember{at("b", "72")}},
			gossipOnly, func() *messages.ClusterMember { m := at("b", "72"); m.ClientAddr = "10.0.0.9:6379"; return m }(), 0},
		{"not announced yet", &messages.ClusterState{Members: []*messages.ClusterMember{at("b", "72")}},
			&messages.ClusterMember{Name: "b"}, nil, 0},
		{"unknown to the state", &messages.ClusterState{Members: []*messages.ClusterMember{at("a", "71")}},
			gossip("b", "82"), nil, 0},
		{"a joining node: its add op's node", &messages.ClusterState{Members: []*messages.ClusterMember{at("a", "71")},
			Ops: []*messages.MembershipOp{op(4, messages.OpKind_ADD_NODE, at("b", "72"))}},
			gossip("b", "82"), at("b", "82"), 4},
		{"a node being removed is left alone", &messages.ClusterState{Members: []*messages.ClusterMember{at("a", "71"), at("b", "72")},
			Ops: []*messages.MembershipOp{op(4, messages.OpKind_REMOVE_NODE, at("b", "72"))}},
			gossip("b", "82"), nil, 0},
		{"a member with an add op (a promotion, or a join ending): the op's node first", &messages.ClusterState{Members: []*messages.ClusterMember{at("b", "72")},
			Ops: []*messages.MembershipOp{op(4, messages.OpKind_ADD_NODE, at("b", "72"))}},
			gossip("b", "82"), at("b", "82"), 4},
		{"a member being demoted: the member", &messages.ClusterState{Members: []*messages.ClusterMember{at("b", "72")},
			Ops: []*messages.MembershipOp{op(4, messages.OpKind_DEMOTE_NODE, at("b", "72"))}},
			gossip("b", "82"), at("b", "82"), 0},
		{"a member with an add op: then the member", &messages.ClusterState{Members: []*messages.ClusterMember{at("b", "72")},
			Ops: []*messages.MembershipOp{op(4, messages.OpKind_ADD_NODE, at("b", "82"))}},
			gossip("b", "82"), at("b", "82"), 0},
	} {
		before := proto.Clone(c.st)
		got, gotOp := Moved(c.st, c.now)
		if !proto.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
		if id := gotOp.GetId(); id != c.wantOp {
			t.Errorf("%s: op %d, want %d", c.name, id, c.wantOp)
		}
		if !proto.Equal(before, c.st) {
			t.Errorf("%s: the state changed: %v", c.name, c.st)
		}
	}
}

// PlanLeaderMoves gives the moves BalanceLeaders gives one after another,
// at most max, each of another shard; passes of them even the leaders out
// in about shards/max passes.
func TestPlanLeaderMoves(t *testing.T) {
	nodes := []string{"a", "b", "c"}
	leaders, voters := make([]string, 64), make([][]string, 64)
	for i := range leaders {
		leaders[i], voters[i] = "a", nodes
	}
	if got := PlanLeaderMoves(leaders, voters, 0); len(got) != 0 {
		t.Fatalf("max 0: %v", got)
	}
	passes := 0
	for {
		moves := PlanLeaderMoves(leaders, voters, 8)
		if len(moves) == 0 {
			break
		}
		if len(moves) > 8 {
			t.Fatalf("%d moves, max 8", len(moves))
		}
		shards := map[int]bool{}
		for _, m := range moves {
			if shards[m.Shard] || leaders[m.Shard] != m.From || !slices.Contains(voters[m.Shard], m.To) {
				t.Fatalf("pass %d: move %+v with leaders %v", passes, m, leaders)
			}
			shards[m.Shard] = true
			leaders[m.Shard] = m.To
		}
		if passes++; passes > 6 {
			t.Fatalf("more than 6 passes of 8 for 64 shards: %v", leaders)
		}
	}
	if err := EvenLeaders(leaders, nodes); err != nil {
		t.Fatal(err)
	}
	if passes < 6 {
		t.Fatalf("%d passes moved the 42 shards 8 at a time", passes)
	}
}

func TestNewDataDir(t *testing.T) {
	member := func(dd string) *messages.ClusterMember {
		return &messages.ClusterMember{Name: "b", Role: messages.Role_ROLE_VOTER, ClusterAddr: "10.0.0.1:7380", AddedMs: 5, DataDirId: dd}
	}
	seen := func(dd string) *messages.ClusterMember { return &messages.ClusterMember{Name: "b", DataDirId: dd} }
	state := func(rec *messages.ClusterMember, ops ...*messages.MembershipOp) *messages.ClusterState {
		return &messages.ClusterState{Members: []*messages.ClusterMember{{Name: "a", DataDirId: "a1"}, rec}, Ops: ops}
	}
	for _, c := range []struct {
		name string
		st   *messages.ClusterState
		at   *messages.ClusterMember
		want *messages.ClusterMember // nil: nothing to record
		was  string
	}{
		{"the same data dir", state(member("d1")), seen("d1"), nil, ""},
		{"a new data dir", state(member("d1")), seen("d2"), member("d2"), "d1"},
		{"a record from before the IDs: filled in", state(member("")), seen("d1"), member("d1"), ""},
		{"gossip gives no ID (a node from before them)", state(member("d1")), seen(""), nil, ""},
		{"not a member", state(member("d1")), &messages.ClusterMember{Name: "c", DataDirId: "d9"}, nil, ""},
		{"an op under way for it", state(member("d1"), &messages.MembershipOp{Id: 3, Kind: messages.OpKind_DEMOTE_NODE, Node: seen("d1")}),
			seen("d2"), nil, ""},
	} {
		got, was := NewDataDir(c.st, c.at)
		if !proto.Equal(got, c.want) || (c.want == nil) != (got == nil) || was != c.was {
			t.Errorf("%s: got %v, %q; want %v, %q", c.name, got, was, c.want, c.was)
		}
	}
}
