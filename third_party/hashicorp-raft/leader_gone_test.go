// coppice: a follower told that its leader's process is gone stands at
// once (leader_gone.go).

package raft

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// slowCluster is three voters whose timers are long (heartbeat and
// election 10 s): without LeaderGone no follower stands within
// goneWithin. The first leads at once (SoleVoterStandsAtOnce) and adds
// the others. tweak, if given, changes the configuration first.
func slowCluster(t *testing.T, tweak ...func(*Config)) (*cluster, *Raft, []*Raft) {
	t.Helper()
	conf := slowConfig(t)
	conf.SoleVoterStandsAtOnce = true
	for _, f := range tweak {
		f(conf)
	}
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
	waitFor(t, "the followers hearing from the leader", func() error {
		for _, r := range c.rafts[1:] {
			if _, id := r.LeaderWithID(); id != leader.localID {
				return fmt.Errorf("%s's leader is %q", r.localID, id)
			}
		}
		return nil
	})
	// And hold the configuration: a follower that knows its leader from
	// a heartbeat alone may not have it yet, and then never stands.
	caughtUp(t, leader, c.rafts[1:])
	return c, leader, c.rafts[1:]
}

// slowConfig is a test configuration whose heartbeat and election
// timeouts are 10 s.
func slowConfig(t *testing.T) *Config {
	conf := inmemConfig(t)
	conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 10*time.Second, 10*time.Second, 5*time.Second
	return conf
}

// goneWithin bounds the watch of a group whose follower was told that its
// live leader is gone: that follower stands at its turn (at once, or after
// HeartbeatTimeout/8: 1.25 s here), not after 10 s.
const goneWithin = 4 * time.Second

// Both followers told at once: the one whose turn is first stands and
// wins the next term, every time (with random waits, two followers could
// stand together and split the vote, costing an election timeout).
func TestRaft_LeaderGoneElectsAtOnce(t *testing.T) {
	for round := range 5 {
		seed := uint64(round) // each group its own order
		c, leader, followers := slowCluster(t, func(conf *Config) { conf.GroupSeed = seed })
		if err := leader.Apply([]byte("before"), time.Second).Error(); err != nil {
			t.Fatal(err)
		}
		caughtUp(t, leader, followers)
		term := leader.getCurrentTerm()
		_, id := leader.LeaderWithID()
		if err := leader.Shutdown().Error(); err != nil {
			t.Fatal(err)
		}
		for _, r := range followers {
			r.LeaderGone(id)
		}
		won := leaderAmong(followers, firstTurnWithin)
		if won == nil {
			t.Fatalf("round %d: no leader %v after the old one was told gone (a second turn comes after HeartbeatTimeout/8, 1.25 s)", round, firstTurnWithin)
		}
		if first := firstTurn(followers, seed); won != first {
			t.Fatalf("round %d: %s leads, not %s whose turn was first", round, won.localID, first.localID)
		}
		if got := won.getCurrentTerm(); got != term+1 {
			t.Fatalf("round %d: new leader in term %d, the old one's was %d: not the next term", round, got, term)
		}
		if err := won.Apply([]byte("after"), time.Second).Error(); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
}

// The follower whose turn is first lacks the leader's last entry: the
// other refuses its pre-vote, stands at its own turn, and wins.
func TestRaft_LeaderGoneNextTurn(t *testing.T) {
	c, leader, followers := slowCluster(t)
	defer c.Close()
	caughtUp(t, leader, followers)
	term := leader.getCurrentTerm()
	_, id := leader.LeaderWithID()
	first := firstTurn(followers, 0)
	c.Disconnect(first.localAddr)
	if err := leader.Apply([]byte("not on the first"), time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if err := leader.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	c.FullyConnect()
	for _, r := range followers {
		r.LeaderGone(id)
	}
	won := leaderAmong(followers, goneWithin)
	switch {
	case won == nil:
		t.Fatalf("no leader %v after the old one was told gone", goneWithin)
	case won == first:
		t.Fatal("the follower without the last entry leads")
	case won.getCurrentTerm() != term+1:
		t.Fatalf("new leader in term %d, the old one's was %d: not the next term", won.getCurrentTerm(), term)
	}
	if err := won.Apply([]byte("after"), time.Second).Error(); err != nil {
		t.Fatal(err)
	}
}

// firstTurn is the follower whose turn to stand comes first once their
// leader is gone: goneTurn's order, the voters but the leader sorted by ID
// and rotated by the group's seed.
func firstTurn(followers []*Raft, seed uint64) *Raft {
	byID := slices.SortedFunc(slices.Values(followers), func(a, b *Raft) int { return strings.Compare(string(a.localID), string(b.localID)) })
	return byID[(len(byID)-int(seed%uint64(len(byID))))%len(byID)]
}

// caughtUp waits until every follower holds the leader's last entry.
func caughtUp(t *testing.T, leader *Raft, followers []*Raft) {
	t.Helper()
	waitFor(t, "the followers holding the leader's last entry", func() error {
		for _, r := range followers {
			if r.LastIndex() < leader.LastIndex() {
				return fmt.Errorf("%s's last index %d, the leader's %d", r.localID, r.LastIndex(), leader.LastIndex())
			}
		}
		return nil
	})
}

// followsAgain waits until r follows leader.
func followsAgain(t *testing.T, r *Raft, leader ServerID, what string) {
	t.Helper()
	waitFor(t, what, func() error {
		if _, id := r.LeaderWithID(); id != leader || r.State() != Follower {
			return fmt.Errorf("%v, its leader %q", r.State(), id)
		}
		return nil
	})
}

// firstTurnWithin bounds the wait for the leader elected by the follower
// whose turn is first (goneTurn): before the second turn's HeartbeatTimeout/8
// (1.25 s here).
const firstTurnWithin = time.Second

// leaderAmong returns the first of rafts seen leading within d, or nil.
func leaderAmong(rafts []*Raft, d time.Duration) *Raft {
	deadline := time.After(d)
	for {
		for _, r := range rafts {
			if r.State() == Leader {
				return r
			}
		}
		select {
		case <-deadline:
			return nil
		case <-time.After(5 * time.Millisecond):
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
	// Cut off from the leader, the wrongly told follower does not hear
	// its heartbeats (one a second here) before its turn comes (within
	// 1.6 s here), so it stands; the other follower refuses its pre-vote.
	told := followers[1]
	c.trans[0].Disconnect(told.localAddr)
	c.trans[2].Disconnect(leader.localAddr)
	if c.rafts[2] != told {
		t.Fatal("the second follower is not the cluster's third server")
	}
	followers[0].LeaderGone(told.localID)
	told.LeaderGone(id)
	deadline := time.After(goneWithin)
	for told.State() != Candidate {
		select {
		case <-deadline:
			t.Fatalf("the follower told its live leader is gone did not stand within %v", goneWithin)
		case <-time.After(5 * time.Millisecond):
		}
		if s := followers[0].State(); s != Follower {
			t.Fatalf("follower told of another follower: %v", s)
		}
	}
	c.FullyConnect()
	followsAgain(t, told, id, "the wrongly told follower following its leader again")
	if leader.State() != Leader || leader.getCurrentTerm() != term {
		t.Fatalf("leader %v in term %d, was Leader in term %d", leader.State(), leader.getCurrentTerm(), term)
	}
	if _, l := followers[0].LeaderWithID(); l != id {
		t.Fatalf("the other follower's leader is %q, not %q", l, id)
	}
	if err := leader.Apply([]byte("after"), time.Second).Error(); err != nil {
		t.Fatal(err)
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
