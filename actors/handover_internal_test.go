package actors

import (
	"log/slog"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testlog"
	"github.com/hashicorp/raft"
)

// When the follower Raft offers the leadership to cannot take it, the
// hand-over offers it to the other voter.
func TestHandOverTriesEveryVoter(t *testing.T) {
	c := raft.MakeCluster(3, t, nil)
	defer c.Close()
	leader := c.Leader()
	if err := leader.Apply([]byte("x"), 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	// Both followers hold the entry: Raft's pick is the first of them in
	// the configuration, which is cut off now.
	f := leader.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	_, self := leader.LeaderWithID()
	var voters []raft.Server
	for _, s := range f.Configuration().Servers {
		if s.ID != self {
			voters = append(voters, s)
		}
	}
	last := leader.LastIndex()
	for _, fl := range c.Followers() {
		for deadline := time.Now().Add(5 * time.Second); fl.LastIndex() < last; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("a follower holds %d of %d entries after 5s", fl.LastIndex(), last)
			}
		}
	}
	c.Disconnect(voters[0].Address)
	var out testlog.Buffer
	handOver(leader, slog.New(slog.NewTextHandler(&out, nil)), "shard 0")
	if leader.State() == raft.Leader {
		t.Fatalf("still the leader after the hand-over; log:\n%s", out.String())
	}
	var got raft.ServerID
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, got = leader.LeaderWithID(); got != "" && got != self {
			break
		}
	}
	if got != voters[1].ID {
		t.Fatalf("the leadership went to %q, want %s (the voter that can take it); log:\n%s", got, voters[1].ID, out.String())
	}
}
