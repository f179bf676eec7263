// coppice: a server that starts on empty stores grants no vote until it
// has caught up with a leader (unverified.go).

package raft

import (
	"fmt"
	"testing"
	"time"
)

// lostDisk is a server started on empty stores, reached by a fake leader
// and candidate ("p") on a transport of its own. Its timers are long: it
// never stands on its own in the test.
type lostDisk struct {
	r      *Raft
	conf   *Config
	store  *InmemStore
	snaps  *InmemSnapshotStore
	addr   ServerAddress
	trans  *InmemTransport
	p      *InmemTransport
	pAddr  ServerAddress
	header RPCHeader
}

func startLostDisk(t *testing.T, store *InmemStore, snaps *InmemSnapshotStore, addr, pAddr ServerAddress) *lostDisk {
	t.Helper()
	conf := inmemConfig(t)
	conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 10*time.Second, 10*time.Second, 5*time.Second
	conf.LostStoreGuard = true
	s := &lostDisk{conf: conf, store: store, snaps: snaps}
	s.addr, s.trans = NewInmemTransport(addr)
	conf.LocalID = ServerID(s.addr)
	s.pAddr, s.p = NewInmemTransport(pAddr)
	s.trans.Connect(s.pAddr, s.p)
	s.p.Connect(s.addr, s.trans)
	s.header = RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte("p"), Addr: []byte(s.pAddr)}
	r, err := NewRaft(conf, &MockFSM{}, store, store, snaps, s.trans)
	if err != nil {
		t.Fatal(err)
	}
	s.r = r
	t.Cleanup(func() { r.Shutdown().Error() })
	return s
}

