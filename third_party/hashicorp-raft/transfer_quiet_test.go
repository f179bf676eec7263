// coppice: the election a leadership transfer asks for is not logged as an
// error (handleStaleTerm, transferredTerm).

package raft

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// slowVoters starts n in-memory servers bootstrapped as one group's
// voters, with 1 s timers: long enough that no election runs but the
// transfers'.
func slowVoters(t *testing.T, n int) []*Raft {
	t.Helper()
	var addrs []ServerAddress
	var trans []*InmemTransport
	var conf Configuration
	for range n {
		a, tr := NewInmemTransport("")
		for i, other := range trans {
			tr.Connect(addrs[i], other)
			other.Connect(a, tr)
		}
		addrs, trans = append(addrs, a), append(trans, tr)
		conf.Servers = append(conf.Servers, Server{Suffrage: Voter, ID: ServerID(a), Address: a})
	}
	slow := func(c *Config) {
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
	}
	var rs []*Raft
	for i := range n {
		rs = append(rs, startInmem(t, addrs[i], trans[i], nil, conf, slow))
	}
	return rs
}

// leaderOf waits (5 s) for one of rs to lead.
func leaderOf(t *testing.T, rs []*Raft) *Raft {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, r := range rs {
			if r.State() == Leader {
				return r
			}
		}
	}
	t.Fatal("no leader within 5s")
	return nil
}

// TestRaft_TransferMarksItsTerm: a leader that hands its leadership over
// records the term it ends (transferredTerm), and the transfer is over
// when LeadershipTransfer returns.
func TestRaft_TransferMarksItsTerm(t *testing.T) {
	rs := slowVoters(t, 3)
	leader := leaderOf(t, rs)
	if err := leader.Apply([]byte("x"), time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	term := leader.getCurrentTerm()
	if err := leader.LeadershipTransfer().Error(); err != nil {
		t.Fatal(err)
	}
	if got := atomic.LoadUint64(&leader.transferredTerm); got != term {
		t.Fatalf("transferredTerm %d after handing term %d over", got, term)
	}
	if leader.getLeadershipTransferInProgress() {
		t.Fatal("a transfer still in progress after LeadershipTransfer returned")
	}
}

// TestRaft_StaleTermAfterATransferIsInfo: a replication answered with a
// newer term logs it as an error, as upstream, unless the term it
// replicates for ended by a leadership transfer (or one is in progress):
// then the election is the one the transfer asked for, an info line.
func TestRaft_StaleTermAfterATransferIsInfo(t *testing.T) {
	for _, tc := range []struct {
		name              string
		transferred, repl uint64
		inProgress        bool
		want              string
	}{
		{"no transfer", 0, 5, false, "[ERROR]"},
		{"an earlier term transferred", 4, 5, false, "[ERROR]"},
		{"this term transferred", 5, 5, false, "[INFO]"},
		{"a transfer in progress", 0, 5, true, "[INFO]"},
	} {
		var out lockedBuffer
		r := &Raft{logger: hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Info}), transferredTerm: tc.transferred}
		r.setLeadershipTransferInProgress(tc.inProgress)
		s := &followerReplication{currentTerm: tc.repl, stepDown: make(chan struct{}, 1), notify: map[*verifyFuture]time.Time{}}
		r.handleStaleTerm(s)
		if got := out.String(); !strings.Contains(got, tc.want+" peer has newer term") && !strings.Contains(got, tc.want+"  peer has newer term") {
			t.Errorf("%s: logged %q, want %s", tc.name, got, tc.want)
		}
		select {
		case <-s.stepDown:
		default:
			t.Errorf("%s: the leader is not told to step down", tc.name)
		}
	}
}
