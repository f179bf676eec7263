package actors

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testlog"
	"github.com/coppice-kv/coppice/internal/testwait"
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
