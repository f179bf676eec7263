package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/internal/testlog"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/transport"
	"github.com/hashicorp/raft"
)

// testGroup is what these tests use of raft.MakeCluster's cluster.
type testGroup interface {
	Disconnect(raft.ServerAddress)
	Followers() []*raft.Raft
}

// leaderOf is the leader of raft.MakeCluster's cluster c, waited for
// (bounded). c.Leader alone fails a test when no election ended within
// its stability window (twice the heartbeat timeout: 105 ms), as a slow
// first election under -race on a busy machine may not.
func leaderOf(t *testing.T, c interface {
	GetInState(raft.RaftState) []*raft.Raft
}) *raft.Raft {
	t.Helper()
	var leader *raft.Raft
	testwait.For(t, 10*time.Second, 10*time.Millisecond, "one leader", func() error {
		in := c.GetInState(raft.Leader)
		if len(in) != 1 {
			return fmt.Errorf("leaders %v", in)
		}
		leader = in[0]
		return nil
	})
	return leader
}

// groupWithAnEntry is a 3-server group that committed an entry: its
// leader, and the other voters in configuration order. It is closed when
// the test ends.
func groupWithAnEntry(t *testing.T) (c testGroup, leader *raft.Raft, voters []raft.Server) {
	rc := raft.MakeCluster(3, t, nil)
	t.Cleanup(rc.Close)
	leader = leaderOf(t, rc)
	if err := leader.Apply([]byte("x"), 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	f := leader.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	_, self := leader.LeaderWithID()
	for _, s := range f.Configuration().Servers {
		if s.ID != self {
			voters = append(voters, s)
		}
	}
	return rc, leader, voters
}

// When the follower Raft offers the leadership to cannot take it, the
// hand-over offers it to the other voter.
func TestHandOverTriesEveryVoter(t *testing.T) {
	c, leader, voters := groupWithAnEntry(t)
	// Both followers hold the entry: Raft's pick is the first of them in
	// the configuration, which is cut off now.
	last := leader.LastIndex()
	for _, fl := range c.Followers() {
		testwait.For(t, 5*time.Second, 10*time.Millisecond, "a follower holding every entry", func() error {
			if n := fl.LastIndex(); n < last {
				return fmt.Errorf("%d of %d", n, last)
			}
			return nil
		})
	}
	c.Disconnect(voters[0].Address)
	var out testlog.Buffer
	handOver(leader, slog.New(slog.NewTextHandler(&out, nil)), "shard 0")
	if leader.State() == raft.Leader {
		t.Fatalf("still the leader after the hand-over; log:\n%s", out.String())
	}
	testwait.For(t, 5*time.Second, 10*time.Millisecond, "the leadership at "+string(voters[1].ID)+", the voter that can take it", func() error {
		if _, got := leader.LeaderWithID(); got != voters[1].ID {
			return fmt.Errorf("leader %q; log:\n%s", got, out.String())
		}
		return nil
	})
}

// A voter the leader has not heard from lately is offered the leadership
// last: the hand-over goes to the other at its first try, not after a
// transfer timeout.
func TestHandOverOffersSilentVotersLast(t *testing.T) {
	c, leader, voters := groupWithAnEntry(t)
	c.Disconnect(voters[0].Address)
	quiet := leader.ReloadableConfig().HeartbeatTimeout / 2
	testwait.For(t, 5*time.Second, 10*time.Millisecond, string(voters[0].ID)+" silent", func() error {
		if d := groupSilence(leader)[string(voters[0].ID)]; d < quiet {
			return fmt.Errorf("silent for %s", d)
		}
		return nil
	})
	var out testlog.Buffer
	handOver(leader, slog.New(slog.NewTextHandler(&out, nil)), "shard 0")
	if !strings.Contains(out.String(), "leadership handed over before stopping") || !strings.Contains(out.String(), "tries=1") {
		t.Fatalf("want the leadership handed over at the first try; log:\n%s", out.String())
	}
	testwait.For(t, 5*time.Second, 10*time.Millisecond, "the leadership at "+string(voters[1].ID), func() error {
		if _, got := leader.LeaderWithID(); got != voters[1].ID {
			return fmt.Errorf("leader %q; log:\n%s", got, out.String())
		}
		return nil
	})
}

// TestHandOverOrder: the voters other than the leader, those heard from
// lately first, the furthest along first within each part; non-voters
// are not offered the leadership.
func TestHandOverOrder(t *testing.T) {
	c := raft.Configuration{Servers: []raft.Server{
		{ID: "a", Suffrage: raft.Voter}, {ID: "self", Suffrage: raft.Voter}, {ID: "b", Suffrage: raft.Voter},
		{ID: "c", Suffrage: raft.Voter}, {ID: "d", Suffrage: raft.Nonvoter}, {ID: "e", Suffrage: raft.Voter},
	}}
	silent := silence{"a": 3 * time.Second, "b": 10 * time.Millisecond, "c": 600 * time.Millisecond, "d": 0}
	matches := map[raft.ServerID]uint64{"a": 90, "b": 50, "c": 80, "d": 100, "e": 70}
	var got []raft.ServerID
	for _, s := range handOverOrder(c, "self", silent, matches, 500*time.Millisecond) {
		got = append(got, s.ID)
	}
	// e is missing from silent: heard from.
	if want := []raft.ServerID{"e", "b", "a", "c"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// A transfer already under way when the node stops (the coordinator's
// balancing, to a voter that cannot take it) is let finish; then the
// hand-over gives the leadership to the voter that can.
func TestHandOverWaitsForATransferUnderWay(t *testing.T) {
	c, leader, voters := groupWithAnEntry(t)
	c.Disconnect(voters[0].Address)
	under := leader.LeadershipTransferToServer(voters[0].ID, voters[0].Address)
	if err := leader.LeadershipTransferToServer(voters[0].ID, voters[0].Address).Error(); !errors.Is(err, raft.ErrLeadershipTransferInProgress) {
		t.Fatalf("a second transfer: %v, want %v", err, raft.ErrLeadershipTransferInProgress)
	}
	var out testlog.Buffer
	handOver(leader, slog.New(slog.NewTextHandler(&out, nil)), "shard 0")
	if err := under.Error(); err == nil {
		t.Fatalf("the transfer to the cut-off voter succeeded")
	}
	testwait.For(t, 5*time.Second, 10*time.Millisecond, "the leadership at "+string(voters[1].ID), func() error {
		if _, got := leader.LeaderWithID(); got != voters[1].ID {
			return fmt.Errorf("leader %q; log:\n%s", got, out.String())
		}
		return nil
	})
}

// A transfer with a max lag is refused, before Raft starts it (the group
// would take no writes until it ended), when its target's log lacks more
// than that many of the leader's entries; a caught-up target passes.
func TestTransferRefusedToAVoterBehind(t *testing.T) {
	c, leader, voters := groupWithAnEntry(t)
	c.Disconnect(voters[0].Address)
	for i := range 20 {
		if err := leader.Apply(fmt.Appendf(nil, "w%d", i), 5*time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	last := leader.LastIndex()
	testwait.For(t, 5*time.Second, 10*time.Millisecond, string(voters[1].ID)+" holding every entry", func() error {
		if m, _ := leader.FollowerMatches(); m[voters[1].ID] < last {
			return fmt.Errorf("match %d of %d", m[voters[1].ID], last)
		}
		return nil
	})
	lag := uint64(10)
	err := notBehind(leader, voters[0].ID, &lag)
	if !errors.Is(err, errBehind) {
		t.Fatalf("transfer to %s, cut off 20 entries ago, with max lag 10: %v, want %v", voters[0].ID, err, errBehind)
	}
	if err := notBehind(leader, voters[1].ID, &lag); err != nil {
		t.Fatalf("transfer to %s, caught up: %v", voters[1].ID, err)
	}
	if err := notBehind(leader, voters[0].ID, nil); err != nil {
		t.Fatalf("transfer with no max lag: %v", err)
	}
	lag = 1000
	if err := notBehind(leader, voters[0].ID, &lag); err != nil {
		t.Fatalf("transfer to %s, 20 entries short, with max lag 1000: %v", voters[0].ID, err)
	}
	if leader.State() != raft.Leader {
		t.Fatal("the leader lost its leadership to a refused transfer")
	}
}

// TestNotMember: a node missing from a configuration with servers is not
// a member; an empty configuration (a group not joined yet) tells
// nothing.
func TestNotMember(t *testing.T) {
	c := raft.Configuration{Servers: []raft.Server{{ID: "n1", Suffrage: raft.Voter}, {ID: "n2", Suffrage: raft.Nonvoter}}}
	for _, tc := range []struct {
		c    raft.Configuration
		self raft.ServerID
		want bool
	}{
		{c, "n1", false}, {c, "n2", false}, {c, "n3", true}, {raft.Configuration{}, "n3", false},
	} {
		if got := notMember(tc.c, tc.self); got != tc.want {
			t.Errorf("notMember(%v, %s) = %v, want %v", tc.c.Servers, tc.self, got, tc.want)
		}
	}
}

// The leader's refusal of a target behind reaches the manager as
// errBehind, which the balancer leaves to a later pass; any other
// refusal is an error of its own.
func TestTransferLeadershipReplies(t *testing.T) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return protoactorLogger(nil) }))
	defer sys.Shutdown()
	rt := &Runtime{Name: "n1", Shards: 2, sys: sys}
	answers := []*messages.TransferLeadershipReply{
		{Error: "behind: n2's log matches the leader's up to index 3 of 5000", Behind: true},
		{Error: "leadership transfer in progress"},
	}
	for shard, a := range answers {
		if _, err := sys.Root.SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
			if _, ok := c.Message().(*messages.TransferLeadership); ok {
				c.Respond(a)
			}
		}), RaftPath(shard)); err != nil {
			t.Fatal(err)
		}
	}
	in := &managerInputs{rt: rt}
	ask := func(shard int) error {
		lag := uint64(leaderMoveLag)
		return in.transferLeadership(context.Background(), transport.Peer{}, shard, &messages.TransferLeadership{ToId: "n2", MaxLag: &lag})
	}
	if err := ask(0); !errors.Is(err, errBehind) || !strings.Contains(err.Error(), answers[0].Error) {
		t.Errorf("refused, behind: %v, want %v with the leader's words", err, errBehind)
	}
	if err := ask(1); err == nil || errors.Is(err, errBehind) || err.Error() != answers[1].Error {
		t.Errorf("refused, busy: %v, want %q and not %v", err, answers[1].Error, errBehind)
	}
}
