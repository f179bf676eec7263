// coppice: a server's first follower state after a start may have a
// shorter heartbeat timeout (Config.FirstHeartbeatTimeout).

package raft

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// firstWithin bounds the wait for a leader among servers whose first
// heartbeat timeout is 200 ms (so they stand within 400 ms) and whose
// other timers are 10 s.
const firstWithin = 2 * time.Second

// Three voters started together on their stores elect a leader within
// the first heartbeat timeout, not the 10 s one. Without the option, or
// without pre-vote, they do not.
func TestRaft_FirstHeartbeatTimeoutColdStart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		first   time.Duration
		noPre   bool
		leading bool
	}{
		{"option set", 200 * time.Millisecond, false, true},
		{"option unset", 0, false, false},
		{"pre-vote disabled", 200 * time.Millisecond, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := slowConfig(t)
			conf.FirstHeartbeatTimeout, conf.PreVoteDisabled = tc.first, tc.noPre
			c := MakeCluster(3, t, conf)
			defer c.Close()
			l := leaderAmong(c.rafts, firstWithin)
			switch {
			case tc.leading && l == nil:
				t.Fatalf("no leader within %v", firstWithin)
			case !tc.leading && l != nil:
				t.Fatalf("%s leads within %v, before a 10 s heartbeat timeout", l.localID, firstWithin)
			case l != nil:
				if err := l.Apply([]byte("x"), time.Second).Error(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// A follower restarted alone stands after its first heartbeat timeout if
// its leader has not reached it by then; the other voters refuse its
// pre-vote, so the leader keeps its leadership and term, and the restarted
// server follows it again once it hears from it.
func TestRaft_FirstHeartbeatTimeoutLiveLeader(t *testing.T) {
	first := func(conf *Config) { conf.FirstHeartbeatTimeout = 200 * time.Millisecond }
	c, leader, followers := slowCluster(t, first)
	defer c.Close()
	if err := leader.Apply([]byte("before"), time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	term := leader.getCurrentTerm()

	asked := make(chan Observation, 16)
	followers[1].RegisterObserver(NewObserver(asked, false, func(o *Observation) bool {
		_, ok := o.Data.(RequestPreVoteRequest)
		return ok
	}))

	// Restart a follower, cut off from the leader (not from the other
	// follower) so that it stands before the leader reaches it.
	f := followers[0]
	i := 1
	if c.rafts[i] != f {
		t.Fatal("the first follower is not the cluster's second server")
	}
	if err := f.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	conf := f.config()
	_, trans := NewInmemTransport(f.localAddr)
	c.trans[i] = trans
	c.FullyConnect()
	trans.Disconnect(leader.localAddr)
	c.trans[0].Disconnect(f.localAddr)
	var out lockedBuffer
	conf.Logger = hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Warn})
	r, err := NewRaft(&conf, c.fsms[i], c.stores[i], c.stores[i], c.snaps[i], trans)
	if err != nil {
		t.Fatal(err)
	}
	c.rafts[i] = r

	deadline := time.After(firstWithin)
	for r.State() != Candidate {
		select {
		case <-deadline:
			t.Fatalf("the restarted follower did not stand within %v: %v", firstWithin, r.State())
		case <-time.After(5 * time.Millisecond):
		}
	}
	// Its pre-vote reaches the other follower, which refuses it (it has a
	// leader; the terms below show that nothing was granted).
	select {
	case <-asked:
	case <-time.After(firstWithin):
		t.Fatal("the other follower was not asked for a pre-vote")
	}

	c.FullyConnect()
	followsAgain(t, r, leader.localID, "the restarted server following the leader again")
	if leader.State() != Leader || leader.getCurrentTerm() != term || r.getCurrentTerm() != term {
		t.Fatalf("leader %v in term %d, restarted server in term %d; want the leader's term %d unchanged",
			leader.State(), leader.getCurrentTerm(), r.getCurrentTerm(), term)
	}
	if err := leader.Apply([]byte("after"), time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	// Standing at the start's first timeout is no warning: the leader may
	// not have reached it yet, and pre-vote makes asking harmless.
	if strings.Contains(out.String(), "heartbeat timeout reached") {
		t.Fatalf("the restarted server warned of its first heartbeat timeout:\n%s", out.String())
	}
}
