package resp

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"strings"
	"testing"
	"testing/iotest"
)

func TestErrorTexts(t *testing.T) {
	for _, c := range []struct {
		err  *Error
		want string
	}{
		{ErrInvalidMultibulkLength, "ERR Protocol error: invalid multibulk length"},
		{ErrUnauthMultibulkLength, "ERR Protocol error: unauthenticated multibulk length"},
		{ErrInvalidBulkLength, "ERR Protocol error: invalid bulk length"},
		{ErrUnauthBulkLength, "ERR Protocol error: unauthenticated bulk length"},
		{expectedDollar('f'), "ERR Protocol error: expected '$', got 'f'"},
		{expectedDollar('\r'), "ERR Protocol error: expected '$', got ' '"},
		{expectedDollar('\n'), "ERR Protocol error: expected '$', got ' '"},
		{expectedDollar(0xff), "ERR Protocol error: expected '$', got '\xff'"},
		{ErrTooBigMbulkCount, "ERR Protocol error: too big mbulk count string"},
		{ErrTooBigBulkCount, "ERR Protocol error: too big bulk count string"},
		{ErrTooBigInline, "ERR Protocol error: too big inline request"},
		{ErrUnbalancedQuotes, "ERR Protocol error: unbalanced quotes in request"},
		{ErrQueryBufferLimit, ""},
	} {
		if got := c.err.Reply(); got != c.want {
			t.Errorf("Reply() = %q, want %q", got, c.want)
		}
		if !c.err.Fatal() {
			t.Errorf("%q: not fatal", c.want)
		}
		reply, ok := ProtocolError(c.err)
		if reply != c.want || ok != (c.want != "") {
			t.Errorf("ProtocolError(%q) = %q, %v", c.want, reply, ok)
		}
	}
	if !errors.Is(expectedDollar('x'), ErrExpectedDollar) {
		t.Error("expected '$', got 'x' is not ErrExpectedDollar")
	}
	if errors.Is(ErrInvalidBulkLength, ErrInvalidMultibulkLength) {
		t.Error("invalid bulk length is invalid multibulk length")
	}
	for _, err := range []error{io.EOF, io.ErrUnexpectedEOF, errors.New("x"), nil} {
		if reply, ok := ProtocolError(err); ok || reply != "" {
			t.Errorf("ProtocolError(%v) = %q, %v", err, reply, ok)
		}
	}
}

