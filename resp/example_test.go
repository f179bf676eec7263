package resp_test

import (
	"fmt"
	"io"
	"strings"

	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/resp"
)

// A connection loop. The client sends two pipelines: two commands, then two
// more and a protocol error. Each pipeline's replies reach the connection
// in one write, made when the Reader runs out of input or at the error.
func Example() {
	in := io.MultiReader(
		strings.NewReader("PING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n"),
		strings.NewReader("HELLO 3\r\nDBSIZE\r\n*1\r\n$-1\r\n"),
	)
	var out writeLog
	rd := resp.NewReader(in, resp.Limits{})
	wr := resp.NewWriter(&out)
	rd.OnWait(wr.Flush)
	for {
		args, err := rd.ReadCommand()
		if err != nil {
			if reply, ok := resp.ProtocolError(err); ok {
				wr.WriteError(reply)
			}
			wr.Flush()
			break
		}
		switch strings.ToUpper(string(args[0])) {
		case "PING":
			wr.WriteStatus("PONG")
		case "ECHO":
			wr.WriteBulk(args[1])
		case "HELLO":
			wr.SetProto(3)
			wr.WriteReply(&messages.Reply{Value: &messages.Reply_Map{Map: &messages.Replies{Items: []*messages.Reply{
				{Value: &messages.Reply_Bulk{Bulk: []byte("proto")}},
				{Value: &messages.Reply_Integer{Integer: 3}},
			}}}}, 0)
		default:
			wr.WriteInt(0)
		}
	}
	for _, w := range out {
		fmt.Printf("%q\n", w)
	}
	// Output:
	// "+PONG\r\n$2\r\nhi\r\n"
	// "%1\r\n$5\r\nproto\r\n:3\r\n:0\r\n-ERR Protocol error: invalid bulk length\r\n"
}

// writeLog records each write.
type writeLog []string

func (w *writeLog) Write(p []byte) (int, error) {
	*w = append(*w, string(p))
	return len(p), nil
}
