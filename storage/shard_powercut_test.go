package storage

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/hashicorp/raft"
)

// A shard applies entries without syncing its store (the Raft log is the
// durable copy), so a power cut can take any tail of them, but never part
// of one: the applied index is written in the batch of the data it covers.
// A writer applies entries (some several to a batch, and a memtable flush
// now and then) while the test takes crash images of the file system
// (Pebble's CrashableMem: what was synced, plus each unsynced block with
// some probability). Opened from each image, the shard holds exactly the
// entries up to its applied index, and replaying the log from the start
// skips those and applies the rest.
func TestShardSurvivesPowerCuts(t *testing.T) {
	fs := vfs.NewCrashableMem()
	l := Layout{Dir: "/node"}
	s, err := openShard(fs, l, 0, setExec, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// The writer applies up to limit, which each cut raises by 400 and
	// takes its image 200 in: writes are in flight at every cut, and the
	// log stays short enough to check key by key.
	var applied, limit atomic.Uint64
	more := make(chan struct{}, 1)
	stop, failed := make(chan struct{}), make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(7, 7))
		for next := uint64(1); ; {
			for next+3 > limit.Load() {
				select {
				case <-stop:
					return
				case <-more:
				}
			}
			n := uint64(1 + rng.IntN(3))
			var logs []*raft.Log
			for i := range n {
				logs = append(logs, shardEntry(t, next+i))
			}
			for i, r := range s.ApplyBatch(logs) {
				if err, ok := r.(error); ok {
					failed <- fmt.Errorf("entry %d: %w", next+uint64(i), err)
					return
				}
			}
			next += n
			applied.Store(next - 1)
			if rng.IntN(50) == 0 {
				s.mu.RLock()
				err := s.db.Flush()
				s.mu.RUnlock()
				if err != nil {
					failed <- fmt.Errorf("flush: %w", err)
					return
				}
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
		select {
		case err := <-failed:
			t.Error(err)
		default:
		}
	}()

	var kept []uint64 // each image's applied index
	for cut := range 8 {
		target := applied.Load() + 200
		limit.Store(target + 200)
		select {
		case more <- struct{}{}:
		default:
		}
		testwait.For(t, 30*time.Second, time.Millisecond, "the writer to get ahead", func() error {
			if n := applied.Load(); n < target && len(failed) == 0 {
				return fmt.Errorf("%d entries applied, want %d", n, target)
			}
			return nil
		})
		if len(failed) > 0 {
			return
		}
		unsynced := []int{0, 30, 70, 100}[cut%4]
		image := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: rand.New(rand.NewPCG(uint64(cut), 1))})
		t.Run(fmt.Sprintf("cut%d-unsynced%d", cut, unsynced), func(t *testing.T) {
			kept = append(kept, checkPowerCutShard(t, image, l))
		})
	}
	t.Logf("applied indexes kept by the images: %v", kept)
}

// checkPowerCutShard opens the shard from image and checks it holds the
// entries up to its applied index, none after, and takes a replay of the
// whole log. It returns the applied index found.
func checkPowerCutShard(t *testing.T, image *vfs.MemFS, l Layout) uint64 {
	t.Helper()
	s, err := openShard(image, l, 0, setExec, nil, 0)
	if err != nil {
		t.Fatalf("opening after the power cut: %v", err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	a, _ := s.Applied()
	check := func(upTo uint64) {
		t.Helper()
		for i := uint64(1); i <= upTo+3; i++ {
			v := get(t, s, fmt.Sprint("k", i)) // "" when absent
			switch {
			case i <= upTo && v != fmt.Sprint("v", i):
				t.Fatalf("applied index %d, but entry %d's key reads %q", upTo, i, v)
			case i > upTo && v != "":
				t.Fatalf("applied index %d, but entry %d's key is there", upTo, i)
			}
		}
	}
	check(a)
	// Raft replays from the start of its log: what the store holds is
	// skipped (no result), the rest applied.
	var logs []*raft.Log
	for i := uint64(1); i <= a+5; i++ {
		logs = append(logs, shardEntry(t, i))
	}
	for i, r := range s.ApplyBatch(logs) {
		if skipped := uint64(i+1) <= a; skipped != (r == nil) {
			t.Fatalf("replay of entry %d at applied index %d: result %v", i+1, a, r)
		}
	}
	if got, _ := s.Applied(); got != a+5 {
		t.Fatalf("applied index %d after the replay, want %d", got, a+5)
	}
	check(a + 5)
	return a
}

func shardEntry(t testing.TB, i uint64) *raft.Log {
	return entry(t, i, 1, fmt.Sprint("k", i), fmt.Sprint("v", i))
}
