package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"strconv"
	"strings"
	"testing"

	"github.com/coppice-kv/coppice/messages"
)

func status(s string) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Status{Status: s}}
}
func errReply(s string) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Error{Error: s}}
}
func integer(n int64) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Integer{Integer: n}}
}
func bulk(s string) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Bulk{Bulk: []byte(s)}}
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
func mapOf(items ...*messages.Reply) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Map{Map: &messages.Replies{Items: items}}}
}
func set(items ...*messages.Reply) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Set{Set: &messages.Replies{Items: items}}}
}
func pairs(items ...*messages.Reply) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Pairs{Pairs: &messages.Replies{Items: items}}}
}
func keyed(items ...*messages.Reply) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Keyed{Keyed: &messages.Replies{Items: items}}}
}
func push(items ...*messages.Reply) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Push{Push: &messages.Replies{Items: items}}}
}
func double(f float64) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Double{Double: f}}
}
func boolean(b bool) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Boolean{Boolean: b}}
}
func verbatim(s string) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Verbatim{Verbatim: s}}
}

func encode(r *messages.Reply, proto int) string {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.WriteReply(r, proto)
	w.Flush()
	return b.String()
}

func TestWriteReply(t *testing.T) {
	for _, c := range []struct {
		name         string
		r            *messages.Reply
		resp2, resp3 string
	}{
		{"status", status("OK"), "+OK\r\n", "+OK\r\n"},
		{"status with newlines", status("a\r\nb\nc"), "+a  b c\r\n", "+a  b c\r\n"},
		{"error", errReply("ERR syntax error"), "-ERR syntax error\r\n", "-ERR syntax error\r\n"},
		{"error with its dash", errReply("-NOPROTO unsupported protocol version"), "-NOPROTO unsupported protocol version\r\n", "-NOPROTO unsupported protocol version\r\n"},
		{"error with newlines", errReply("ERR a\r\nb"), "-ERR a  b\r\n", "-ERR a  b\r\n"},
		{"integer", integer(0), ":0\r\n", ":0\r\n"},
		{"negative integer", integer(-12), ":-12\r\n", ":-12\r\n"},
		{"min integer", integer(math.MinInt64), ":-9223372036854775808\r\n", ":-9223372036854775808\r\n"},
		{"max integer", integer(math.MaxInt64), ":9223372036854775807\r\n", ":9223372036854775807\r\n"},
		{"bulk", bulk("foo"), "$3\r\nfoo\r\n", "$3\r\nfoo\r\n"},
		{"empty bulk", bulk(""), "$0\r\n\r\n", "$0\r\n\r\n"},
		{"nil bulk bytes", &messages.Reply{Value: &messages.Reply_Bulk{}}, "$0\r\n\r\n", "$0\r\n\r\n"},
		{"binary bulk", bulk("a\r\n\x00b"), "$5\r\na\r\n\x00b\r\n", "$5\r\na\r\n\x00b\r\n"},
		{"null bulk", nullBulk(), "$-1\r\n", "_\r\n"},
		{"null array", nullArray(), "*-1\r\n", "_\r\n"},
		{"empty array", array(), "*0\r\n", "*0\r\n"},
		{"nil array", &messages.Reply{Value: &messages.Reply_Array{}}, "*0\r\n", "*0\r\n"},
		{"array", array(integer(1), bulk("a"), nullBulk()), "*3\r\n:1\r\n$1\r\na\r\n$-1\r\n", "*3\r\n:1\r\n$1\r\na\r\n_\r\n"},
		{"map", mapOf(bulk("a"), integer(1), bulk("b"), double(1.5)),
			"*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$3\r\n1.5\r\n",
			"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n,1.5\r\n"},
		{"empty map", mapOf(), "*0\r\n", "%0\r\n"},
		{"odd map", mapOf(bulk("a")), "*2\r\n$1\r\na\r\n$-1\r\n", "%1\r\n$1\r\na\r\n_\r\n"},
		{"set", set(bulk("a"), bulk("b")), "*2\r\n$1\r\na\r\n$1\r\nb\r\n", "~2\r\n$1\r\na\r\n$1\r\nb\r\n"},
		{"empty set", set(), "*0\r\n", "~0\r\n"},
		{"pairs", pairs(bulk("f"), bulk("1"), bulk("g"), integer(2)),
			"*4\r\n$1\r\nf\r\n$1\r\n1\r\n$1\r\ng\r\n:2\r\n",
			"*2\r\n*2\r\n$1\r\nf\r\n$1\r\n1\r\n*2\r\n$1\r\ng\r\n:2\r\n"},
		{"empty pairs", pairs(), "*0\r\n", "*0\r\n"},
		{"odd pairs", pairs(bulk("f")), "*1\r\n$1\r\nf\r\n", "*1\r\n*2\r\n$1\r\nf\r\n_\r\n"},
		{"keyed", keyed(bulk("s"), array(), bulk("t"), integer(2)),
			"*2\r\n*2\r\n$1\r\ns\r\n*0\r\n*2\r\n$1\r\nt\r\n:2\r\n",
			"%2\r\n$1\r\ns\r\n*0\r\n$1\r\nt\r\n:2\r\n"},
		{"odd keyed", keyed(bulk("s")), "*1\r\n*2\r\n$1\r\ns\r\n$-1\r\n", "%1\r\n$1\r\ns\r\n_\r\n"},
		{"push", push(bulk("message"), bulk("c"), bulk("m")),
			"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n",
			">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n"},
		{"double", double(1.5), "$3\r\n1.5\r\n", ",1.5\r\n"},
		{"double 0.1", double(0.1), "$19\r\n0.10000000000000001\r\n", ",0.10000000000000001\r\n"},
		{"integral double", double(3), "$1\r\n3\r\n", ",3\r\n"},
		{"zero", double(0), "$1\r\n0\r\n", ",0\r\n"},
		{"negative zero", double(math.Copysign(0, -1)), "$2\r\n-0\r\n", ",-0\r\n"},
		{"1e16", double(1e16), "$17\r\n10000000000000000\r\n", ",10000000000000000\r\n"},
		{"1e17", double(1e17), "$5\r\n1e+17\r\n", ",1e+17\r\n"},
		{"1e-5", double(1e-5), "$22\r\n1.0000000000000001e-05\r\n", ",1.0000000000000001e-05\r\n"},
		{"0.0001", double(0.0001), "$6\r\n0.0001\r\n", ",0.0001\r\n"},
		{"big double", double(1e300), "$23\r\n1.0000000000000001e+300\r\n", ",1.0000000000000001e+300\r\n"},
		{"min double", double(-math.MaxFloat64), "$24\r\n-1.7976931348623157e+308\r\n", ",-1.7976931348623157e+308\r\n"},
		{"tiny double", double(5e-324), "$23\r\n4.9406564584124654e-324\r\n", ",4.9406564584124654e-324\r\n"},
		{"inf", double(math.Inf(1)), "$3\r\ninf\r\n", ",inf\r\n"},
		{"-inf", double(math.Inf(-1)), "$4\r\n-inf\r\n", ",-inf\r\n"},
		{"nan", double(math.NaN()), "$3\r\nnan\r\n", ",nan\r\n"},
		{"true", boolean(true), ":1\r\n", "#t\r\n"},
		{"false", boolean(false), ":0\r\n", "#f\r\n"},
		{"verbatim", verbatim("a b\n"), "$4\r\na b\n\r\n", "=8\r\ntxt:a b\n\r\n"},
		{"empty verbatim", verbatim(""), "$0\r\n\r\n", "=4\r\ntxt:\r\n"},
		{"nil reply", nil, "$-1\r\n", "_\r\n"},
		{"no value", &messages.Reply{}, "$-1\r\n", "_\r\n"},
		{"nested", array(mapOf(bulk("k"), set(boolean(true))), nil, verbatim("x")),
			"*3\r\n*2\r\n$1\r\nk\r\n*1\r\n:1\r\n$-1\r\n$1\r\nx\r\n",
			"*3\r\n%1\r\n$1\r\nk\r\n~1\r\n#t\r\n_\r\n=5\r\ntxt:x\r\n"},
	} {
		if got := encode(c.r, 2); got != c.resp2 {
			t.Errorf("%s: RESP2 %q, want %q", c.name, got, c.resp2)
		}
		if got := encode(c.r, 3); got != c.resp3 {
			t.Errorf("%s: RESP3 %q, want %q", c.name, got, c.resp3)
		}
		// Proto 0: the Writer's own.
		for _, p := range []int{2, 3} {
			var b bytes.Buffer
			w := NewWriter(&b)
			w.SetProto(p)
			w.WriteReply(c.r, 0)
			w.Flush()
			want := c.resp2
			if p == 3 {
				want = c.resp3
			}
			if b.String() != want {
				t.Errorf("%s: SetProto(%d), WriteReply(r, 0): %q, want %q", c.name, p, b.String(), want)
			}
		}
	}
}

