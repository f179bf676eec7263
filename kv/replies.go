package kv

import (
	"bytes"
	"strconv"

	"github.com/coppice-kv/coppice/messages"
	respw "github.com/coppice-kv/coppice/resp"
)

// Replies the engine builds. Shared replies (replyOK, the small integers,
// nullBulk, the fixed errors) are returned to many callers: a caller must not
// modify a reply it gets from Exec or Read.

func status(s string) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Status{Status: s}}
}

func errReply(s string) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Error{Error: s}}
}

func integer(n int64) *messages.Reply {
	if n >= 0 && n < int64(len(smallInts)) {
		return smallInts[n]
	}
	return &messages.Reply{Value: &messages.Reply_Integer{Integer: n}}
}

func bulk(b []byte) *messages.Reply {
	if b == nil {
		b = []byte{}
	}
	return &messages.Reply{Value: &messages.Reply_Bulk{Bulk: b}}
}

func bulkString(s string) *messages.Reply { return bulk([]byte(s)) }

func array(items []*messages.Reply) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Array{Array: &messages.Replies{Items: items}}}
}

func mapReply(items []*messages.Reply) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Map{Map: &messages.Replies{Items: items}}}
}

func setReply(items []*messages.Reply) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Set{Set: &messages.Replies{Items: items}}}
}

var (
	replyOK   = status("OK")
	nullBulk  = &messages.Reply{Value: &messages.Reply_NullBulk{NullBulk: true}}
	emptyBulk = bulk([]byte{})
	smallInts = func() (s [16]*messages.Reply) {
		for i := range s {
			s[i] = &messages.Reply{Value: &messages.Reply_Integer{Integer: int64(i)}}
		}
		return s
	}()
	zero         = smallInts[0]
	one          = smallInts[1]
	minusOne     = &messages.Reply{Value: &messages.Reply_Integer{Integer: -1}}
	minusTwo     = &messages.Reply{Value: &messages.Reply_Integer{Integer: -2}}
	statusNone   = status("none")
	statusString = status("string")
	statusHash   = status("hash")
	statusSet    = status("set")
	statusList   = status("list")
	statusZSet   = status("zset")
	statusStream = status("stream")
	nullArray    = &messages.Reply{Value: &messages.Reply_NullArray{NullArray: true}}
)

// replies carves the elements of one big reply (LRANGE, HGETALL,
// SMEMBERS, ZRANGE, MGET) out of shared blocks: the replies, their values'
// wrappers and the bytes copied into them. Made one by one, an element
// costs three allocations, and a 600-element LRANGE spent more of its time
// in the allocator and the collector than in the store. A full block is
// not grown by append, which would copy the replies already handed out
// (protobuf messages must not be copied): the next one is made, twice as
// big. The elements are as immutable as any reply, and keep their blocks
// alive as long as one of them is referenced.
//
// A client's read (Command.bulks) gets its bulk strings written out
// instead, into one buffer (messages.Bulks): no object an element, and
// nothing for the collector to scan. An element of another kind turns
// them back into items first.
type replies struct {
	items  []*messages.Reply
	rs     []messages.Reply
	bulks  []messages.Reply_Bulk
	copies arena

	encoding bool   // the elements are written out into enc
	enc      []byte // their RESP
	n        int    // how many enc holds
	expect   int    // newReplies' guess, to size enc
}

// newReplies makes room for n elements (a guess: more may be added).
func newReplies(n int) *replies {
	n = max(n, 0)
	return &replies{items: make([]*messages.Reply, 0, n), rs: make([]messages.Reply, 0, max(n, 4))}
}

// newReplies is newReplies(n), written out when the command's reply may
// be (txn.encodeBulks).
func (t *txn) newReplies(n int) *replies {
	if t.encodeBulks {
		return &replies{encoding: true, expect: max(n, 1)}
	}
	return newReplies(n)
}

// encode appends v, written out. The buffer starts with room for as many
// like the first element as the elements expected, at most 1 MiB unless
// that element alone is more; append grows it after.
func (b *replies) encode(v []byte) {
	if b.enc == nil {
		one := len(v) + 16 // its header and CRLFs
		b.enc = make([]byte, 0, max(one, min(one*b.expect, 1<<20)))
	}
	b.enc = respw.AppendBulk(b.enc, v)
	b.n++
}

