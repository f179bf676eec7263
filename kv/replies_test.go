package kv

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/coppice-kv/coppice/messages"
	respw "github.com/coppice-kv/coppice/resp"
)

// TestRepliesKeepEveryElement adds elements of many sizes, one big one
// among them, each copied from one scratch buffer that is overwritten
// after every call (as a store's iterator reuses its value), and checks
// that every element still holds what it was given.
func TestRepliesKeepEveryElement(t *testing.T) {
	b := newReplies(4)
	var want [][]byte
	scratch := make([]byte, 0, 4<<20)
	for i := range 3000 {
		size := (i * 37) % 1500
		if i == 1234 {
			size = 3 << 20
		}
		scratch = scratch[:size]
		for j := range scratch {
			scratch[j] = byte(i + j)
		}
		v := bytes.Clone(scratch)
		want = append(want, v)
		switch i % 3 {
		case 0, 1:
			b.bulk(scratch)
			clear(scratch)
		default:
			b.bulkRef(v)
		}
		if i%500 == 0 {
			b.add(nullBulk)
			want = append(want, nil)
		}
	}
	r := b.array()
	items := r.GetArray().GetItems()
	if len(items) != len(want) {
		t.Fatalf("%d elements, want %d", len(items), len(want))
	}
	for i, it := range items {
		if want[i] == nil {
			if !it.GetNullBulk() {
				t.Fatalf("element %d: %v, want the null bulk string", i, it)
			}
			continue
		}
		if _, ok := it.GetValue().(*messages.Reply_Bulk); !ok || !bytes.Equal(it.GetBulk(), want[i]) {
			t.Fatalf("element %d: %d bytes, want %d bytes as given", i, len(it.GetBulk()), len(want[i]))
		}
	}
}

// TestWrittenOutRepliesWriteAsTheirItems builds random replies both ways,
// as items and written out (a client's read, txn.encodeBulks), as each
// kind (an array, a set, a map), and checks that the client port writes
// the same bytes for both in RESP2 and RESP3. An element of another kind
// (MGET's null) turns what was written out back into items.
func TestWrittenOutRepliesWriteAsTheirItems(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	kinds := map[string]func(*replies) *messages.Reply{
		"array": (*replies).array, "set": (*replies).setReply, "map": (*replies).mapReply,
	}
	for round := range 200 {
		n := rng.IntN(40)
		if round%50 == 0 {
			n = 2000 // past any first guess of the buffer's size
		}
		elems := make([][]byte, n)
		for i := range elems {
			elems[i] = make([]byte, rng.IntN(300))
			for j := range elems[i] {
				elems[i][j] = byte(rng.IntN(256)) // \r and \n too
			}
		}
		null := -1 // an element of another kind, at this place
		if n > 2 && rng.IntN(4) == 0 {
			null = rng.IntN(n - 1) // within a map's elements too
		}
		for name, kind := range kinds {
			elems := elems
			if name == "map" {
				elems = elems[:len(elems)&^1] // keys and values
			}
			build := func(t *txn) *messages.Reply {
				b := t.newReplies(rng.IntN(n + 1))
				for i, e := range elems {
					if i == null {
						b.add(nullBulk)
					}
					if i%2 == 0 {
						b.bulk(e)
					} else {
						b.bulkRef(e)
					}
				}
				return kind(b)
			}
			items, out := build(&txn{}), build(&txn{encodeBulks: true})
			if want := null < 0; (out.GetBulks() != nil) != want {
				t.Fatalf("round %d, %s of %d with a null at %d: written out %v, want %v", round, name, n, null, out.GetBulks() != nil, want)
			}
			for _, proto := range []int{2, 3} {
				if got, want := wire(t, out, proto), wire(t, items, proto); got != want {
					at := 0
					for at < min(len(got), len(want)) && got[at] == want[at] {
						at++
					}
					t.Fatalf("round %d, %s of %d, RESP%d: written out (%d bytes) and as items (%d) differ from byte %d: %q against %q",
						round, name, len(elems), proto, len(got), len(want), at, got[at:min(at+40, len(got))], want[at:min(at+40, len(want))])
				}
			}
		}
	}
}

func wire(t *testing.T, r *messages.Reply, proto int) string {
	t.Helper()
	var b bytes.Buffer
	w := respw.NewWriter(&b)
	if err := w.WriteReply(r, proto); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestClientReadsComeWrittenOut: the big replies of a client's reads come
// written out, and only those.
func TestClientReadsComeWrittenOut(t *testing.T) {
	s := newMemStore()
	for _, c := range [][]string{
		{"RPUSH", "l", "a", "b", "c"}, {"HSET", "h", "f", "v", "g", "w"}, {"SADD", "s", "x", "y"},
		{"ZADD", "z", "1", "p", "2", "q"},
	} {
		Exec(s, command(c))
	}
	for _, c := range []struct {
		args []string
		kind messages.Bulks_Kind
	}{
		{[]string{"LRANGE", "l", "0", "-1"}, messages.Bulks_ARRAY},
		{[]string{"HGETALL", "h"}, messages.Bulks_MAP},
		{[]string{"HKEYS", "h"}, messages.Bulks_ARRAY},
		{[]string{"HVALS", "h"}, messages.Bulks_ARRAY},
		{[]string{"SMEMBERS", "s"}, messages.Bulks_SET},
		{[]string{"SUNION", "s"}, messages.Bulks_SET},
		{[]string{"ZRANGE", "z", "0", "-1"}, messages.Bulks_ARRAY},
		{[]string{"ZRANGEBYSCORE", "z", "-inf", "+inf"}, messages.Bulks_ARRAY},
	} {
		cmd := command(c.args)
		if r := ReadCommand(s, cmd); r.GetBulks() != nil {
			t.Errorf("%q without Command.bulks: written out", c.args)
		}
		cmd.Bulks = true
		r := ReadCommand(s, cmd)
		if b := r.GetBulks(); b == nil || b.GetKind() != c.kind || b.GetCount() != int64(len(bulksItems(r))) {
			t.Errorf("%q: %v, want %v written out", c.args, r, c.kind)
		}
	}
	// Scores are doubles in RESP3: not written out.
	cmd := command([]string{"ZRANGE", "z", "0", "-1", "WITHSCORES"})
	cmd.Bulks = true
	if r := ReadCommand(s, cmd); r.GetBulks() != nil {
		t.Errorf("ZRANGE WITHSCORES: written out")
	}
}

// A big first element does not size the buffer for as many more like it
// as the reply expects: an HGETALL of a hash of 4096 fields, one of them
// 4 MiB, took 16 GiB for its buffer.
func TestWrittenOutBufferIsBounded(t *testing.T) {
	b := (&txn{encodeBulks: true}).newReplies(4096)
	b.bulk(make([]byte, 4<<20))
	if c := cap(b.enc); c > 5<<20 {
		t.Fatalf("a buffer of %d bytes for one element of 4 MiB", c)
	}
	b = (&txn{encodeBulks: true}).newReplies(600)
	b.bulk(make([]byte, 64))
	if c := cap(b.enc); c < 600*64 {
		t.Fatalf("a buffer of %d bytes for 600 elements of 64 bytes", c)
	}
}

// bulksItems is the elements of r, a reply of bulk strings written out
// (Reply.bulks), as items; nil when r is another reply.
func bulksItems(r *messages.Reply) []*messages.Reply {
	bs := r.GetBulks()
	if bs == nil {
		return nil
	}
	b := &replies{encoding: true, enc: bs.GetBody(), n: int(bs.GetCount())}
	b.unencode()
	return b.items
}