func TestWriterFastPaths(t *testing.T) {
	for _, proto := range []int{2, 3} {
		var b bytes.Buffer
		w := NewWriter(&b)
		w.SetProto(proto)
		if w.Proto() != proto {
			t.Fatalf("Proto() = %d", w.Proto())
		}
		w.WriteOK()
		w.WriteStatus("PONG")
		w.WriteError("ERR x\ny")
		w.WriteInt(-7)
		w.WriteBulk([]byte("v"))
		w.WriteBulk(nil)
		w.WriteBulkString("str")
		w.WriteNullBulk()
		w.WriteNullArray()
		w.WriteArrayLen(2)
		w.WriteMapLen(3)
		w.WriteSetLen(4)
		w.WriteDouble(2.5)
		w.WriteBool(true)
		if w.Buffered() == 0 || b.Len() != 0 {
			t.Fatalf("not buffered: %d buffered, %d written", w.Buffered(), b.Len())
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		want := "+OK\r\n+PONG\r\n-ERR x y\r\n:-7\r\n$1\r\nv\r\n$0\r\n\r\n$3\r\nstr\r\n"
		if proto == 2 {
			want += "$-1\r\n*-1\r\n*2\r\n*6\r\n*4\r\n$3\r\n2.5\r\n:1\r\n"
		} else {
			want += "_\r\n_\r\n*2\r\n%3\r\n~4\r\n,2.5\r\n#t\r\n"
		}
		if b.String() != want {
			t.Errorf("RESP%d: %q, want %q", proto, b.String(), want)
		}
	}
	w := NewWriter(io.Discard)
	w.SetProto(7)
	if w.Proto() != 2 {
		t.Errorf("SetProto(7) gave %d", w.Proto())
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("broken pipe")
	}
	f.n--
	return len(p), nil
}

func TestWriterErrors(t *testing.T) {
	w := NewWriter(&failWriter{})
	if err := w.WriteOK(); err != nil {
		t.Fatalf("buffered write failed: %v", err)
	}
	if err := w.Flush(); err == nil {
		t.Fatal("Flush to a broken connection succeeded")
	}
	if err := w.WriteInt(1); err == nil {
		t.Fatal("write after a failed Flush succeeded")
	}
	if err := w.WriteReply(status("OK"), 2); err == nil {
		t.Fatal("WriteReply after a failed Flush succeeded")
	}
	// A big reply fails as it overflows the buffer.
	w = NewWriter(&failWriter{})
	if err := w.WriteBulk(make([]byte, 100000)); err == nil {
		t.Fatal("a 100KB bulk to a broken connection succeeded")
	}
}

func TestWriterAllocs(t *testing.T) {
	w := NewWriter(io.Discard)
	v := []byte("some value of moderate length")
	r := array(bulk("a"), mapOf(bulk("k"), double(0.1)), integer(42), set(boolean(true)), verbatim("txt"))
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"WriteBulk", func() { w.WriteBulk(v) }},
		{"WriteInt", func() { w.WriteInt(123456789) }},
		{"WriteOK", func() { w.WriteOK() }},
		{"WriteError", func() { w.WriteError("ERR no") }},
		{"WriteNullBulk", func() { w.WriteNullBulk() }},
		{"WriteDouble", func() { w.WriteDouble(0.1) }},
		{"WriteReply RESP2", func() { w.WriteReply(r, 2) }},
		{"WriteReply RESP3", func() { w.WriteReply(r, 3) }},
	} {
		if a := testing.AllocsPerRun(1000, c.f); a != 0 {
			t.Errorf("%s allocates %v times", c.name, a)
		}
	}
}