// unencode turns the elements written out so far into items, for an
// element of another kind.
func (b *replies) unencode() {
	enc, n := b.enc, b.n
	*b = *newReplies(max(b.expect, n))
	for range n {
		v, rest := decodeBulk(enc)
		b.bulkRef(v)
		enc = rest
	}
}

// decodeBulk splits the first bulk string AppendBulk wrote off enc.
func decodeBulk(enc []byte) (v, rest []byte) {
	i := bytes.IndexByte(enc, '\r')
	n, _ := strconv.Atoi(string(enc[1:i]))
	start := i + 2
	return enc[start : start+n : start+n], enc[start+n+2:]
}

// next is a fresh reply from the block, added to the elements.
func (b *replies) next() *messages.Reply {
	if b.encoding {
		b.unencode()
	}
	if len(b.rs) == cap(b.rs) {
		b.rs = make([]messages.Reply, 0, 2*cap(b.rs))
	}
	b.rs = b.rs[:len(b.rs)+1]
	r := &b.rs[len(b.rs)-1]
	b.items = append(b.items, r)
	return r
}

// bulkRef adds a bulk string of v itself: v must not change afterwards.
func (b *replies) bulkRef(v []byte) {
	if b.encoding {
		b.encode(v)
		return
	}
	if v == nil {
		v = []byte{}
	}
	if len(b.bulks) == cap(b.bulks) {
		b.bulks = make([]messages.Reply_Bulk, 0, max(cap(b.rs), 2*cap(b.bulks)))
	}
	b.bulks = append(b.bulks, messages.Reply_Bulk{Bulk: v})
	b.next().Value = &b.bulks[len(b.bulks)-1]
}

// bulk adds a bulk string of a copy of v. A new block for the copies
// has room for as many like v as the elements still expected, so a reply
// of like elements takes one or two.
func (b *replies) bulk(v []byte) {
	if b.encoding {
		b.encode(v)
		return
	}
	b.bulkRef(b.copies.copy(v, len(v)*max(cap(b.items)-len(b.items), 1)))
}

// bulkRefs is the elements vs, each a bulk string of itself.
func (t *txn) bulkRefs(vs [][]byte) *replies {
	b := t.newReplies(len(vs))
	for _, v := range vs {
		b.bulkRef(v)
	}
	return b
}

// add adds a reply made elsewhere.
func (b *replies) add(r *messages.Reply) {
	if b.encoding {
		b.unencode()
	}
	b.items = append(b.items, r)
}

func (b *replies) array() *messages.Reply    { return b.reply(messages.Bulks_ARRAY, array) }
func (b *replies) mapReply() *messages.Reply { return b.reply(messages.Bulks_MAP, mapReply) }
func (b *replies) setReply() *messages.Reply { return b.reply(messages.Bulks_SET, setReply) }

// reply is the elements as a reply of kind: written out, or items.
func (b *replies) reply(kind messages.Bulks_Kind, items func([]*messages.Reply) *messages.Reply) *messages.Reply {
	if !b.encoding {
		return items(b.items)
	}
	return &messages.Reply{Value: &messages.Reply_Bulks{Bulks: &messages.Bulks{Kind: kind, Count: int64(b.n), Body: b.enc}}}
}

// arena copies byte strings into shared blocks: many small copies cost a
// few allocations. The copies stay valid (and keep their block alive) as
// long as any of them is referenced.
type arena struct{ buf []byte }

// copy copies v into the block in use, or into a new one of size bytes
// (at least v's length, at most 1 MiB unless v is bigger; with size 0, as
// many more bytes again as the copies so far took) when v does not fit.
func (a *arena) copy(v []byte, size int) []byte {
	if len(v) > cap(a.buf)-len(a.buf) {
		if size <= 0 {
			size = 2 * cap(a.buf)
		}
		a.buf = make([]byte, 0, max(len(v), min(size, 1<<20), 512))
	}
	start := len(a.buf)
	a.buf = append(a.buf, v...)
	return a.buf[start:len(a.buf):len(a.buf)]
}
