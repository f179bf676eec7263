package kv

import (
	"bytes"
	"testing"

	"github.com/coppice-kv/coppice/messages"
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