// The round trip: random replies written in RESP2 and RESP3 and read back
// by a RESP3 parser are what they should be.
func TestWriteReplyRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for i := range 2000 {
		r := randomReply(rng, 4)
		for _, proto := range []int{2, 3} {
			enc := encode(r, proto)
			br := bufio.NewReader(strings.NewReader(enc))
			got, err := parseReply(br)
			if err != nil {
				t.Fatalf("%d: RESP%d %q: %v", i, proto, enc, err)
			}
			if rest, _ := io.ReadAll(br); len(rest) != 0 {
				t.Fatalf("%d: RESP%d %q: %q left over", i, proto, enc, rest)
			}
			if want := expected(r, proto == 3); got != want {
				t.Fatalf("%d: RESP%d %q:\nparsed   %s\nexpected %s", i, proto, enc, got, want)
			}
		}
	}
}

func randomReply(rng *rand.Rand, depth int) *messages.Reply {
	randStr := func() string {
		b := make([]byte, rng.Intn(20))
		for i := range b {
			b[i] = byte(rng.Intn(256))
		}
		return string(b)
	}
	items := func() []*messages.Reply {
		var out []*messages.Reply
		for range rng.Intn(5) {
			out = append(out, randomReply(rng, depth-1))
		}
		return out
	}
	k := rng.Intn(16)
	if depth <= 0 && (k >= 6 && k <= 8 || k == 13) {
		k = 0
	}
	switch k {
	case 0:
		return status(randStr())
	case 1:
		return errReply(randStr())
	case 2:
		return integer(rng.Int63() - rng.Int63())
	case 3:
		return bulk(randStr())
	case 4:
		return nullBulk()
	case 5:
		return nullArray()
	case 6:
		return array(items()...)
	case 7:
		return mapOf(items()...)
	case 8:
		return set(items()...)
	case 9:
		switch rng.Intn(4) {
		case 0:
			return double(math.Inf(rng.Intn(2)*2 - 1))
		case 1:
			return double(math.NaN())
		default:
			return double(math.Float64frombits(rng.Uint64()))
		}
	case 10:
		return boolean(rng.Intn(2) == 0)
	case 11:
		return verbatim(randStr())
	case 12:
		return nil
	case 13:
		return pairs(items()...)
	default:
		return bulk(randStr())
	}
}

