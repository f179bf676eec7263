package kv

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/coppice-kv/coppice/kv/kvmem"
	"github.com/coppice-kv/coppice/messages"
)

// memStore is the in-memory Writer the engine's tests run on.
type memStore = kvmem.Store

func newMemStore() *memStore { return kvmem.New() }

// pebbleStore runs the engine on a Pebble indexed batch, as a shard does.
type pebbleStore struct {
	db *pebble.DB
	b  *pebble.Batch
}

func newPebbleStore(t testing.TB) *pebbleStore {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: quietLogger{}, CacheSize: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s := &pebbleStore{db: db, b: db.NewIndexedBatch()}
	t.Cleanup(func() {
		s.b.Close()
		db.Close()
	})
	return s
}

func (s *pebbleStore) Get(key []byte) ([]byte, bool, error) {
	v, closer, err := s.b.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	return bytes.Clone(v), true, nil
}

func (s *pebbleStore) Scan(lower, upper []byte, fn func(k, v []byte) bool) error {
	return s.scan(lower, upper, false, fn)
}

func (s *pebbleStore) ReverseScan(lower, upper []byte, fn func(k, v []byte) bool) error {
	return s.scan(lower, upper, true, fn)
}

func (s *pebbleStore) scan(lower, upper []byte, reverse bool, fn func(k, v []byte) bool) error {
	it, err := s.b.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	first, next := it.First, it.Next
	if reverse {
		first, next = it.Last, it.Prev
	}
	for ok := first(); ok; ok = next() {
		if !fn(it.Key(), it.Value()) {
			break
		}
	}
	return errors.Join(it.Error(), it.Close())
}

func (s *pebbleStore) Set(key, value []byte) error     { return s.b.Set(key, value, nil) }
func (s *pebbleStore) Delete(key []byte) error         { return s.b.Delete(key, nil) }
func (s *pebbleStore) DeleteRange(lo, hi []byte) error { return s.b.DeleteRange(lo, hi, nil) }

// commit commits the batch and starts a new one, so tests also read
// committed state.
func (s *pebbleStore) commit(t testing.TB) {
	if err := s.b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	s.b.Close()
	s.b = s.db.NewIndexedBatch()
}

// stores runs fn on each Writer implementation.
func stores(t *testing.T, fn func(t *testing.T, h *harness)) {
	t.Run("mem", func(t *testing.T) {
		fn(t, &harness{t: t, w: newMemStore(), now: 1_000_000})
	})
	t.Run("pebble", func(t *testing.T) {
		ps := newPebbleStore(t)
		fn(t, &harness{t: t, w: ps, pebble: ps, now: 1_000_000})
	})
}

// harness runs commands at a settable time.
type harness struct {
	t      *testing.T
	w      Writer
	pebble *pebbleStore
	now    int64
	n      int
}

// do runs a command as the node would: writes with Exec, reads with Read.
// Every few commands the Pebble store commits its batch.
func (h *harness) do(args ...string) *messages.Reply {
	h.t.Helper()
	a := make([][]byte, len(args))
	for i, s := range args {
		a[i] = []byte(s)
	}
	if r := CheckArity(a); r != nil {
		return r
	}
	s, _ := Lookup(a[0])
	var r *messages.Reply
	if s.Write {
		r = Exec(h.w, &messages.Command{Args: a, NowMs: h.now})
	} else {
		// As a client's read too (Command.bulks): a reply written out
		// must be the same reply.
		r = Read(h.w, a, h.now)
		if out := ReadCommand(h.w, &messages.Command{Args: a, NowMs: h.now, Bulks: true}); out.GetBulks() != nil {
			if render(out) != render(r) {
				h.t.Errorf("%q written out: %s, as items: %s", args, render(out), render(r))
			}
		}
	}
	h.n++
	if h.pebble != nil && h.n%3 == 0 {
		h.pebble.commit(h.t)
	}
	return r
}

// is checks a command's reply, written as render writes it.
func (h *harness) is(want string, args ...string) {
	h.t.Helper()
	if got := render(h.do(args...)); got != want {
		h.t.Errorf("%s: got %s, want %s", strings.Join(args, " "), got, want)
	}
}

// fails checks that a command replies with error want and changes nothing.
func (h *harness) fails(want string, args ...string) {
	h.t.Helper()
	before := dump(h.t, h.w)
	got := render(h.do(args...))
	if got != "-"+want {
		h.t.Errorf("%s: got %s, want -%s", strings.Join(args, " "), got, want)
	}
	if after := dump(h.t, h.w); after != before {
		h.t.Errorf("%s changed the store:\nbefore %s\nafter  %s", strings.Join(args, " "), before, after)
	}
}

// dump renders every engine key of a store.
func dump(t *testing.T, r Reader) string {
	t.Helper()
	var b strings.Builder
	err := r.Scan([]byte{1}, []byte{0xff}, func(k, v []byte) bool {
		fmt.Fprintf(&b, "%q=%q ", k, v)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// render writes a reply compactly: +OK, -ERR ..., :3, "bulk", nil,
// [a b], {k v}, ~[a b], p[k v] (pairs), k{k v} (keyed), ,1.5 (a double).
func render(r *messages.Reply) string {
	switch v := r.GetValue().(type) {
	case *messages.Reply_Status:
		return "+" + v.Status
	case *messages.Reply_Error:
		return "-" + v.Error
	case *messages.Reply_Integer:
		return ":" + strconv.FormatInt(v.Integer, 10)
	case *messages.Reply_Bulk:
		return strconv.Quote(string(v.Bulk))
	case *messages.Reply_NullBulk, *messages.Reply_NullArray:
		return "nil"
	case *messages.Reply_Array:
		return "[" + renderItems(v.Array.GetItems()) + "]"
	case *messages.Reply_Map:
		return "{" + renderItems(v.Map.GetItems()) + "}"
	case *messages.Reply_Set:
		return "~[" + renderItems(v.Set.GetItems()) + "]"
	case *messages.Reply_Pairs:
		return "p[" + renderItems(v.Pairs.GetItems()) + "]"
	case *messages.Reply_Keyed:
		return "k{" + renderItems(v.Keyed.GetItems()) + "}"
	case *messages.Reply_Double:
		return "," + strconv.FormatFloat(v.Double, 'g', -1, 64)
	case *messages.Reply_Bulks:
		items := renderItems(bulksItems(r))
		switch v.Bulks.GetKind() {
		case messages.Bulks_MAP:
			return "{" + items + "}"
		case messages.Bulks_SET:
			return "~[" + items + "]"
		}
		return "[" + items + "]"
	}
	return fmt.Sprintf("?%v", r)
}

func renderItems(items []*messages.Reply) string {
	s := make([]string, len(items))
	for i, it := range items {
		s[i] = render(it)
	}
	return strings.Join(s, " ")
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
