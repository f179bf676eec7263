package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// rawExpiryKey is kv's expiry index key of key at when.
func rawExpiryKey(when int64, key string) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(when)^1<<63)
	return "\x03" + string(b[:]) + key
}

// checkCounts fails unless the shard's counts are what a pass over its
// counted keys finds.
func checkCounts(t *testing.T, s *Shard, what string) {
	t.Helper()
	got := s.counts.Load()
	if got == nil {
		t.Fatalf("%s: the shard keeps no counts", what)
	}
	want, err := countKeys(pebbleRW{r: s.db})
	if err != nil {
		t.Fatal(err)
	}
	if *got != want {
		t.Fatalf("%s: counts %+v, the store holds %+v", what, *got, want)
	}
}

// Random batches of sets, deletions and range deletions of records,
// expiry index entries (some before 1970, some far ahead) and fields:
// after each, the counts are what the store holds, and so after a
// reopen, and after a reopen of a store without them (counted as it
// opens, then kept).
func TestKeyCountsFollowTheStore(t *testing.T) {
	l := Layout{Dir: t.TempDir()}
	open := func() *Shard {
		s, err := OpenShard(l, 0, opsExec, nil, 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	rng := rand.New(rand.NewPCG(3, 4))
	whens := []int64{-5, 0, 1, 1 << 40, 1<<62 + 7, -(1 << 62)}
	key := func() string {
		k := fmt.Sprintf("k%02d", rng.IntN(30))
		switch rng.IntN(3) {
		case 0:
			return "\x01" + k
		case 1:
			return rawExpiryKey(whens[rng.IntN(len(whens))], k)
		}
		return "\x02" + k
	}
	ranges := [][2]string{{"\x01", "\x04"}, {"\x01k05", "\x01k20"}, {"\x00z", "\x01k10"}, {"\x03", "\x03\x80"}, {"\x02k10", "\x03\x80\x00"}, {"\x02", "\x03"}}
	index := uint64(0)
	for round := range 3 {
		for range 150 {
			var batch [][]string
			for n := rng.IntN(8) + 1; n > 0; n-- {
				switch r := rng.IntN(100); {
				case r < 55:
					batch = append(batch, []string{"SET", key(), "v"})
				case r < 90:
					batch = append(batch, []string{"DEL", key()})
				default:
					rg := ranges[rng.IntN(len(ranges))]
					batch = append(batch, []string{"DELRANGE", rg[0], rg[1]})
				}
			}
			index++
			s.ApplyBatch([]*raft.Log{opsEntry(t, index, batch...)})
			checkCounts(t, s, fmt.Sprintf("round %d, entry %d %q", round, index, batch))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if round > 0 { // as a build before the counts, or one that does not keep them, left the store
			db, err := openPebble(vfs.Default, l.KVDir(0), newFault("test"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if round == 1 {
				err = db.Delete(countsKey, pebble.NoSync)
			} else {
				index++
				var rec [16]byte
				binary.BigEndian.PutUint64(rec[:], index)
				b := db.NewBatch()
				b.Set([]byte("\x01written-without-counting"), []byte("v"), nil)
				b.Set(appliedKey, rec[:], nil)
				err = b.Commit(pebble.NoSync)
			}
			if err == nil {
				err = db.Flush() // no WAL
			}
			if err := errors.Join(err, db.Close()); err != nil {
				t.Fatal(err)
			}
		}
		kept := func() bool {
			applied, _ := s.Applied()
			_, kept, err := readCounts(s.db, applied)
			if err != nil {
				t.Fatal(err)
			}
			return kept
		}
		s = open()
		checkCounts(t, s, fmt.Sprintf("reopened after round %d", round))
		if k := kept(); k != (round == 0) {
			t.Fatalf("reopened after round %d: the store kept counts at its index: %v", round, k)
		}
		// The next commit keeps them, even one that moves none.
		index++
		s.ApplyBatch([]*raft.Log{opsEntry(t, index, []string{"SET", "\x02field", "v"})})
		if !kept() {
			t.Fatalf("round %d: the commit after the reopen did not keep the counts", round)
		}
	}
	s.Close()
}

// DBSIZE and INFO keyspace from the counts answer what passes over the
// keys and the expiry index answer, keys past their expiry (not yet
// deleted) left out.
func TestDBSizeFromTheCountsIsThePassOverTheKeys(t *testing.T) {
	l := Layout{Dir: t.TempDir()}
	s, err := OpenShard(l, 0, kv.ExecEvents, nil, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	now := int64(1_000_000)
	index := uint64(0)
	do := func(args ...string) {
		var b messages.CommandBatch
		c := &messages.Command{NowMs: now}
		for _, a := range args {
			c.Args = append(c.Args, []byte(a))
		}
		b.Commands = append(b.Commands, c)
		data, err := proto.Marshal(&b)
		if err != nil {
			t.Fatal(err)
		}
		index++
		s.ApplyBatch([]*raft.Log{{Index: index, Term: 1, Type: raft.LogCommand, Data: data}})
	}
	read := func(r kv.Reader, name string) []int64 {
		var out []int64
		rep := kv.ReadCommand(r, &messages.Command{Args: [][]byte{[]byte(name)}, NowMs: now})
		if rep.GetError() != "" {
			t.Fatal(rep.GetError())
		}
		if len(rep.GetArray().GetItems()) == 0 {
			return []int64{rep.GetInteger()}
		}
		for _, it := range rep.GetArray().GetItems() {
			out = append(out, it.GetInteger())
		}
		return out
	}
	for step := range 300 {
		k := fmt.Sprintf("k%d", rng.IntN(60))
		switch r := rng.IntN(100); {
		case r < 40:
			do("SET", k, "v")
		case r < 60:
			do("SET", k, "v", "PX", fmt.Sprint(1+rng.IntN(50)))
		case r < 70:
			do("HSET", k, "f", "v")
		case r < 80:
			do("DEL", k)
		case r < 88:
			do("PEXPIRE", k, fmt.Sprint(1+rng.IntN(50)))
		case r < 94:
			do("PERSIST", k)
		case r < 96:
			do("FLUSHALL")
		default:
			do("RENAME", k, fmt.Sprintf("k%d", rng.IntN(60)))
		}
		now += int64(rng.IntN(5))
		checkCounts(t, s, fmt.Sprintf("step %d", step))
		for _, name := range []string{"DBSIZE", kv.KeyspaceInfoName} {
			var counted, passed []int64
			if err := s.View(func(r kv.Reader) error {
				if _, ok := r.(kv.KeyCounter); !ok {
					t.Fatal("the shard's reader keeps no counts")
				}
				counted = read(r, name)
				passed = read(pebbleRW{r: s.db}, name)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(counted) != fmt.Sprint(passed) {
				t.Fatalf("step %d, at %d: %q from the counts %v, from passes over the keys %v", step, now, name, counted, passed)
			}
		}
	}
}

// A snapshot carries the counts with the data, and a restore takes both.
func TestKeyCountsComeWithASnapshot(t *testing.T) {
	open := func() (*Shard, *SnapshotStore) {
		s, snaps := openShardWith(t, t.TempDir(), opsExec)
		t.Cleanup(func() { s.Close() })
		return s, snaps
	}
	from, snaps := open()
	var batch [][]string
	for i := range 40 {
		batch = append(batch, []string{"SET", fmt.Sprintf("\x01k%02d", i), "v"})
		if i%3 == 0 {
			batch = append(batch, []string{"SET", rawExpiryKey(int64(i)<<40, fmt.Sprintf("k%02d", i)), ""})
		}
	}
	from.ApplyBatch([]*raft.Log{opsEntry(t, 1, batch...)})
	checkCounts(t, from, "the source")
	id := persist(t, from, snaps, 1)
	to, _ := open()
	to.ApplyBatch([]*raft.Log{opsEntry(t, 1, []string{"SET", "\x01other", "v"})})
	restoreFrom(t, snaps, id, to)
	checkCounts(t, to, "the restored shard")
	if got, want := *to.counts.Load(), *from.counts.Load(); got != want || got.keys != 40 || got.expiring != 14 {
		t.Fatalf("restored counts %+v, the source's %+v (want 40 keys, 14 expiring)", got, want)
	}
}
