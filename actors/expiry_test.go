package actors_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// A key past its expiry is deleted from the store by the shard's leader
// (active expiry), not only hidden: a key written with a TTL and never
// touched again does not stay on disk. Many due keys go in several
// entries of expiryBatch; an idle shard proposes nothing; a shard with
// nothing due soon still deletes a key written then at once; switched off,
// it deletes nothing.
func TestLeaderDeletesExpiredKeys(t *testing.T) {
	rt := &actors.Runtime{Name: "n1", DataDir: t.TempDir(), Shards: 1, ClusterAddr: "127.0.0.1:0",
		Exec: kv.ExecEvents, ExpiryEvery: 10 * time.Millisecond}
	n := startRuntime(t, rt)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n.Stop(ctx)
	}()
	waitLeader(t, n, 0)
	set := func(args ...string) {
		t.Helper()
		cmd := &messages.Command{NowMs: time.Now().UnixMilli()}
		for _, a := range append([]string{"SET"}, args...) {
			cmd.Args = append(cmd.Args, []byte(a))
		}
		pr := request[*messages.ProposeReply](t, n, actors.RaftPath(0), &messages.Propose{Command: cmd})
		if pr.Error != "" || pr.Reply.GetStatus() != "OK" {
			t.Fatalf("%q: %+v", args, pr)
		}
	}
	// Records in the store: a key without expiry is one, a key with one
	// two (its record and its expiry index entry).
	records := func() (uint64, uint64) {
		sum := request[*messages.ShardChecksumReply](t, n, actors.RaftPath(0), &messages.ShardChecksum{})
		if sum.Error != "" {
			t.Fatal(sum.Error)
		}
		return sum.Keys, sum.AppliedIndex
	}
	waitRecords := func(want uint64) uint64 {
		t.Helper()
		var applied uint64
		testwait.For(t, 10*time.Second, 10*time.Millisecond, fmt.Sprintf("%d records left", want), func() error {
			var got uint64
			if got, applied = records(); got != want {
				return fmt.Errorf("%d records", got)
			}
			return nil
		})
		return applied
	}

	set("keep", "v")
	const many = 450 // more than one entry's batch
	for i := range many {
		set("k"+strconv.Itoa(i), "v", "PX", "50")
	}
	applied := waitRecords(1)

	// One more due key: one more entry for its SET and one for its
	// deletion, and none from the ticks in between.
	set("last", "v", "PX", "20")
	if got := waitRecords(1); got != applied+2 {
		t.Fatalf("applied index went from %d to %d: want the SET and one expiry entry", applied, got)
	}

	// A look that finds nothing due before a far key's time looks no more
	// until then, unless the shard is written: a key written meanwhile
	// with a short TTL still goes at once. Ten ticks, nothing due and
	// nothing proposed, first.
	set("far", "v", "PX", "600000")
	keys, at := records()
	for deadline := time.Now().Add(100 * time.Millisecond); time.Now().Before(deadline); {
		if got, applied := records(); got != keys || applied != at {
			t.Fatalf("nothing due: %d records at index %d, then %d at %d", keys, at, got, applied)
		}
		time.Sleep(10 * time.Millisecond)
	}
	set("soon", "v", "PX", "20")
	waitRecords(keys)

	// Switched off (DEBUG SET-ACTIVE-EXPIRE 0), the leader deletes
	// nothing: a due key stays through many ticks; switched on again, it
	// goes.
	rt.SetActiveExpiry(false)
	set("off", "v", "PX", "20")
	keys, at = records()
	deadline := time.Now().Add(300 * time.Millisecond) // 30 ticks, and the key due after 2
	for time.Now().Before(deadline) {
		if got, applied := records(); got != keys || applied != at {
			t.Fatalf("with active expiry off: %d records at index %d, then %d at %d", keys, at, got, applied)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rt.SetActiveExpiry(true)
	waitRecords(keys - 2)
}
