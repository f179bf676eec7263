package storage

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func openNodeLog(t *testing.T, dir string) *NodeLog {
	t.Helper()
	n, err := OpenNodeLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// group opens group id of n as the node does: cached.
func group(t *testing.T, n *NodeLog, id uint32) LogStore {
	t.Helper()
	g, err := n.Group(id)
	if err != nil {
		t.Fatal(err)
	}
	return Cached(g)
}

func entries(from, to, term uint64) []*raft.Log {
	var b []*raft.Log
	for i := from; i <= to; i++ {
		b = append(b, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: []byte{byte(i), byte(term)}})
	}
	return b
}

func bounds(t *testing.T, s raft.LogStore) (uint64, uint64) {
	t.Helper()
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return first, last
}

// Groups share the store but nothing else: indexes, deletions and stable
// values are each group's own, and all of it survives a reopen.
func TestNodeLogGroupsAreSeparate(t *testing.T) {
	dir := t.TempDir()
	n := openNodeLog(t, dir)
	a, b, sys := group(t, n, 0), group(t, n, 1), group(t, n, SystemGroup)
	if _, err := n.Group(1); err == nil {
		t.Fatal("a second open of group 1 succeeded")
	}
	for _, s := range []LogStore{a, b, sys} {
		if f, l := bounds(t, s); f != 0 || l != 0 {
			t.Fatalf("new group: bounds %d..%d, want 0..0", f, l)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.StoreLogs(entries(1, 50, 1)))
	must(b.StoreLogs(entries(1, 10, 2)))
	must(sys.StoreLogs(entries(1, 3, 3)))
	must(a.DeleteRange(1, 20))
	must(a.SetUint64([]byte("CurrentTerm"), 5))
	must(b.Set([]byte("LastVoteCand"), []byte("n2")))
	check := func(stage string, a, b, sys LogStore) {
		t.Helper()
		for _, c := range []struct {
			s           LogStore
			first, last uint64
			term        uint64
		}{{a, 21, 50, 1}, {b, 1, 10, 2}, {sys, 1, 3, 3}} {
			if f, l := bounds(t, c.s); f != c.first || l != c.last {
				t.Fatalf("%s: bounds %d..%d, want %d..%d", stage, f, l, c.first, c.last)
			}
			var l raft.Log
			if err := c.s.GetLog(c.last, &l); err != nil || l.Term != c.term || l.Index != c.last || l.Data[0] != byte(c.last) {
				t.Fatalf("%s: GetLog(%d) = %+v, %v", stage, c.last, l, err)
			}
		}
		var l raft.Log
		if err := a.GetLog(20, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("%s: group 0 entry 20 after its deletion: %v, want ErrLogNotFound", stage, err)
		}
		if err := b.GetLog(20, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("%s: group 1 entry 20, never written: %v, want ErrLogNotFound", stage, err)
		}
		if v, err := a.GetUint64([]byte("CurrentTerm")); err != nil || v != 5 {
			t.Fatalf("%s: group 0 CurrentTerm %d, %v; want 5", stage, v, err)
		}
		if v, err := b.GetUint64([]byte("CurrentTerm")); err != nil || v != 0 {
			t.Fatalf("%s: group 1 CurrentTerm %d, %v; want unset (0)", stage, v, err)
		}
		if v, err := b.Get([]byte("LastVoteCand")); err != nil || string(v) != "n2" {
			t.Fatalf("%s: group 1 LastVoteCand %q, %v", stage, v, err)
		}
		if v, err := a.Get([]byte("LastVoteCand")); err != nil || len(v) != 0 {
			t.Fatalf("%s: group 0 LastVoteCand %q, %v; want unset", stage, v, err)
		}
	}
	check("open", a, b, sys)
	for _, s := range []LogStore{a, b, sys} {
		must(s.Close())
	}
	must(n.Close())
	n = openNodeLog(t, dir)
	defer n.Close()
	check("reopened", group(t, n, 0), group(t, n, 1), group(t, n, SystemGroup))
}

// After the head of the log is deleted (a snapshot's compaction) the
// entries below the first index are gone; deleting everything empties the
// group, and the next append starts it again.
func TestNodeLogHeadCompaction(t *testing.T) {
	n := openNodeLog(t, t.TempDir())
	defer n.Close()
	g := group(t, n, 3)
	if err := g.StoreLogs(entries(1, 100, 1)); err != nil {
		t.Fatal(err)
	}
	if err := g.DeleteRange(1, 60); err != nil {
		t.Fatal(err)
	}
	if f, l := bounds(t, g); f != 61 || l != 100 {
		t.Fatalf("bounds %d..%d, want 61..100", f, l)
	}
	var l raft.Log
	for _, i := range []uint64{1, 30, 60} {
		if err := g.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("GetLog(%d) after trimming 1..60: %v, want raft.ErrLogNotFound", i, err)
		}
	}
	if err := g.GetLog(61, &l); err != nil || l.Data[0] != 61 {
		t.Fatalf("GetLog(61): %v, %v", l.Data, err)
	}
	// A follower installing a snapshot drops the whole log.
	if err := g.DeleteRange(61, 100); err != nil {
		t.Fatal(err)
	}
	if f, l := bounds(t, g); f != 0 || l != 0 {
		t.Fatalf("bounds after deleting everything %d..%d, want 0..0", f, l)
	}
	if err := g.StoreLogs(entries(500, 502, 4)); err != nil {
		t.Fatal(err)
	}
	if f, l := bounds(t, g); f != 500 || l != 502 {
		t.Fatalf("bounds after appending past a snapshot %d..%d, want 500..502", f, l)
	}
}

