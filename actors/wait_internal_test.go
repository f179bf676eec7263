package actors

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// A member counts for an index once its match index reaches it; for index
// 0 (no write), once the leader heard from it within silentVoterAfter.
func TestCountAcks(t *testing.T) {
	now := time.Now()
	matches := map[raft.ServerID]uint64{"n2": 10, "n3": 7, "r1": 12}
	contacts := map[raft.ServerID]time.Time{
		"n2": now.Add(-100 * time.Millisecond),
		"n3": now.Add(-silentVoterAfter),
		"r1": now,
	}
	for _, tc := range []struct {
		index uint64
		want  int
	}{
		{1, 3}, {7, 3}, {8, 2}, {10, 2}, {11, 1}, {12, 1}, {13, 0},
		{0, 2}, // n3 silent for 2 s: not reached
	} {
		if got := countAcks(matches, contacts, tc.index, now); got != tc.want {
			t.Errorf("index %d: %d, want %d", tc.index, got, tc.want)
		}
	}
	if got := countAcks(map[raft.ServerID]uint64{}, nil, 5, now); got != 0 {
		t.Errorf("no other member: %d", got)
	}
	if got := countAcks(matches, nil, 0, now); got != 0 {
		t.Errorf("index 0 with no contacts known: %d, want 0", got)
	}
}

// A committed entry is on a majority of the voters: at least this many
// besides whichever of them leads.
func TestCommittedFloor(t *testing.T) {
	for voters, want := range []int{0, 0, 1, 1, 2, 2, 3} {
		if got := committedFloor(voters); got != want {
			t.Errorf("committedFloor(%d) = %d, want %d", voters, got, want)
		}
	}
}