// vote asks for s's vote for p in term, with p's log ending at (index,
// term).
func (s *lostDisk) vote(t *testing.T, term, lastIndex, lastTerm uint64) bool {
	t.Helper()
	var resp RequestVoteResponse
	if err := s.p.RequestVote(ServerID(s.addr), s.addr, &RequestVoteRequest{RPCHeader: s.header, Term: term,
		LastLogIndex: lastIndex, LastLogTerm: lastTerm}, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.Granted
}

// appendEntries sends entries from..to of term 5 (the first the
// configuration: s and p voters) as p, leader in term, with commit.
func (s *lostDisk) appendEntries(t *testing.T, term, from, to, commit uint64) {
	t.Helper()
	req := &AppendEntriesRequest{RPCHeader: s.header, Term: term, LeaderCommitIndex: commit}
	if from > 1 {
		req.PrevLogEntry, req.PrevLogTerm = from-1, 5
	}
	for i := from; i <= to; i++ {
		l := &Log{Index: i, Term: 5, Type: LogCommand, Data: []byte(fmt.Sprint("entry ", i))}
		if i == 1 {
			l.Type, l.Data = LogConfiguration, EncodeConfiguration(Configuration{Servers: []Server{
				{Suffrage: Voter, ID: ServerID(s.addr), Address: s.addr},
				{Suffrage: Voter, ID: "p", Address: s.pAddr},
			}})
		}
		req.Entries = append(req.Entries, l)
	}
	var resp AppendEntriesResponse
	if err := s.p.AppendEntries(ServerID(s.addr), s.addr, req, &resp); err != nil || !resp.Success {
		t.Fatalf("entries %d..%d: success %v, %v", from, to, resp.Success, err)
	}
}

// TestRaft_UnverifiedServerGrantsNoVote: a server on empty stores (a
// voter whose disk was lost and that comes back under its ID) refuses
// votes and pre-votes while its log is short of the commit index a leader
// told it, also after a restart, and grants them again once it has caught
// up. Upstream grants the first vote (empty log, no configuration).
func TestRaft_UnverifiedServerGrantsNoVote(t *testing.T) {
	store, snaps := NewInmemStore(), NewInmemSnapshotStore()
	s := startLostDisk(t, store, snaps, "", "")
	if s.vote(t, 5, 0, 0) {
		t.Fatal("a server on empty stores granted a vote")
	}
	// A leader's heartbeat (its term only, as upstream's heartbeat sends)
	// shows nothing about the log: the server still withholds its votes.
	var hb AppendEntriesResponse
	if err := s.p.AppendEntries(ServerID(s.addr), s.addr, &AppendEntriesRequest{RPCHeader: s.header, Term: 5}, &hb); err != nil || !hb.Success {
		t.Fatalf("heartbeat: success %v, %v", hb.Success, err)
	}
	if !s.r.VotesWithheld() {
		t.Fatal("a heartbeat made a server on empty stores vote again")
	}
	s.appendEntries(t, 5, 1, 3, 5) // committed up to 5, it holds 3
	// Told a commit index its log reaches, by a request that checks none
	// of its entries: they may be an earlier leader's, not the committed
	// ones.
	if err := s.p.AppendEntries(ServerID(s.addr), s.addr, &AppendEntriesRequest{RPCHeader: s.header, Term: 5, LeaderCommitIndex: 3}, &hb); err != nil || !hb.Success {
		t.Fatalf("commit index alone: success %v, %v", hb.Success, err)
	}
	if !s.r.VotesWithheld() {
		t.Fatal("a commit index alone, no entry checked, made a server on empty stores vote again")
	}
	// And it reports no commit index of its own (it holds 3 of them), so
	// that its leader sends it entries at the next heartbeat
	// (noteFollowerCommit) rather than take it for caught up.
	if hb.FollowerCommit != 0 {
		t.Fatalf("an unverified server reported commit index %d, want 0", hb.FollowerCommit)
	}
	if s.vote(t, 6, 5, 5) {
		t.Fatal("a server short of the leader's commit index granted a vote")
	}
	var pre RequestPreVoteResponse
	if err := s.p.RequestPreVote(ServerID(s.addr), s.addr, &RequestPreVoteRequest{RPCHeader: s.header, Term: 7,
		LastLogIndex: 5, LastLogTerm: 5}, &pre); err != nil || pre.Granted {
		t.Fatalf("pre-vote of a server short of the commit index: granted %v, %v", pre.Granted, err)
	}

	// Nor does it take a leader's offer of its leadership (it would stand).
	var tn TimeoutNowResponse
	if err := s.p.TimeoutNow(ServerID(s.addr), s.addr, &TimeoutNowRequest{RPCHeader: s.header}, &tn); err == nil {
		t.Fatal("a server short of the commit index took a leadership transfer")
	}
	if st := s.r.State(); st != Follower {
		t.Fatalf("offered the leadership before catching up: %v, want Follower", st)
	}

	// A restart half-way keeps the mark.
	if err := s.r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	s.trans.Close()
	s.p.Close()
	s = startLostDisk(t, store, snaps, s.addr, s.pAddr)
	if s.vote(t, 8, 5, 5) {
		t.Fatal("restarted before catching up, the server granted a vote")
	}

	s.appendEntries(t, 8, 4, 5, 5) // caught up
	var hb2 AppendEntriesResponse
	if err := s.p.AppendEntries(ServerID(s.addr), s.addr, &AppendEntriesRequest{RPCHeader: s.header, Term: 8}, &hb2); err != nil || hb2.FollowerCommit != 5 {
		t.Fatalf("caught up, the server reports commit index %d (%v), want 5", hb2.FollowerCommit, err)
	}
	if !s.vote(t, 9, 5, 5) {
		t.Fatal("caught up with the leader, the server still refuses its vote")
	}
	// And the ordinary rules still hold: no vote for a candidate behind it.
	if s.vote(t, 10, 4, 5) {
		t.Fatal("the server voted for a candidate whose log is behind its own")
	}
}

// TestRaft_TrustStores: an operator's word ends the wait: the server grants
// votes (and keeps doing so after a restart) without having caught up.
func TestRaft_TrustStores(t *testing.T) {
	store, snaps := NewInmemStore(), NewInmemSnapshotStore()
	s := startLostDisk(t, store, snaps, "", "")
	if s.vote(t, 5, 3, 5) {
		t.Fatal("a server on empty stores granted a vote")
	}
	if !s.r.TrustStores() {
		t.Fatal("TrustStores: the server was not withholding its votes")
	}
	if s.r.VotesWithheld() || s.r.TrustStores() {
		t.Fatal("trusted, the server still withholds its votes")
	}
	if !s.vote(t, 6, 3, 5) {
		t.Fatal("trusted, the server refused its vote")
	}
	if err := s.r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	s.trans.Close()
	s.p.Close()
	s = startLostDisk(t, store, snaps, s.addr, s.pAddr)
	if s.r.VotesWithheld() || !s.vote(t, 7, 3, 5) {
		t.Fatal("restarted after it was trusted, the server withholds its votes")
	}
}

// TestRaft_BootstrapVerifies: the server that bootstraps a cluster on
// empty stores votes (and so can hand its leadership over), as does one
// started on stores BootstrapCluster wrote.
func TestRaft_BootstrapVerifies(t *testing.T) {
	conf := inmemConfig(t)
	conf.LostStoreGuard = true
	store := NewInmemStore()
	addr, trans := NewInmemTransport("")
	conf.LocalID = ServerID(addr)
	r, err := NewRaft(conf, &MockFSM{}, store, store, NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown()
	if !r.VotesWithheld() {
		t.Fatal("a server on empty stores is not marked")
	}
	if err := r.BootstrapCluster(Configuration{Servers: []Server{{Suffrage: Voter, ID: conf.LocalID, Address: addr}}}).Error(); err != nil {
		t.Fatal(err)
	}
	if r.unverified.Load() {
		t.Fatal("the server that bootstrapped the cluster is still marked")
	}
	if v, err := store.GetUint64(keyUnverified); err != nil || v != 0 {
		t.Fatalf("the stored mark after the bootstrap: %d, %v", v, err)
	}

	conf = inmemConfig(t)
	conf.LostStoreGuard = true
	c := MakeCluster(1, t, conf)
	defer c.Close()
	if c.rafts[0].unverified.Load() {
		t.Fatal("a server started on stores BootstrapCluster wrote is marked")
	}
}

// TestRaft_LostStoreGuardJoinsAsCoppiceDoes: with the guard, a cluster
// formed as coppice forms one (one voter bootstraps, the others are added
// on empty stores) elects a new leader among the added ones once the first
// is gone: they caught up, so they vote and stand.
func TestRaft_LostStoreGuardJoinsAsCoppiceDoes(t *testing.T) {
	conf := inmemConfig(t)
	conf.LostStoreGuard = true
	c := MakeClusterNoBootstrap(3, t, conf)
	defer c.Close()
	first := c.rafts[0]
	if err := first.BootstrapCluster(Configuration{Servers: []Server{{Suffrage: Voter, ID: first.localID, Address: first.localAddr}}}).Error(); err != nil {
		t.Fatal(err)
	}
	if c.Leader() != first {
		t.Fatal("the bootstrapped server does not lead")
	}
	for _, r := range c.rafts[1:] {
		if !r.unverified.Load() {
			t.Fatalf("%s on empty stores is not marked", r.localID)
		}
		if err := first.AddVoter(r.localID, r.localAddr, 0, 5*time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ {
		if err := first.Apply([]byte(fmt.Sprint("entry ", i)), 5*time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the added servers caught up", func() error {
		for _, r := range c.rafts[1:] {
			if r.unverified.Load() {
				return fmt.Errorf("%s still refuses votes", r.localID)
			}
		}
		return nil
	})
	c.Disconnect(first.localAddr)
	waitFor(t, "a leader among the added servers", func() error {
		for _, r := range c.rafts[1:] {
			if r.State() == Leader {
				return nil
			}
		}
		return fmt.Errorf("none leads")
	})
}

// TestRaft_MarkUnverified: a server that kept its term and vote but whose
// log was emptied after MarkUnverified grants no vote until it has caught
// up; without the mark it would (HasExistingState finds the term).
func TestRaft_MarkUnverified(t *testing.T) {
	store, snaps := NewInmemStore(), NewInmemSnapshotStore()
	s := startLostDisk(t, store, snaps, "", "")
	s.appendEntries(t, 5, 1, 3, 3) // caught up: it votes
	if !s.vote(t, 6, 3, 5) {
		t.Fatal("a caught-up server refused its vote")
	}
	if err := s.r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	s.trans.Close()
	s.p.Close()

	if err := MarkUnverified(store); err != nil {
		t.Fatal(err)
	}
	if err := store.DeleteRange(1, 3); err != nil {
		t.Fatal(err)
	}
	if ok, err := HasExistingState(store, store, snaps); err != nil || !ok {
		t.Fatalf("HasExistingState after the log was emptied: %v, %v; want true (the term)", ok, err)
	}
	s = startLostDisk(t, store, snaps, s.addr, s.pAddr)
	if !s.r.VotesWithheld() || s.vote(t, 7, 3, 5) {
		t.Fatal("marked and emptied, the server granted a vote")
	}
	s.appendEntries(t, 7, 1, 3, 3)
	if !s.vote(t, 8, 3, 5) {
		t.Fatal("caught up again, the server refused its vote")
	}
}
