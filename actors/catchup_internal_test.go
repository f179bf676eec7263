package actors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/storage"
)

// A sole leader reads without a barrier only once its state machine has
// applied its whole log. Here the shard's store is put back to an earlier
// state while the node is down (rolledBackStore): at the moment the
// restarted node takes the fast path, the entries the store lost must be
// applied again already.
func TestSoleLeaderReadsOnlyOnceCaughtUp(t *testing.T) {
	dir, lastApplied := rolledBackStore(t)
	n, rt := startCatchUpNode(t, dir)
	defer stopCatchUpNode(t, n)
	waitSole(t, rt, catchUpShard)
	sh, _, err := rt.Shard(catchUpShard)
	if err != nil {
		t.Fatal(err)
	}
	if applied, _ := sh.Applied(); applied < lastApplied {
		t.Fatalf("the shard reads without a barrier at applied index %d, before its log's %d", applied, lastApplied)
	}
	var got []byte
	if err := sh.View(func(r kv.Reader) error {
		v, _, err := r.Get(append([]byte{1}, "k"...))
		got = v
		return err
	}); err != nil || string(got) != "v2" {
		t.Fatalf("k = %q (%v), want v2", got, err)
	}
}

// The same restart: the shard's status says it is ready (what /readyz
// answers) only once its state machine has applied the entries its store
// lost, though the applied index is at its commit index from the start.
func TestLeaderReadyOnlyOnceCaughtUp(t *testing.T) {
	dir, lastApplied := rolledBackStore(t)
	n, _ := startCatchUpNode(t, dir)
	defer stopCatchUpNode(t, n)
	var ready ShardStatus
	testwait.For(t, 15*time.Second, 50*time.Microsecond, "the shard ready", func() error {
		st, err := GatherStatus(context.Background(), n.System, StatusInfo{Name: "n1", Shards: 2})
		if err != nil {
			return err
		}
		ready = st.Shards[catchUpShard]
		if ok, why := ready.Ready(); !ok {
			return errors.New(why)
		}
		return nil
	})
	if ready.AppliedIndex < lastApplied {
		t.Fatalf("ready at applied index %d, before its log's %d: %+v", ready.AppliedIndex, lastApplied, ready)
	}
	if ready.State != "leader" || ready.TermStartIndex < lastApplied {
		t.Fatalf("a ready leader's term start index %d, want its log's %d or more: %+v", ready.TermStartIndex, lastApplied, ready)
	}
}

// catchUpShard is the shard rolledBackStore rolls back.
const catchUpShard = 1

// rolledBackStore runs a node that writes k=v1, then k=v2, on catchUpShard,
// and stops it; then puts the shard's store back to its copy from after
// v1, as a kill -9 does to writes Pebble had not written out: the log
// still holds v2, at index lastApplied.
func rolledBackStore(t *testing.T) (dir string, lastApplied uint64) {
	t.Helper()
	dir = t.TempDir()
	kvDir := storage.Layout{Dir: dir}.KVDir(catchUpShard)
	saved := filepath.Join(t.TempDir(), "kv")
	for round, value := range []string{"v1", "v2"} {
		n, rt := startCatchUpNode(t, dir)
		waitSole(t, rt, catchUpShard)
		cmd := &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), []byte(value)}}
		res, err := n.System.Root.RequestFuture(actor.NewPID(n.System.Address(), RaftPath(catchUpShard)),
			&messages.Propose{Command: cmd}, 10*time.Second).Result()
		if pr, ok := res.(*messages.ProposeReply); err != nil || !ok || pr.Error != "" {
			t.Fatalf("propose %s: %v %+v", value, err, res)
		}
		sh, _, err := rt.Shard(catchUpShard)
		if err != nil {
			t.Fatal(err)
		}
		lastApplied, _ = sh.Applied()
		stopCatchUpNode(t, n)
		if round == 0 {
			copyFlatDir(t, kvDir, saved)
		}
	}
	if err := os.RemoveAll(kvDir); err != nil {
		t.Fatal(err)
	}
	copyFlatDir(t, saved, kvDir)
	return dir, lastApplied
}

func startCatchUpNode(t *testing.T, dir string) (*Node, *Runtime) {
	t.Helper()
	rt := &Runtime{Name: "n1", DataDir: dir, Shards: 2, ClusterAddr: "127.0.0.1:0", Exec: func(w kv.Writer, c *messages.Command, _ *kv.EventLog) *messages.Reply {
		if err := w.Set(append([]byte{1}, c.Args[1]...), c.Args[2]); err != nil {
			return &messages.Reply{Value: &messages.Reply_Error{Error: err.Error()}}
		}
		return &messages.Reply{Value: &messages.Reply_Status{Status: "OK"}}
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, Config{Runtime: rt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n, rt
}

func stopCatchUpNode(t *testing.T, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitSole polls, tightly, until the node takes the fast path for shard's
// reads (bounded).
func waitSole(t *testing.T, rt *Runtime, shard int) {
	t.Helper()
	testwait.For(t, 15*time.Second, 50*time.Microsecond, fmt.Sprintf("shard %d a sole leader", shard), func() error {
		if !rt.soleLeader(shard) {
			return errors.New("not yet")
		}
		return nil
	})
}

func copyFlatDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