func TestReadErrors(t *testing.T) {
	long := func(prefix string, c byte, n int, suffix string) string {
		return prefix + strings.Repeat(string(c), n) + suffix
	}
	for _, c := range []struct {
		in   string
		want error
	}{
		// *<count>: string2ll's rules, and INT_MAX.
		{"*x\r\n", ErrInvalidMultibulkLength},
		{"*\r\n", ErrInvalidMultibulkLength},
		{"*-\r\n", ErrInvalidMultibulkLength},
		{"*-0\r\n", ErrInvalidMultibulkLength},
		{"*01\r\n", ErrInvalidMultibulkLength},
		{"*+1\r\n", ErrInvalidMultibulkLength},
		{"* 1\r\n", ErrInvalidMultibulkLength},
		{"*1 \r\n", ErrInvalidMultibulkLength},
		{"*1\n", io.ErrUnexpectedEOF},
		{"*2147483648\r\n", ErrInvalidMultibulkLength},
		{"*9223372036854775808\r\n", ErrInvalidMultibulkLength},
		{"*99999999999999999999\r\n", ErrInvalidMultibulkLength},
		{"*123456789012345678901\r\n", ErrInvalidMultibulkLength},
		// $<len>
		{"*1\r\n$-1\r\n", ErrInvalidBulkLength},
		{"*1\r\n$x\r\n", ErrInvalidBulkLength},
		{"*1\r\n$\r\n", ErrInvalidBulkLength},
		{"*1\r\n$01\r\n", ErrInvalidBulkLength},
		{"*1\r\n$536870913\r\n", ErrInvalidBulkLength},
		{"*1\r\n$9223372036854775807\r\n", ErrInvalidBulkLength},
		{"*1\r\n$-9223372036854775808\r\n", ErrInvalidBulkLength},
		// expected '$'
		{"*1\r\nGET\r\n", expectedDollar('G')},
		{"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", expectedDollar('f')},
		{"*1\r\n\r\n", expectedDollar('\r')},
		{"*1\r\n\n\r\n", expectedDollar('\n')},
		{"*1\r\n\xff\r\n", expectedDollar(0xff)},
		{"*2\r\n$1\r\na\r\n*1\r\n", expectedDollar('*')},
		// Line lengths: PROTO_INLINE_MAX_SIZE.
		{long("", 'a', 64*1024+1, ""), ErrTooBigInline},
		{long("*", '1', 64*1024, ""), ErrTooBigMbulkCount},
		{long("*", '1', 64*1024, "\r\n"), ErrTooBigMbulkCount},
		{long("*1\r\n$", '1', 64*1024, ""), ErrTooBigBulkCount},
		{long("*1\r\n", 'x', 64*1024+1, "\r\n"), ErrTooBigBulkCount},
		// A line with a NUL before its end never ends.
		{long("PI\x00NG\r\n", 'a', 64*1024, ""), ErrTooBigInline},
		{long("*1\x00\r\n", 'a', 64*1024, ""), ErrTooBigMbulkCount},
		{long("*1\r\n$4\x00\r\n", 'a', 64*1024, ""), ErrTooBigBulkCount},
		// Inline quoting.
		{"\"PING\r\n", ErrUnbalancedQuotes},
		{"'PING\r\n", ErrUnbalancedQuotes},
		{"PING \"a\"b\r\n", ErrUnbalancedQuotes},
		{"PING 'a'b\r\n", ErrUnbalancedQuotes},
		{"PING \"a\\\"\r\n", ErrUnbalancedQuotes},
		{"PING 'a\\'\r\n", ErrUnbalancedQuotes},
		{"PING \"a\\\r\n", ErrUnbalancedQuotes},
		{"PING a\"b\r\n", ErrUnbalancedQuotes},
		// The end of the input.
		{"", io.EOF},
		{"PING", io.ErrUnexpectedEOF},
		{"PING\r", io.ErrUnexpectedEOF},
		{"*", io.ErrUnexpectedEOF},
		{"*1\r", io.ErrUnexpectedEOF},
		{"*1\r\n", io.ErrUnexpectedEOF},
		{"*1\r\n$4\r\nPI", io.ErrUnexpectedEOF},
		{"*1\r\n$4\r\nPING", io.ErrUnexpectedEOF},
		{"*1\r\n$4\r\nPING\r", io.ErrUnexpectedEOF},
		{"*2147483647\r\n", io.ErrUnexpectedEOF},
		{"*1\r\n$536870912\r\n", io.ErrUnexpectedEOF},
		{"PI\x00NG\r\nPING\r\n", io.ErrUnexpectedEOF},
	} {
		checkParse(t, []byte(c.in), Limits{}, false, nil, c.want)
	}
}

func TestReadAfterCommands(t *testing.T) {
	// Commands before the error are returned; the error is final.
	in := []byte("PING\r\n*1\r\n$4\r\nPING\r\n*x\r\nPING\r\n")
	for _, k := range readerKinds {
		r := NewReader(k.wrap(in), Limits{})
		for range 2 {
			args, err := r.ReadCommand()
			if err != nil || len(args) != 1 || string(args[0]) != "PING" {
				t.Fatalf("%s: %q, %v", k.name, args, err)
			}
		}
		for range 3 {
			args, err := r.ReadCommand()
			if args != nil || err != ErrInvalidMultibulkLength {
				t.Fatalf("%s: after the error: %q, %v", k.name, args, err)
			}
			var e *Error
			if !errors.As(err, &e) || !e.Fatal() {
				t.Fatalf("%s: %v is not a fatal *Error", k.name, err)
			}
		}
	}
}

