// coppice: tests of the commitment's non-voter matches (commitment.go).

package raft

import "testing"

// withNonvoter is voters with id added as a non-voter.
func withNonvoter(voters []string, id string) Configuration {
	c := makeConfiguration(voters)
	c.Servers = append(c.Servers, Server{Suffrage: Nonvoter, ID: ServerID(id), Address: ServerAddress(id + "addr")})
	return c
}

// TestCommitment_promotedNonvoterKeepsItsMatch: a non-voter's answer to the
// entry that promotes it can come before the leader has the new
// configuration in its commitment (the fork replicates while the leader
// writes). It counted for nothing: with a voter down and no entry after,
// the promotion never committed (seen in coppice's
// leader_killed_during_sync script, writes stalled for good).
func TestCommitment_promotedNonvoterKeepsItsMatch(t *testing.T) {
	commitCh := make(chan struct{}, 1)
	// a is the leader; b is down; c votes; d is the non-voter.
	c := newCommitment(commitCh, withNonvoter([]string{"a", "b", "c"}, "d"), 1)
	c.match("a", 10)
	c.match("c", 10)
	drainNotifyCh(commitCh)
	// Entry 11 makes d a voter: d answers first, then the leader's own
	// write returns, then the configuration reaches the commitment, then
	// c answers. Nothing comes after entry 11.
	c.match("d", 11)
	c.match("a", 11)
	c.setConfiguration(makeConfiguration([]string{"a", "b", "c", "d"}))
	c.match("c", 11)
	if got := c.getCommitIndex(); got != 11 {
		t.Fatalf("commit index %d after d's promotion, want 11: 3 of 4 voters (a, c, d) store it", got)
	}
}

// TestCommitment_removedServerStartsAgain: a server that leaves the
// configuration is forgotten; a late answer it sent is not counted for it
// once it is added back (its store may be new).
func TestCommitment_removedServerStartsAgain(t *testing.T) {
	commitCh := make(chan struct{}, 1)
	c := newCommitment(commitCh, withNonvoter([]string{"a", "b", "c"}, "d"), 1)
	c.match("d", 20)
	c.setConfiguration(makeConfiguration([]string{"a", "b", "c"})) // d removed
	c.match("d", 30)                                               // a late answer
	c.setConfiguration(makeConfiguration([]string{"a", "b", "c", "d"}))
	c.match("a", 30)
	c.match("b", 30)
	if got := c.getCommitIndex(); got != 0 {
		t.Fatalf("commit index %d: d counted with answers from before it was added back", got)
	}
	c.match("d", 30)
	if got := c.getCommitIndex(); got != 30 {
		t.Fatalf("commit index %d, want 30 once d answers again", got)
	}
}