// A follower's conflicting tail is deleted and rewritten with a newer
// term: reads see the new entries, not the cached old ones, and nothing
// past the new end.
func TestNodeLogRewrittenTail(t *testing.T) {
	n := openNodeLog(t, t.TempDir())
	defer n.Close()
	g := group(t, n, 0)
	if err := g.StoreLogs(entries(1, 10, 1)); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := g.GetLog(8, &l); err != nil || l.Term != 1 {
		t.Fatalf("GetLog(8): term %d, %v", l.Term, err)
	}
	if err := g.DeleteRange(6, 10); err != nil {
		t.Fatal(err)
	}
	if err := g.StoreLogs(entries(6, 8, 2)); err != nil {
		t.Fatal(err)
	}
	for i := uint64(6); i <= 8; i++ {
		if err := g.GetLog(i, &l); err != nil || l.Term != 2 || l.Data[1] != 2 {
			t.Fatalf("GetLog(%d) after the rewrite: term %d data %v, %v; want term 2", i, l.Term, l.Data, err)
		}
	}
	if err := g.GetLog(5, &l); err != nil || l.Term != 1 {
		t.Fatalf("GetLog(5): term %d, %v; want the untouched term 1", l.Term, err)
	}
	if err := g.GetLog(9, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(9) past the rewritten end: %v, want raft.ErrLogNotFound", err)
	}
	if f, l := bounds(t, g); f != 1 || l != 8 {
		t.Fatalf("bounds %d..%d, want 1..8", f, l)
	}
}

// Every field of an entry comes back as it went in.
func TestNodeLogEntryRoundTrip(t *testing.T) {
	n := openNodeLog(t, t.TempDir())
	defer n.Close()
	g, err := n.Group(0) // uncached: the encoding itself
	if err != nil {
		t.Fatal(err)
	}
	in := []*raft.Log{
		{Index: 1, Term: 9, Type: raft.LogConfiguration, Data: []byte("conf"), Extensions: []byte("ext"), AppendedAt: time.Unix(0, 1700000000123456789)},
		{Index: 2, Term: 9, Type: raft.LogNoop},
		{Index: 3, Term: 9, Type: raft.LogCommand, Data: make([]byte, 70000)},
	}
	if err := g.StoreLogs(in); err != nil {
		t.Fatal(err)
	}
	for _, want := range in {
		var got raft.Log
		if err := g.GetLog(want.Index, &got); err != nil {
			t.Fatal(err)
		}
		if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
			string(got.Data) != string(want.Data) || string(got.Extensions) != string(want.Extensions) ||
			!got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("entry %d: got %+v, want %+v", want.Index, got, want)
		}
	}
	if err := decodeEntry([]byte{1, 2, 3}, new(raft.Log)); err == nil {
		t.Fatal("a 3-byte entry decoded")
	}
	bad := encodeEntry(nil, &raft.Log{Term: 1, Data: []byte("abcdef")})
	if err := decodeEntry(bad[:len(bad)-2], new(raft.Log)); err == nil {
		t.Fatal("an entry shorter than its data length decoded")
	}
}

// A data dir written before the NodeLog keeps each group's log in
// raft-wal: the first start moves entries and stable values over and
// removes the old dirs; a second import finds nothing to do.
func TestImportOldLogs(t *testing.T) {
	l := Layout{Dir: t.TempDir()}
	for _, id := range []uint32{0, SystemGroup} {
		old, err := OpenLogStore(l.OldRaftDir(id))
		if err != nil {
			t.Fatal(err)
		}
		if err := old.StoreLogs(entries(1, 1500, 3)); err != nil {
			t.Fatal(err)
		}
		if err := old.SetUint64([]byte("CurrentTerm"), 7); err != nil {
			t.Fatal(err)
		}
		if err := old.SetUint64([]byte("LastVoteTerm"), 6); err != nil {
			t.Fatal(err)
		}
		if err := old.Set([]byte("LastVoteCand"), []byte("n3")); err != nil {
			t.Fatal(err)
		}
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
	}
	n := openNodeLog(t, l.RaftLogDir())
	defer n.Close()
	done, err := l.ImportOldLogs(n, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 2 || done[0] != SystemGroup || done[1] != 0 {
		t.Fatalf("imported groups %v, want the system group and shard 0", done)
	}
	for _, id := range []uint32{0, SystemGroup} {
		if _, err := os.Stat(l.OldRaftDir(id)); !os.IsNotExist(err) {
			t.Fatalf("old raft dir of group %d still there: %v", id, err)
		}
		g := group(t, n, id)
		if f, last := bounds(t, g); f != 1 || last != 1500 {
			t.Fatalf("group %d: bounds %d..%d, want 1..1500", id, f, last)
		}
		var e raft.Log
		if err := g.GetLog(1234, &e); err != nil || e.Term != 3 || e.Data[0] != byte(1234%256) {
			t.Fatalf("group %d: entry 1234 %+v, %v", id, e, err)
		}
		if v, _ := g.GetUint64([]byte("CurrentTerm")); v != 7 {
			t.Fatalf("group %d: CurrentTerm %d, want 7", id, v)
		}
		if v, _ := g.GetUint64([]byte("LastVoteTerm")); v != 6 {
			t.Fatalf("group %d: LastVoteTerm %d, want 6", id, v)
		}
		if v, _ := g.Get([]byte("LastVoteCand")); string(v) != "n3" {
			t.Fatalf("group %d: LastVoteCand %q, want n3", id, v)
		}
		g.Close()
	}
	if done, err := l.ImportOldLogs(n, 2); err != nil || len(done) != 0 {
		t.Fatalf("second import: %v, %v; want nothing done", done, err)
	}
}