func TestReadCommands(t *testing.T) {
	a64k := strings.Repeat("a", 64*1024)
	for _, c := range []struct {
		in      string
		want    [][][]byte
		wantErr error
	}{
		{"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", strs([]string{"GET", "k"}), io.EOF},
		// Pipelined, both kinds.
		{"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nGET k\n",
			strs([]string{"GET", "k"}, []string{"PING"}, []string{"SET", "k", "hello"}, []string{"GET", "k"}), io.EOF},
		// Empty requests are skipped.
		{"\r\n\n   \r\n\t\r\n*0\r\n*-1\r\n*-5\r\n*-2147483649\r\nPING\r\n", strs([]string{"PING"}), io.EOF},
		// Empty and binary arguments.
		{"*3\r\n$0\r\n\r\n$1\r\n\x00\r\n$2\r\n\r\n\r\n", strs([]string{"", "\x00", "\r\n"}), io.EOF},
		// What follows a header's CR, and an argument, is skipped unchecked.
		{"*1\rX$4\rYPING\r\n", strs([]string{"PING"}), io.EOF},
		{"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n", strs([]string{"PING"}, []string{"PING"}), io.EOF},
		{"*2147483647\r\n$1\r\na\r\n", nil, io.ErrUnexpectedEOF},
		// Inline requests: CRLF, LF, and a CR left inside.
		{"GET k\r\nGET k\nGET k\r\r\n", strs([]string{"GET", "k"}, []string{"GET", "k"}, []string{"GET", "k"}), io.EOF},
		{"a\rb\r\n", strs([]string{"a", "b"}), io.EOF},
		// Inline requests at the limit: the LF within the first 64KB+1 bytes.
		{a64k + "\n", strs([]string{a64k}), io.EOF},
		{a64k[1:] + "\r\n", strs([]string{a64k[1:]}), io.EOF},
		{a64k + "\r\n", nil, ErrTooBigInline},
		// Header lines at the limit: the CR within the first 64KB+1 bytes.
		{"*" + strings.Repeat("1", 64*1024-1) + "\r\n", nil, ErrInvalidMultibulkLength},
		{"*1\r\n$" + strings.Repeat("1", 64*1024-1) + "\r\n", nil, ErrInvalidBulkLength},
		{"*1\r\n$" + strings.Repeat("1", 64*1024) + "\r\n", nil, ErrTooBigBulkCount},
	} {
		checkParse(t, []byte(c.in), Limits{}, false, c.want, c.wantErr)
	}
}

