package actors_test

import (
	"context"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/messages"
)

// A committed write's answer carries its entry's log index, growing with
// each entry; a group's sole member has no replica: its leader answers 0
// at once when that is enough, and after the wait when it is not.
func TestShardTellsLogIndexesAndReplicaAcks(t *testing.T) {
	n := startNode(t, t.TempDir())
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n.Stop(ctx)
	}()
	waitLeader(t, n, 0)
	var last uint64
	for i := range 3 {
		cmd := &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), []byte("v")}}
		pr := request[*messages.ProposeReply](t, n, actors.RaftPath(0), &messages.Propose{Command: cmd})
		if pr.Error != "" || pr.Index <= last {
			t.Fatalf("write %d: %+v; want its log index, past %d", i, pr, last)
		}
		last = pr.Index
	}
	st := request[*messages.ShardStatusReply](t, n, actors.RaftPath(0), &messages.ShardStatus{})
	if st.LastIndex < last {
		t.Fatalf("the shard's last index %d is before the write's %d", st.LastIndex, last)
	}

	for _, tc := range []struct {
		ask     *messages.ReplicaAcks
		atLeast time.Duration
	}{
		{&messages.ReplicaAcks{Index: last, Want: 0, WaitMs: 5000}, 0},
		{&messages.ReplicaAcks{Index: 0, Want: 0, WaitMs: 5000}, 0},
		{&messages.ReplicaAcks{Index: last, Want: 1, WaitMs: 150}, 150 * time.Millisecond},
		{&messages.ReplicaAcks{Index: 0, Want: 2, WaitMs: 150}, 150 * time.Millisecond},
	} {
		start := time.Now()
		r := request[*messages.ReplicaAcksReply](t, n, actors.RaftPath(0), tc.ask)
		took := time.Since(start)
		if r.Error != "" || r.Acks != 0 || took < tc.atLeast || took > tc.atLeast+2*time.Second {
			t.Errorf("%+v: %+v after %v; want 0 acks after %v", tc.ask, r, took, tc.atLeast)
		}
	}
}
