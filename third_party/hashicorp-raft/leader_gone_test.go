// coppice: a follower told that its leader's process is gone stands at
// once (leader_gone.go).

package raft

import (
	"testing"
	"time"
)

// slowCluster is three voters whose timers are long (heartbeat and
// election 10 s): without LeaderGone no follower stands within
// goneWithin. The first leads at once (SoleVoterStandsAtOnce) and adds
// the others.
func slowCluster(t *testing.T) (*cluster, *Raft, []*Raft) {
	t.Helper()
	conf := inmemConfig(t)
	conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 10*time.Second, 10*time.Second, 5*time.Second
	conf.SoleVoterStandsAtOnce = true
	c := MakeClusterNoBootstrap(3, t, conf)
	leader := c.rafts[0]
	if err := leader.BootstrapCluster(Configuration{Servers: []Server{{Suffrage: Voter, ID: leader.localID, Address: leader.localAddr}}}).Error(); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, leader, "bootstrapped alone")
	for _, r := range c.rafts[1:] {
		if err := leader.AddVoter(r.localID, r.localAddr, 0, 5*time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(5 * time.Second)
	for _, r := range c.rafts[1:] {
		for {
			if _, id := r.LeaderWithID(); id == leader.localID {
				break
			}
			select {
			case <-deadline:
				t.Fatal("the followers did not hear from the leader within 5s")
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return c, leader, c.rafts[1:]
}

// goneWithin bounds the wait for a new leader once the old one is told
// gone: its followers stand within HeartbeatTimeout/8 (1.25 s here), not
// after 10 s.
const goneWithin = 4 * time.Second

func TestRaft_LeaderGoneElectsAtOnce(t *testing.T) {
	c, leader, followers := slowCluster(t)
	defer c.Close()
	if err := leader.Apply([]byte("before"), time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	term := leader.getCurrentTerm()
	_, id := leader.LeaderWithID()
	if err := leader.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	for _, r := range followers {
		r.LeaderGone(id)
	}
	deadline := time.After(goneWithin)
	for {
		for _, r := range followers {
			if r.State() == Leader {
				if r.getCurrentTerm() <= term {
					t.Fatalf("new leader in term %d, the old one's was %d", r.getCurrentTerm(), term)
				}
				if err := r.Apply([]byte("after"), time.Second).Error(); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
		select {
		case <-deadline:
			t.Fatalf("no leader %v after the old one was told gone (heartbeat timeout 10s)", goneWithin)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Told of a server that is not its leader, a follower changes nothing;
// told wrongly that its live leader is gone, it stands, but pre-vote keeps
// the group's leader and term.
func TestRaft_LeaderGoneOnlyItsLeader(t *testing.T) {
	c, leader, followers := slowCluster(t)
	defer c.Close()
	term := leader.getCurrentTerm()
	_, id := leader.LeaderWithID()
	followers[0].LeaderGone(followers[1].localID)
	followers[1].LeaderGone(id)
	// The wrongly told follower stands within HeartbeatTimeout/8 (1.25
	// s here), and stays a candidate until the leader's next heartbeat
	// (1-2 s here); the group is watched past that (goneWithin).
	deadline := time.After(goneWithin)
	stood := false
	for {
		select {
		case <-deadline:
			if !stood {
				t.Fatal("the follower told its live leader is gone never stood")
			}
			if err := leader.Apply([]byte("after"), time.Second).Error(); err != nil {
				t.Fatal(err)
			}
			for i, r := range followers {
				if _, l := r.LeaderWithID(); l != id {
					t.Fatalf("follower %d's leader is %q, not %q", i, l, id)
				}
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
		if leader.State() != Leader || leader.getCurrentTerm() != term {
			t.Fatalf("leader %v in term %d, was Leader in term %d", leader.State(), leader.getCurrentTerm(), term)
		}
		if s := followers[0].State(); s != Follower {
			t.Fatalf("follower told of another follower: %v", s)
		}
		stood = stood || followers[1].State() == Candidate
	}
}

// The follower's end of a connection that carried AppendEntries reports
// its sender when the far end closes it; one that carried none, and the
// follower's own shutdown, report nothing.
func TestNetworkTransport_OnAppenderClosed(t *testing.T) {
	closed := make(chan [2]string, 4)
	follower, err := NewTCPTransportWithConfig("127.0.0.1:0", nil, &NetworkTransportConfig{
		MaxPool: 2, Timeout: time.Second, Logger: newTestLogger(t),
		OnAppenderClosed: func(id ServerID, addr ServerAddress) { closed <- [2]string{string(id), string(addr)} },
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for rpc := range follower.Consumer() {
			switch rpc.Command.(type) {
			case *AppendEntriesRequest:
				rpc.Respond(&AppendEntriesResponse{Success: true}, nil)
			default:
				rpc.Respond(&RequestVoteResponse{}, nil)
			}
		}
	}()
	defer follower.Close()
	none := func(what string) {
		t.Helper()
		select {
		case c := <-closed:
			t.Fatalf("%s: reported %v", what, c)
		case <-time.After(200 * time.Millisecond):
		}
	}

	// A candidate's vote request alone: nothing.
	cand, err := NewTCPTransportWithConfig("127.0.0.1:0", nil, &NetworkTransportConfig{MaxPool: 2, Timeout: time.Second, Logger: newTestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var vr RequestVoteResponse
	if err := cand.RequestVote("f", follower.LocalAddr(), &RequestVoteRequest{RPCHeader: RPCHeader{ID: []byte("c"), Addr: []byte(cand.LocalAddr())}, Term: 2}, &vr); err != nil {
		t.Fatal(err)
	}
	cand.CloseStreams() // its pooled connections: as its process's end would
	cand.Close()
	none("a connection with a vote request only")

	// A leader's AppendEntries, then its transport closed: reported once,
	// with its ID and address.
	leader, err := NewTCPTransportWithConfig("127.0.0.1:0", nil, &NetworkTransportConfig{MaxPool: 2, Timeout: time.Second, Logger: newTestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	req := makeAppendRPC()
	req.RPCHeader = RPCHeader{ID: []byte("leader"), Addr: []byte(leader.LocalAddr())}
	var resp AppendEntriesResponse
	if err := leader.AppendEntries("f", follower.LocalAddr(), &req, &resp); err != nil {
		t.Fatal(err)
	}
	leader.CloseStreams()
	leader.Close()
	select {
	case c := <-closed:
		if c != [2]string{"leader", string(leader.LocalAddr())} {
			t.Fatalf("reported %v, want leader at %s", c, leader.LocalAddr())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the leader's closed connection was not reported within 5s")
	}
	none("after the one report")

	// Another leader's connection open as the follower shuts down: nothing.
	other, err := NewTCPTransportWithConfig("127.0.0.1:0", nil, &NetworkTransportConfig{MaxPool: 2, Timeout: time.Second, Logger: newTestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	req.RPCHeader = RPCHeader{ID: []byte("other"), Addr: []byte(other.LocalAddr())}
	if err := other.AppendEntries("f", follower.LocalAddr(), &req, &resp); err != nil {
		t.Fatal(err)
	}
	follower.Close()
	other.CloseStreams()
	none("the follower's own shutdown")
}