// Inline requests split as Redis's sdssplitargs does. TestRedisInline
// checks the same lines against redis-server.
var inlineCases = []struct {
	line string
	want []string // nil: unbalanced quotes
}{
	{`SET k "a b"`, []string{"SET", "k", "a b"}},
	{`  a   b  `, []string{"a", "b"}},
	{"a\tb", []string{"a", "b"}},
	{"a\vb", []string{"a\vb"}},
	{"\va\fb", []string{"a\fb"}},
	{`""`, []string{""}},
	{`'' ''`, []string{"", ""}},
	{`"" x`, []string{"", "x"}},
	{`"\x41\x4a\x4A\x4g"`, []string{"AJJx4g"}},
	{`"\x4"`, []string{"x4"}},
	{`"\xff\x00z"`, []string{"\xff\x00z"}},
	{`"\n\r\t\b\a\\\"\q\'"`, []string{"\n\r\t\b\a\\\"q'"}},
	{`'a\'b'`, []string{"a'b"}},
	{`'a\nb\\x'`, []string{`a\nb\\x`}},
	{`'a\\'`, nil},
	{`'a"b'`, []string{`a"b`}},
	{`"a'b"`, []string{`a'b`}},
	{`a"b c"`, []string{"ab c"}},
	{`a'b c'`, []string{"ab c"}},
	{`a"b c" d`, []string{"ab c", "d"}},
	{`a\b`, []string{`a\b`}},
	{"\"a\"\tb", []string{"a", "b"}},
	{"\"a\"\vb", []string{"a", "b"}},
	{"'a'\fb", []string{"a", "b"}},
	{"\xff\xfe \xc3\xa9", []string{"\xff\xfe", "\xc3\xa9"}},
	{`"a"b`, nil},
	{`'a'b`, nil},
	{`"a`, nil},
	{`'a`, nil},
	{`"a\"`, nil},
	{`'a\'`, nil},
	{`"a\`, nil},
	{`a"b`, nil},
	{`a'b`, nil},
	{`"a""b"`, nil},
}

func TestInlineQuoting(t *testing.T) {
	for _, c := range inlineCases {
		in := []byte(c.line + "\r\n")
		if c.want == nil {
			checkParse(t, in, Limits{}, false, nil, ErrUnbalancedQuotes)
		} else {
			checkParse(t, in, Limits{}, false, strs(c.want), io.EOF)
		}
	}
}

func TestUnauthenticatedLimits(t *testing.T) {
	args10 := "*10\r\n" + strings.Repeat("$1\r\na\r\n", 10)
	want10 := strs(strings.Split(strings.Repeat("a", 10), ""))
	checkParse(t, []byte(args10), Limits{}, true, want10, io.EOF)
	checkParse(t, []byte("*11\r\n"), Limits{}, true, nil, ErrUnauthMultibulkLength)
	checkParse(t, []byte("*11\r\n"), Limits{}, false, nil, io.ErrUnexpectedEOF)
	// Invalid comes before unauthenticated.
	checkParse(t, []byte("*2147483648\r\n"), Limits{}, true, nil, ErrInvalidMultibulkLength)
	big := strings.Repeat("x", 16384)
	checkParse(t, []byte("*1\r\n$16384\r\n"+big+"\r\n"), Limits{}, true, strs([]string{big}), io.EOF)
	checkParse(t, []byte("*1\r\n$16385\r\n"), Limits{}, true, nil, ErrUnauthBulkLength)
	checkParse(t, []byte("*1\r\n$-1\r\n"), Limits{}, true, nil, ErrInvalidBulkLength)
	// Inline requests are not limited but by their length.
	inline := strings.Repeat("a ", 20) + strings.Repeat("b", 20000) + "\r\n"
	got, err := parseAll(strings.NewReader(inline), Limits{}, true)
	if err != io.EOF || len(got) != 1 || len(got[0]) != 21 {
		t.Errorf("inline request before authentication: %d commands, %v", len(got), err)
	}

	// Authenticating lifts the limits from the next request on.
	r := NewReader(strings.NewReader("AUTH x\r\n*11\r\n"+strings.Repeat("$1\r\na\r\n", 11)), Limits{})
	r.SetAuthRequired(true)
	if _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	r.SetAuthRequired(false)
	if args, err := r.ReadCommand(); err != nil || len(args) != 11 {
		t.Fatalf("after AUTH: %d args, %v", len(args), err)
	}
}

func TestLimits(t *testing.T) {
	if got := NewReader(nil, Limits{}).Limits(); got != DefaultLimits() {
		t.Errorf("Limits{} became %+v", got)
	}
	if got := NewReader(nil, Limits{MaxBulkLen: 10, MaxInlineLen: -1}).Limits(); got.MaxBulkLen != 10 || got.MaxInlineLen != DefaultMaxInlineLen {
		t.Errorf("partial limits became %+v", got)
	}
	d := DefaultLimits()
	if d.MaxBulkLen != 512<<20 || d.MaxMultibulkLen != 1<<31-1 || d.MaxInlineLen != 64<<10 || d.MaxQueryBuffer != 1<<30 {
		t.Errorf("defaults %+v", d)
	}

	lim := Limits{MaxBulkLen: 5, MaxMultibulkLen: 3, MaxInlineLen: 10, MaxQueryBuffer: 40}
	checkParse(t, []byte("*1\r\n$5\r\nabcde\r\n"), lim, false, strs([]string{"abcde"}), io.EOF)
	checkParse(t, []byte("*1\r\n$6\r\n"), lim, false, nil, ErrInvalidBulkLength)
	checkParse(t, []byte("*3\r\n"), lim, false, nil, io.ErrUnexpectedEOF)
	checkParse(t, []byte("*4\r\n"), lim, false, nil, ErrInvalidMultibulkLength)
	checkParse(t, []byte("012345678\r\n"), lim, false, strs([]string{"012345678"}), io.EOF)
	checkParse(t, []byte("0123456789\n"), lim, false, strs([]string{"0123456789"}), io.EOF)
	checkParse(t, []byte("0123456789\r\n"), lim, false, nil, ErrTooBigInline)
	checkParse(t, []byte("*0000000001\r\n"), lim, false, nil, ErrTooBigMbulkCount)
	checkParse(t, []byte("*000000001\r\n"), lim, false, nil, ErrInvalidMultibulkLength)
	// 4+7+7+7 = 25 bytes fit in 40; 4+7+7+(5+20+2) = 45 do not.
	checkParse(t, []byte("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"), lim, false, strs([]string{"a", "b", "c"}), io.EOF)
	checkParse(t, []byte("*3\r\n$1\r\na\r\n$1\r\nb\r\n$19\r\n"), Limits{MaxQueryBuffer: 44}, false, nil, io.ErrUnexpectedEOF)
	checkParse(t, []byte("*3\r\n$1\r\na\r\n$1\r\nb\r\n$20\r\n"), Limits{MaxQueryBuffer: 40}, false, nil, ErrQueryBufferLimit)
	// The limit is per request.
	req := "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
	checkParse(t, []byte(req+req+req), lim, false, strs([]string{"a", "b", "c"}, []string{"a", "b", "c"}, []string{"a", "b", "c"}), io.EOF)
	// A single argument over the default 1GB is over proto-max-bulk-len first;
	// with a bigger bulk limit, the query buffer limit stops it.
	checkParse(t, []byte("*1\r\n$1073741824\r\n"), Limits{MaxBulkLen: 2 << 30}, false, nil, ErrQueryBufferLimit)
}

func TestBigArguments(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	big := make([]byte, 3<<20+17)
	rng.Read(big)
	mid := make([]byte, bigArg+5)
	rng.Read(mid)
	small := make([]byte, bigArg-1)
	rng.Read(small)
	in := AppendCommand(nil, []byte("SET"), []byte("k"), big)
	in = AppendCommand(in, []byte("SET"), mid, small, mid)
	in = append(in, "PING\r\n"...)
	want := [][][]byte{{[]byte("SET"), []byte("k"), big}, {[]byte("SET"), mid, small, mid}, {[]byte("PING")}}
	for _, k := range readerKinds {
		if k.name == "onebyte" {
			continue // 3MB one byte at a time is slow under -race; chunks7 covers it
		}
		got, err := parseAll(k.wrap(in), Limits{}, false)
		if err != io.EOF || !sameCommands(got, want) {
			t.Errorf("%s: %d commands, %v", k.name, len(got), err)
		}
	}
	got, err := parseAll(&randomReader{data: in, rng: rng}, Limits{}, false)
	if err != io.EOF || !sameCommands(got, want) {
		t.Errorf("random reads: %d commands, %v", len(got), err)
	}
}

// A big argument is the caller's to keep (Owned): the next command does
// not touch its memory. Arguments in the Reader's arena are not Owned.
func TestOwnedArguments(t *testing.T) {
	big := bytes.Repeat([]byte("b"), bigArg)
	in := AppendCommand(nil, []byte("SET"), []byte("k"), big)
	in = AppendCommand(in, []byte("SET"), bytes.Repeat([]byte("c"), bigArg), []byte("v"))
	in = append(in, "SET "+strings.Repeat("i", bigArg)+" v\r\n"...)
	r := NewReader(bytes.NewReader(in), Limits{})
	args, err := r.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	if r.Owned(0) || r.Owned(1) || !r.Owned(2) || r.Owned(3) || r.Owned(-1) {
		t.Fatalf("owned: %v %v %v", r.Owned(0), r.Owned(1), r.Owned(2))
	}
	kept := args[2]
	if _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if !r.Owned(1) || r.Owned(0) || r.Owned(2) {
		t.Fatalf("second command: owned %v %v %v", r.Owned(0), r.Owned(1), r.Owned(2))
	}
	if !bytes.Equal(kept, big) {
		t.Fatal("a kept big argument changed under the next command")
	}
	if _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if r.Owned(1) { // inline arguments live in the arena, however long
		t.Fatal("an inline argument is owned")
	}
}

// randomReader returns 1 to 100000 bytes per Read.
type randomReader struct {
	data []byte
	rng  *rand.Rand
}

func (r *randomReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.data), 1+r.rng.Intn(100000))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// A length header alone allocates no more than a small constant: memory
// follows the bytes that arrive.
func TestHugeLengthAllocatesLittle(t *testing.T) {
	for _, in := range []string{
		"*1\r\n$536870912\r\nabc",
		"*2\r\n$3\r\nSET\r\n$536870912\r\n" + strings.Repeat("x", 1000),
		"*2147483647\r\n$0\r\n\r\n",
		"*1048576\r\n",
		"*1\r\n$16384\r\n",
		"*1\r\n$1073741824\r\n",
	} {
		lim := Limits{MaxBulkLen: 2 << 30, MaxQueryBuffer: 4 << 30}
		n := allocated(func() {
			parseAll(strings.NewReader(in), lim, false)
		})
		if n > 200<<10 {
			t.Errorf("%q allocated %d bytes", in[:min(len(in), 30)], n)
		}
	}
	// Bytes that do arrive are allocated about once or twice.
	in := "*1\r\n$536870912\r\n" + strings.Repeat("x", 4<<20)
	n := allocated(func() { parseAll(strings.NewReader(in), Limits{}, false) })
	if n > 2*4<<20+256<<10 {
		t.Errorf("4MB of a 512MB argument allocated %d bytes", n)
	}
}

