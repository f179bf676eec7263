package server

import "github.com/coppice-kv/coppice/messages"

func status(s string) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Status{Status: s}}
}
func errorf(s string) *messages.Reply { return &messages.Reply{Value: &messages.Reply_Error{Error: s}} }
func integer(n int64) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Integer{Integer: n}}
}
func bulk(b []byte) *messages.Reply { return &messages.Reply{Value: &messages.Reply_Bulk{Bulk: b}} }
func bulkString(s string) *messages.Reply {
	return bulk([]byte(s))
}
func nullBulk() *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_NullBulk{NullBulk: true}}
}
func nullArray() *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_NullArray{NullArray: true}}
}
func array(items ...*messages.Reply) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Array{Array: &messages.Replies{Items: items}}}
}
func mapReply(items ...*messages.Reply) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Map{Map: &messages.Replies{Items: items}}}
}
func verbatim(s string) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Verbatim{Verbatim: s}}
}

var (
	replyOK   = status("OK")
	replyPong = status("PONG")
)
