package kv

import "github.com/coppice-kv/coppice/messages"

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
