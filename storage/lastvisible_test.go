package storage

import (
	"testing"

	"github.com/hashicorp/raft"
)

// LastVisible steps back over entries the state machine never sees, and
// leaves an index already applied as it is. (An index below the applied
// floor once came back as index-1024, wrapped around below 1024: a read
// barrier then waited out its 5 s timeout for an index no shard reaches.)
func TestLastVisible(t *testing.T) {
	logs := raft.NewInmemStore()
	types := map[uint64]raft.LogType{ // 1..10
		1: raft.LogConfiguration, 2: raft.LogNoop, 3: raft.LogCommand, 4: raft.LogCommand,
		5: raft.LogNoop, 6: raft.LogBarrier, 7: raft.LogCommand, 8: raft.LogNoop, 9: raft.LogNoop, 10: raft.LogNoop,
	}
	for i := uint64(1); i <= 10; i++ {
		if err := logs.StoreLog(&raft.Log{Index: i, Term: 1, Type: types[i]}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ index, floor, want uint64 }{
		{4, 0, 4},  // a command
		{6, 0, 4},  // a barrier and a no-op after it: back to 4
		{6, 5, 5},  // nothing visible above the floor: the floor
		{10, 7, 7}, // no-ops up to the top
		{3, 7, 3},  // below the floor: already applied
		{16, 40, 16},
		{7, 7, 7},
		{12, 10, 12}, // past the log's end: not readable, counts as visible
	} {
		if got := LastVisible(logs, c.index, c.floor); got != c.want {
			t.Errorf("LastVisible(%d, floor %d) = %d, want %d", c.index, c.floor, got, c.want)
		}
	}
}