// expected is r as parseReply renders what a client receives.
func expected(r *messages.Reply, resp3 bool) string {
	clean := func(s string) string {
		return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	}
	list := func(kind string, items []*messages.Reply) string {
		parts := make([]string, len(items))
		for i, it := range items {
			parts[i] = expected(it, resp3)
		}
		return kind + "[" + strings.Join(parts, ",") + "]"
	}
	null := "null"
	if !resp3 {
		null = "bulk(null)"
	}
	switch v := r.GetValue().(type) {
	case *messages.Reply_Status:
		return "status(" + strconv.Quote(clean(v.Status)) + ")"
	case *messages.Reply_Error:
		return "error(" + strconv.Quote(clean(strings.TrimPrefix(v.Error, "-"))) + ")"
	case *messages.Reply_Integer:
		return fmt.Sprintf("int(%d)", v.Integer)
	case *messages.Reply_Bulk:
		return "bulk(" + strconv.Quote(string(v.Bulk)) + ")"
	case *messages.Reply_NullBulk:
		return null
	case *messages.Reply_NullArray:
		if resp3 {
			return "null"
		}
		return "array(null)"
	case *messages.Reply_Array:
		return list("array", v.Array.GetItems())
	case *messages.Reply_Map:
		items := v.Map.GetItems()
		if len(items)%2 == 1 {
			items = append(items[:len(items):len(items)], nullBulk())
		}
		if resp3 {
			return list("map", items)
		}
		return list("array", items)
	case *messages.Reply_Set:
		if resp3 {
			return list("set", v.Set.GetItems())
		}
		return list("array", v.Set.GetItems())
	case *messages.Reply_Pairs:
		items := v.Pairs.GetItems()
		if !resp3 {
			return list("array", items)
		}
		var nested []*messages.Reply
		for i := 0; i < len(items); i += 2 {
			pair := []*messages.Reply{items[i], nullBulk()}
			if i+1 < len(items) {
				pair[1] = items[i+1]
			}
			nested = append(nested, array(pair...))
		}
		return list("array", nested)
	case *messages.Reply_Double:
		s := string(appendDouble(nil, v.Double))
		if resp3 {
			return "double(" + s + ")"
		}
		return "bulk(" + strconv.Quote(s) + ")"
	case *messages.Reply_Boolean:
		if resp3 {
			return fmt.Sprintf("bool(%v)", v.Boolean)
		}
		if v.Boolean {
			return "int(1)"
		}
		return "int(0)"
	case *messages.Reply_Verbatim:
		if resp3 {
			return "verbatim(txt," + strconv.Quote(v.Verbatim) + ")"
		}
		return "bulk(" + strconv.Quote(v.Verbatim) + ")"
	}
	return null
}

