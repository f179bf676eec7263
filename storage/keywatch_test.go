package storage

import (
	"testing"

	"github.com/coppice-kv/coppice/messages"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// A watch fires once an applied entry writes one of its keys, not for
// other keys, nor for an entry at or below the applied index; a dropped
// watch never fires; a restore fires every watch, a deleted range the
// watches of its keys.
func TestShardWatch(t *testing.T) {
	s, snaps := openTestShard(t, t.TempDir())
	defer s.Close()
	fired := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	a, stopA := s.Watch([][]byte{[]byte("\x01a"), []byte("\x01b")})
	c, stopC := s.Watch([][]byte{[]byte("\x01c")})
	dropped, stopDropped := s.Watch([][]byte{[]byte("\x01b")})
	stopDropped()
	s.Apply(entry(t, 1, 1, "z", "1"))
	if fired(a) || fired(c) {
		t.Fatal("a write of another key fired a watch")
	}
	s.Apply(entry(t, 2, 1, "b", "1"))
	if !fired(a) || fired(c) || fired(dropped) {
		t.Fatalf("after b: a %v, c %v, dropped %v; want only a", fired(a), fired(c), fired(dropped))
	}
	stopA()                                  // after it fired: nothing to do
	s.Apply(entry(t, 2, 1, "c", "replayed")) // at the applied index: skipped
	if fired(c) {
		t.Fatal("a skipped entry fired a watch")
	}
	dir := persist(t, s, snaps, 2)
	s.Apply(entry(t, 3, 1, "x", "1"))
	restoreFrom(t, snaps, dir, s)
	if !fired(c) {
		t.Fatal("a restore did not fire the watch")
	}
	stopC()
	// A range deleted (FLUSHALL) fires the watches of the keys in it.
	f, stopF := s.Watch([][]byte{[]byte("\x01x")})
	g, stopG := s.Watch([][]byte{[]byte("\x02y")})
	flush, err := proto.Marshal(&messages.CommandBatch{Commands: []*messages.Command{{Args: [][]byte{[]byte("DELRANGE"), {1}, {2}}}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Apply(&raft.Log{Index: 4, Term: 1, Type: raft.LogCommand, Data: flush})
	if !fired(f) || fired(g) {
		t.Fatalf("a range deleted: the watch of a key in it fired %v, of a key past it %v", fired(f), fired(g))
	}
	stopF()
	stopG()
	if n := s.watches.n.Load(); n != 0 {
		t.Fatalf("%d watches left", n)
	}
}