func TestArgsReuse(t *testing.T) {
	r := NewReader(strings.NewReader("*2\r\n$1\r\na\r\n$1\r\nb\r\nSET k v\r\n"), Limits{})
	args, err := r.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	// No room to append into: appending to one argument leaves the next alone.
	_ = append(args[0], 'x')
	if string(args[1]) != "b" {
		t.Errorf("append to args[0] changed args[1] to %q", args[1])
	}
	args, err = r.ReadCommand()
	if err != nil || len(args) != 3 || string(args[2]) != "v" {
		t.Fatalf("%q %v", args, err)
	}
	_ = append(args[1], 'x')
	if string(args[2]) != "v" {
		t.Errorf("append to args[1] changed args[2] to %q", args[2])
	}
}

// loopReader returns data over and over.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func pipeline(n int) []byte {
	var b []byte
	for i := range n {
		if i%2 == 0 {
			b = AppendCommand(b, []byte("SET"), []byte("key:000012"), []byte("value-of-some-length-0123456789"))
		} else {
			b = AppendCommand(b, []byte("GET"), []byte("key:000012"))
		}
	}
	return b
}

func TestReadCommandAllocs(t *testing.T) {
	r := NewReader(&loopReader{data: pipeline(97)}, Limits{})
	for range 1000 {
		if _, err := r.ReadCommand(); err != nil {
			t.Fatal(err)
		}
	}
	if a := testing.AllocsPerRun(10000, func() { r.ReadCommand() }); a != 0 {
		t.Errorf("ReadCommand allocates %v times per command", a)
	}
	inline := bytes.Repeat([]byte("SET key \"a value\"\r\nGET key\r\n"), 50)
	r = NewReader(&loopReader{data: inline}, Limits{})
	for range 1000 {
		if _, err := r.ReadCommand(); err != nil {
			t.Fatal(err)
		}
	}
	if a := testing.AllocsPerRun(10000, func() { r.ReadCommand() }); a != 0 {
		t.Errorf("ReadCommand allocates %v times per inline command", a)
	}
}