// parseReply reads one RESP2 or RESP3 reply, strictly.
func parseReply(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasSuffix(line, "\r\n") || len(line) < 3 {
		return "", fmt.Errorf("bad line %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	if strings.ContainsAny(body, "\r\n") {
		return "", fmt.Errorf("CR or LF in line %q", line)
	}
	num := func() (int, error) {
		n, err := strconv.Atoi(body)
		if err != nil || strconv.Itoa(n) != body {
			return 0, fmt.Errorf("bad number in %q", line)
		}
		return n, nil
	}
	blob := func(n int) (string, error) {
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return "", err
		}
		if string(b[n:]) != "\r\n" {
			return "", fmt.Errorf("blob not ended by CRLF")
		}
		return string(b[:n]), nil
	}
	aggregate := func(name string, n int) (string, error) {
		parts := make([]string, n)
		for i := range parts {
			p, err := parseReply(br)
			if err != nil {
				return "", err
			}
			parts[i] = p
		}
		return name + "[" + strings.Join(parts, ",") + "]", nil
	}
	switch kind {
	case '+':
		return "status(" + strconv.Quote(body) + ")", nil
	case '-':
		return "error(" + strconv.Quote(body) + ")", nil
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("int(%d)", n), nil
	case '$':
		if body == "-1" {
			return "bulk(null)", nil
		}
		n, err := num()
		if err != nil {
			return "", err
		}
		s, err := blob(n)
		return "bulk(" + strconv.Quote(s) + ")", err
	case '=':
		n, err := num()
		if err != nil {
			return "", err
		}
		s, err := blob(n)
		if err != nil || len(s) < 4 || s[3] != ':' {
			return "", fmt.Errorf("bad verbatim %q: %v", s, err)
		}
		return "verbatim(" + s[:3] + "," + strconv.Quote(s[4:]) + ")", nil
	case '*', '%', '~':
		if kind == '*' && body == "-1" {
			return "array(null)", nil
		}
		n, err := num()
		if err != nil {
			return "", err
		}
		switch kind {
		case '*':
			return aggregate("array", n)
		case '%':
			return aggregate("map", 2*n)
		default:
			return aggregate("set", n)
		}
	case '_':
		if body != "" {
			return "", fmt.Errorf("bad null %q", line)
		}
		return "null", nil
	case ',':
		return "double(" + body + ")", nil
	case '#':
		if body != "t" && body != "f" {
			return "", fmt.Errorf("bad boolean %q", line)
		}
		return fmt.Sprintf("bool(%v)", body == "t"), nil
	}
	return "", fmt.Errorf("unknown type %q", line)
}

func TestAppendCommand(t *testing.T) {
	got := string(AppendCommand([]byte("x"), []byte("SET"), []byte(""), []byte("a\r\nb")))
	want := "x*3\r\n$3\r\nSET\r\n$0\r\n\r\n$4\r\na\r\nb\r\n"
	if got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if got := string(AppendCommand(nil)); got != "*0\r\n" {
		t.Errorf("no args: %q", got)
	}
}
