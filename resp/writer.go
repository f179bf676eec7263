package resp

import (
	"bufio"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/coppice-kv/coppice/messages"
)

// WriteBufSize is the reply buffer's size (PROTO_REPLY_CHUNK_BYTES).
const WriteBufSize = 16 * 1024

// Writer writes replies, buffered: nothing reaches the connection before
// Flush (or before the buffer fills). It speaks RESP2 until SetProto(3). It
// is not safe for concurrent use.
//
// The Write methods return the first error of the connection, which Flush
// returns too: a caller may check only Flush's.
type Writer struct {
	b       *bufio.Writer
	proto   int
	scratch [64]byte
}

// NewWriter returns a Writer of replies to w, speaking RESP2.
func NewWriter(w io.Writer) *Writer {
	return &Writer{b: bufio.NewWriterSize(w, WriteBufSize), proto: 2}
}

// SetProto sets the protocol of the connection: 3 for RESP3, anything else
// for RESP2. HELLO switches it; HELLO's own reply is in the new protocol.
func (w *Writer) SetProto(v int) {
	if v != 3 {
		v = 2
	}
	w.proto = v
}

// Proto returns the protocol set by SetProto: 2 or 3.
func (w *Writer) Proto() int { return w.proto }

// Flush writes the buffered replies to the connection.
func (w *Writer) Flush() error { return w.b.Flush() }

// Buffered returns the number of bytes written and not yet flushed.
func (w *Writer) Buffered() int { return w.b.Buffered() }

// WriteReply writes r in protocol proto: 2 for RESP2, 3 for RESP3, any
// other value (0) for the Writer's own (SetProto). A nil reply, or one
// without a value, is written as a null bulk string.
//
// In RESP2: a map is a flat array of 2n items, a set an array, a double a
// bulk string, a boolean :1 or :0, a verbatim string a bulk string, and
// both nulls are $-1 and *-1. A map with an odd number of items is padded
// with a null.
func (w *Writer) WriteReply(r *messages.Reply, proto int) error {
	if proto != 2 && proto != 3 {
		proto = w.proto
	}
	w.reply(r, proto == 3)
	return w.err()
}

func (w *Writer) reply(r *messages.Reply, resp3 bool) {
	switch v := r.GetValue().(type) {
	case *messages.Reply_Status:
		w.line('+', v.Status)
	case *messages.Reply_Error:
		w.errorLine(v.Error)
	case *messages.Reply_Integer:
		w.header(':', v.Integer)
	case *messages.Reply_Bulk:
		w.bulk(v.Bulk)
	case *messages.Reply_NullBulk:
		w.nullBulk(resp3)
	case *messages.Reply_NullArray:
		w.nullArray(resp3)
	case *messages.Reply_Array:
		w.aggregate('*', v.Array.GetItems(), resp3)
	case *messages.Reply_Map:
		items := v.Map.GetItems()
		if resp3 {
			w.pairwise('%', false, items, resp3)
			break
		}
		w.header('*', int64(2*((len(items)+1)/2)))
		for _, it := range items {
			w.reply(it, resp3)
		}
		if len(items)%2 == 1 {
			w.nullBulk(resp3)
		}
	case *messages.Reply_Pairs:
		if resp3 {
			w.pairwise('*', true, v.Pairs.GetItems(), resp3)
		} else {
			w.aggregate('*', v.Pairs.GetItems(), resp3)
		}
	case *messages.Reply_Keyed:
		if resp3 {
			w.pairwise('%', false, v.Keyed.GetItems(), resp3)
		} else {
			w.pairwise('*', true, v.Keyed.GetItems(), resp3)
		}
	case *messages.Reply_Set:
		if resp3 {
			w.aggregate('~', v.Set.GetItems(), resp3)
		} else {
			w.aggregate('*', v.Set.GetItems(), resp3)
		}
	case *messages.Reply_Push:
		if resp3 {
			w.aggregate('>', v.Push.GetItems(), resp3)
		} else {
			w.aggregate('*', v.Push.GetItems(), resp3)
		}
	case *messages.Reply_Double:
		w.double(v.Double, resp3)
	case *messages.Reply_Boolean:
		w.boolean(v.Boolean, resp3)
	case *messages.Reply_Verbatim:
		w.verbatim(v.Verbatim, resp3)
	case *messages.Reply_Bulks:
		w.bulks(v.Bulks, resp3)
	default:
		w.nullBulk(resp3)
	}
}

