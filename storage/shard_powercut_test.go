package storage

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
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
	s, err := openShard(fs, l, 0, setExec, nil, 0, nil)
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
	s, err := openShard(image, l, 0, setExec, nil, 0, nil)
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

// A restore builds the new store beside the old one and swaps it in with
// renames. A power cut at any point of it leaves, once the shard opens
// again, the old store or the new one, whole; a cut after RestoreDir
// returned leaves the new one. The test takes an image of the file system
// before every change RestoreDir (and the Pebble it opens) makes to it.
func TestRestoreSurvivesPowerCuts(t *testing.T) {
	mem := vfs.NewCrashableMem()
	apply := func(s *Shard, from, to uint64, prefix string) {
		t.Helper()
		for i := from; i <= to; i++ {
			if r := s.ApplyBatch([]*raft.Log{entry(t, i, 1, fmt.Sprint(prefix, i), fmt.Sprint("v", i))})[0]; r == nil {
				t.Fatalf("entry %d skipped", i)
			}
			if i%10 == 0 { // some in sstables, some in the memtable
				s.mu.RLock()
				err := s.db.Flush()
				s.mu.RUnlock()
				if err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	type state struct {
		applied uint64
		sum     uint32
		keys    int
	}
	stateOf := func(s *Shard) state {
		t.Helper()
		a, sum, keys, err := s.Checksum()
		if err != nil {
			t.Fatal(err)
		}
		return state{a, sum, keys}
	}

	// The checkpoint to restore, and the store it replaces (closed and
	// opened again: durable).
	src, err := openShard(mem, Layout{Dir: "/src"}, 0, setExec, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	apply(src, 1, 45, "new")
	if err := src.checkpoint("/ckpt"); err != nil {
		t.Fatal(err)
	}
	wantNew := stateOf(src)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	l := Layout{Dir: "/node"}
	s, err := openShard(mem, l, 0, setExec, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	apply(s, 1, 12, "old")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = openShard(mem, l, 0, setExec, nil, 0, nil); err != nil {
		t.Fatal(err)
	}
	wantOld := stateOf(s)

	var (
		mu      sync.Mutex
		images  []*vfs.MemFS
		hooking atomic.Bool
	)
	rng := rand.New(rand.NewPCG(3, 3))
	// cut takes an image keeping unsynced% of what is not synced (-1: a
	// random share; -2: none or all). Pebble's own goroutines call it too.
	cut := func(unsynced int) {
		mu.Lock()
		defer mu.Unlock()
		switch unsynced {
		case -1:
			unsynced = rng.IntN(101)
		case -2:
			unsynced = 100 * rng.IntN(2)
		}
		images = append(images, mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: rng}))
	}
	kvDir := l.KVDir(0)
	hooking.Store(true)
	s.fs = &cuttingFS{FS: mem, before: func(name string) {
		if !hooking.Load() {
			return
		}
		// Inside the swapped-in store, Pebble opens: it is made to
		// survive a crash that keeps what was synced, or everything (a
		// killed process), not an arbitrary share of its unsynced
		// directory entries (its own crash tests at open keep none).
		if strings.HasPrefix(name, kvDir+"/") && filepath.Base(name) != completeMarker {
			cut(-2)
			return
		}
		cut(-1)
	}}
	if err := s.RestoreDir("/ckpt"); err != nil {
		t.Fatal(err)
	}
	hooking.Store(false)
	if got := stateOf(s); got != wantNew {
		t.Fatalf("restored: %+v, want %+v", got, wantNew)
	}
	mu.Lock()
	during := len(images)
	mu.Unlock()
	cut(0) // what was synced when RestoreDir returned
	cut(50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var olds, news int
	for i, image := range images {
		s, err := openShard(image, l, 0, setExec, nil, 0, nil)
		if err != nil {
			t.Fatalf("image %d of %d: opening after the power cut: %v", i, len(images), err)
		}
		switch got := stateOf(s); {
		case got == wantNew:
			news++
		case got == wantOld && i < during:
			olds++
		default:
			t.Errorf("image %d of %d (restore returned after %d): the shard holds %+v; want the old %+v or the new %+v",
				i, len(images), during, got, wantOld, wantNew)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Both outcomes occur: the images straddle the swap.
	if olds == 0 || news == 0 {
		t.Fatalf("%d images kept the old store and %d the new one; want some of each", olds, news)
	}
	t.Logf("%d images: %d kept the old store, %d the new one", len(images), olds, news)
}

// cuttingFS calls before, with the path, ahead of every change to the
// file system.
type cuttingFS struct {
	vfs.FS
	before func(name string)
}

func (c *cuttingFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	c.before(name)
	return c.FS.Create(name, cat)
}

func (c *cuttingFS) Link(oldname, newname string) error {
	c.before(newname)
	return c.FS.Link(oldname, newname)
}

func (c *cuttingFS) Rename(oldname, newname string) error {
	c.before(newname)
	return c.FS.Rename(oldname, newname)
}

func (c *cuttingFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	c.before(newname)
	return c.FS.ReuseForWrite(oldname, newname, cat)
}

func (c *cuttingFS) Remove(name string) error {
	c.before(name)
	return c.FS.Remove(name)
}

func (c *cuttingFS) RemoveAll(name string) error {
	c.before(name)
	return c.FS.RemoveAll(name)
}

func (c *cuttingFS) MkdirAll(dir string, perm os.FileMode) error {
	c.before(dir)
	return c.FS.MkdirAll(dir, perm)
}

func (c *cuttingFS) OpenDir(name string) (vfs.File, error) {
	c.before(name + "/") // a directory is opened to be synced
	return c.FS.OpenDir(name)
}
