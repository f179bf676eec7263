package actors_test

import (
	"context"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// LastSnapshot (LASTSAVE) is when the newest snapshot of a shard the node
// holds was written: none at first, the snapshot's time once a shard has
// taken one.
func TestLastSnapshot(t *testing.T) {
	rt := &actors.Runtime{Name: "n1", DataDir: t.TempDir(), Shards: 2, ClusterAddr: "127.0.0.1:0", Exec: kv.ExecEvents}
	n := startRuntime(t, rt)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n.Stop(ctx)
	}()
	waitLeader(t, n, 1)
	if last := rt.LastSnapshot(); !last.IsZero() {
		t.Fatalf("a snapshot at %v before any was taken", last)
	}
	cmd := &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), []byte("v")}, NowMs: time.Now().UnixMilli()}
	if pr := request[*messages.ProposeReply](t, n, actors.RaftPath(1), &messages.Propose{Command: cmd}); pr.Error != "" {
		t.Fatal(pr.Error)
	}
	before := time.Now().Add(-time.Second) // file times may be coarser than the clock
	if c := request[*messages.CompactLogReply](t, n, actors.RaftPath(1), &messages.CompactLog{Trailing: 1}); c.Error != "" {
		t.Fatalf("compact: %s", c.Error)
	}
	if last := rt.LastSnapshot(); last.Before(before) || last.After(time.Now()) {
		t.Fatalf("the snapshot is at %v, taken after %v", last, before)
	}
}