// bulks writes bulk strings written out already under their kind's
// header.
func (w *Writer) bulks(b *messages.Bulks, resp3 bool) {
	n := b.GetCount()
	switch kind := b.GetKind(); {
	case resp3 && kind == messages.Bulks_SET:
		w.header('~', n)
	case resp3 && kind == messages.Bulks_MAP:
		w.header('%', n/2)
	default:
		w.header('*', n)
	}
	w.b.Write(b.GetBody())
}

// AppendBulk appends v as a bulk string, "$<length>\r\n<v>\r\n": an
// element of messages.Bulks' body.
func AppendBulk(dst, v []byte) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendInt(dst, int64(len(v)), 10)
	dst = append(dst, '\r', '\n')
	dst = append(dst, v...)
	return append(dst, '\r', '\n')
}

// pairwise writes items two by two under a header of kind counting the
// pairs, each pair an array of 2 if nested; an odd last item gets a null.
func (w *Writer) pairwise(kind byte, nested bool, items []*messages.Reply, resp3 bool) {
	w.header(kind, int64((len(items)+1)/2))
	for i := 0; i < len(items); i += 2 {
		if nested {
			w.header('*', 2)
		}
		w.reply(items[i], resp3)
		if i+1 < len(items) {
			w.reply(items[i+1], resp3)
		} else {
			w.nullBulk(resp3)
		}
	}
}

func (w *Writer) aggregate(kind byte, items []*messages.Reply, resp3 bool) {
	w.header(kind, int64(len(items)))
	for _, it := range items {
		w.reply(it, resp3)
	}
}

// The fast paths: replies written without a messages.Reply.

// WriteOK writes +OK.
func (w *Writer) WriteOK() error {
	w.b.WriteString("+OK\r\n")
	return w.err()
}

// WriteStatus writes a simple string: +s. CR and LF in s are written as
// spaces, as they would break the protocol.
func (w *Writer) WriteStatus(s string) error {
	w.line('+', s)
	return w.err()
}

// WriteError writes an error reply: -s. s is the full text with its code,
// e.g. "ERR syntax error" or "WRONGTYPE Operation against a key holding the
// wrong kind of value" (a leading '-' is not doubled). CR and LF in s are
// written as spaces, as Redis's addReplyErrorFormat does.
func (w *Writer) WriteError(s string) error {
	w.errorLine(s)
	return w.err()
}

// WriteInt writes an integer reply: :n.
func (w *Writer) WriteInt(n int64) error {
	w.header(':', n)
	return w.err()
}

// WriteBulk writes a bulk string: $len, b. A nil b is an empty string, not
// a null: see WriteNullBulk.
func (w *Writer) WriteBulk(b []byte) error {
	w.bulk(b)
	return w.err()
}

// WriteBulkString writes s as a bulk string.
func (w *Writer) WriteBulkString(s string) error {
	w.header('$', int64(len(s)))
	w.b.WriteString(s)
	w.b.WriteString("\r\n")
	return w.err()
}

// WriteNullBulk writes a null: $-1 in RESP2, _ in RESP3.
func (w *Writer) WriteNullBulk() error {
	w.nullBulk(w.proto == 3)
	return w.err()
}

// WriteNullArray writes a null array: *-1 in RESP2, _ in RESP3.
func (w *Writer) WriteNullArray() error {
	w.nullArray(w.proto == 3)
	return w.err()
}

// WriteArrayLen writes the header of an array of n items: *n. The items
// follow, written by the caller.
func (w *Writer) WriteArrayLen(n int) error {
	w.header('*', int64(n))
	return w.err()
}

// WriteMapLen writes the header of a map of n pairs: %n in RESP3, *2n in
// RESP2. The 2n items follow, keys and values alternating.
func (w *Writer) WriteMapLen(n int) error {
	if w.proto == 3 {
		w.header('%', int64(n))
	} else {
		w.header('*', 2*int64(n))
	}
	return w.err()
}

// WriteSetLen writes the header of a set of n items: ~n in RESP3, *n in
// RESP2.
func (w *Writer) WriteSetLen(n int) error {
	if w.proto == 3 {
		w.header('~', int64(n))
	} else {
		w.header('*', int64(n))
	}
	return w.err()
}

