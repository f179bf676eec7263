package actors

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// A write is answered without the log only where this node leads the
// shard as its only voter: once it does not (a second voter, another
// leader, a read-only node's stale replica), Probe declines, and the
// write is proposed.
func TestProbeOnlyWhereTheNodeIsTheSoleLeader(t *testing.T) {
	rt := &Runtime{Name: "n1", DataDir: t.TempDir(), Shards: 1, ClusterAddr: "127.0.0.1:0", Exec: kv.ExecEvents}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, Config{Runtime: rt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(ctx)
	b := newBackend(rt, n.System)
	del := &messages.Command{Args: [][]byte{[]byte("DEL"), []byte("missing")}, NowMs: time.Now().UnixMilli()}
	testwait.For(t, 10*time.Second, 10*time.Millisecond, "the sole leader answering a DEL of a missing key", func() error {
		if r, ok := b.Probe(0, del); !ok || r.GetInteger() != 0 {
			return errors.New("declined")
		}
		return nil
	})
	l := rt.shardLead(0)
	l.sole = false
	rt.setLead(0, l)
	if r, ok := b.Probe(0, del); ok {
		t.Fatalf("answered %v where the node is not the shard's only voter", r)
	}
}