func TestOnWaitAndBuffered(t *testing.T) {
	in := "PING\r\n*1\r\n$4\r\nPING\r\nPI"
	var waits []int
	var r *Reader
	r = NewReader(strings.NewReader(in), Limits{})
	r.OnWait(func() error { waits = append(waits, r.Buffered()); return nil })
	if _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if len(waits) != 1 || waits[0] != 0 || r.Buffered() != len(in)-6 {
		t.Fatalf("after the first command: waits %v, buffered %d", waits, r.Buffered())
	}
	if _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if len(waits) != 1 || r.Buffered() != 2 {
		t.Fatalf("after the second command: waits %v, buffered %d", waits, r.Buffered())
	}
	// The third is incomplete: the Reader waits, with 2 bytes buffered.
	if _, err := r.ReadCommand(); err != io.ErrUnexpectedEOF {
		t.Fatalf("third command: %v", err)
	}
	if len(waits) != 2 || waits[1] != 2 {
		t.Fatalf("waits %v", waits)
	}

	// An error from OnWait ends the reading.
	stop := errors.New("stop")
	r = NewReader(strings.NewReader("PING\r\n"), Limits{})
	r.OnWait(func() error { return stop })
	if _, err := r.ReadCommand(); err != stop {
		t.Fatalf("OnWait's error: %v", err)
	}
	if _, err := r.ReadCommand(); err != stop {
		t.Fatalf("OnWait's error again: %v", err)
	}
}