// WriteDouble writes a double: ,f in RESP3, a bulk string in RESP2, in
// Redis 7.0's format (%.17g; inf, -inf, nan).
func (w *Writer) WriteDouble(f float64) error {
	w.double(f, w.proto == 3)
	return w.err()
}

// WriteBool writes a boolean: #t or #f in RESP3, :1 or :0 in RESP2.
func (w *Writer) WriteBool(b bool) error {
	w.boolean(b, w.proto == 3)
	return w.err()
}

func (w *Writer) err() error {
	// bufio.Writer's error is sticky; a zero-length write reports it.
	_, err := w.b.Write(nil)
	return err
}

// header writes kind, n and CRLF: ":12\r\n", "$3\r\n", "*2\r\n".
func (w *Writer) header(kind byte, n int64) {
	b := append(w.scratch[:0], kind)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, '\r', '\n')
	w.b.Write(b)
}

func (w *Writer) bulk(b []byte) {
	w.header('$', int64(len(b)))
	w.b.Write(b)
	w.b.WriteString("\r\n")
}

// line writes kind, s and CRLF, with CR and LF in s made spaces.
func (w *Writer) line(kind byte, s string) {
	w.b.WriteByte(kind)
	if strings.ContainsAny(s, "\r\n") {
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c == '\r' || c == '\n' {
				c = ' '
			}
			w.b.WriteByte(c)
		}
	} else {
		w.b.WriteString(s)
	}
	w.b.WriteString("\r\n")
}

func (w *Writer) errorLine(s string) {
	w.line('-', strings.TrimPrefix(s, "-"))
}

func (w *Writer) nullBulk(resp3 bool) {
	if resp3 {
		w.b.WriteString("_\r\n")
	} else {
		w.b.WriteString("$-1\r\n")
	}
}

func (w *Writer) nullArray(resp3 bool) {
	if resp3 {
		w.b.WriteString("_\r\n")
	} else {
		w.b.WriteString("*-1\r\n")
	}
}

func (w *Writer) boolean(v, resp3 bool) {
	switch {
	case resp3 && v:
		w.b.WriteString("#t\r\n")
	case resp3:
		w.b.WriteString("#f\r\n")
	case v:
		w.b.WriteString(":1\r\n")
	default:
		w.b.WriteString(":0\r\n")
	}
}

// double writes f as Redis 7.0's addReplyDouble does.
func (w *Writer) double(f float64, resp3 bool) {
	num := appendDouble(w.scratch[32:32], f)
	if resp3 {
		w.b.WriteByte(',')
		w.b.Write(num)
		w.b.WriteString("\r\n")
		return
	}
	w.bulk(num)
}

// appendDouble appends f formatted as C's printf("%.17g"), with inf, -inf
// and nan spelled as Redis spells them.
func appendDouble(b []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(b, "inf"...)
	case math.IsInf(f, -1):
		return append(b, "-inf"...)
	case math.IsNaN(f):
		return append(b, "nan"...)
	}
	// Go's %g and C's agree for precision 17: the exponent form when the
	// exponent is < -4 or >= 17, trailing zeros removed, at least two
	// exponent digits.
	return strconv.AppendFloat(b, f, 'g', 17, 64)
}

// verbatim writes a verbatim string of format txt: =len+4 txt:s in RESP3,
// a bulk string in RESP2 (addReplyVerbatim).
func (w *Writer) verbatim(s string, resp3 bool) {
	if !resp3 {
		w.header('$', int64(len(s)))
	} else {
		w.header('=', int64(len(s))+4)
		w.b.WriteString("txt:")
	}
	w.b.WriteString(s)
	w.b.WriteString("\r\n")
}

// AppendCommand appends args as a multibulk request, as clients send them:
// *<n>, then $<len> and the bytes of each argument.
func AppendCommand(dst []byte, args ...[]byte) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(len(args)), 10)
	dst = append(dst, '\r', '\n')
	for _, a := range args {
		dst = append(dst, '$')
		dst = strconv.AppendInt(dst, int64(len(a)), 10)
		dst = append(dst, '\r', '\n')
		dst = append(dst, a...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}