func TestReadErrorsPassThrough(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(iotest.ErrReader(boom), Limits{})
	if _, err := r.ReadCommand(); err != boom {
		t.Fatalf("got %v", err)
	}
	// Data, then an error: the complete commands first.
	r = NewReader(io.MultiReader(strings.NewReader("PING\r\nPI"), iotest.ErrReader(boom)), Limits{})
	if args, err := r.ReadCommand(); err != nil || string(args[0]) != "PING" {
		t.Fatalf("got %q %v", args, err)
	}
	if _, err := r.ReadCommand(); err != boom {
		t.Fatalf("got %v", err)
	}
	// A big argument cut by an error.
	r = NewReader(io.MultiReader(strings.NewReader("*1\r\n$100000\r\nabc"), iotest.ErrReader(boom)), Limits{})
	if _, err := r.ReadCommand(); err != boom {
		t.Fatalf("got %v", err)
	}
	// A reader that makes no progress.
	r = NewReader(emptyReader{}, Limits{})
	if _, err := r.ReadCommand(); err != io.ErrNoProgress {
		t.Fatalf("got %v", err)
	}
	r = NewReader(io.MultiReader(strings.NewReader("*1\r\n$100000\r\nabc"), emptyReader{}), Limits{})
	if _, err := r.ReadCommand(); err != io.ErrNoProgress {
		t.Fatalf("got %v", err)
	}
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestParseInt(t *testing.T) {
	for _, c := range []struct {
		in string
		v  int64
		ok bool
	}{
		{"0", 0, true}, {"1", 1, true}, {"-1", -1, true}, {"123", 123, true},
		{"9223372036854775807", 1<<63 - 1, true}, {"-9223372036854775808", -1 << 63, true},
		{"9223372036854775808", 0, false}, {"-9223372036854775809", 0, false},
		{"18446744073709551615", 0, false}, {"18446744073709551616", 0, false},
		{"99999999999999999999", 0, false}, {"-99999999999999999999", 0, false},
		{"", 0, false}, {"-", 0, false}, {"-0", 0, false}, {"00", 0, false}, {"01", 0, false},
		{"+1", 0, false}, {" 1", 0, false}, {"1 ", 0, false}, {"1a", 0, false}, {"0x1", 0, false},
	} {
		v, ok := parseInt([]byte(c.in))
		if v != c.v || ok != c.ok {
			t.Errorf("parseInt(%q) = %d, %v; want %d, %v", c.in, v, ok, c.v, c.ok)
		}
	}
}

// The Reader keeps no reference to a big argument, nor to a dropped arena,
// once the next command is read.
func TestMemoryReleased(t *testing.T) {
	big := AppendCommand(nil, []byte("SET"), bytes.Repeat([]byte("v"), 100000))
	many := make([][]byte, 20)
	for i := range many {
		many[i] = bytes.Repeat([]byte("w"), 20000)
	}
	in := append(big, "PING\r\n"...)
	in = AppendCommand(in, many...)
	in = append(in, "PING\r\n"...)
	r := NewReader(bytes.NewReader(in), Limits{})
	for range 4 {
		if _, err := r.ReadCommand(); err != nil {
			t.Fatal(err)
		}
		if cap(r.arena) <= maxKeepArena {
			for i, a := range r.args[len(r.args):cap(r.args)] {
				if a != nil && cap(a) > 1000 {
					t.Fatalf("args[%d] beyond the command still holds %d bytes", len(r.args)+i, cap(a))
				}
			}
		}
	}
	if cap(r.arena) > maxKeepArena {
		t.Errorf("an arena of %d bytes kept", cap(r.arena))
	}
}
