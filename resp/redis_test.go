package resp

// The differential tests: raw requests sent to a real redis-server, whose
// exact answer (and whether it closes the connection) must be what this
// package's Reader and Writer make of the same bytes. They skip when
// redis-server is not on PATH, but fail under CI (COPPICE_REQUIRE_REDIS).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/redistest"
	"github.com/coppice-kv/coppice/messages"
)

// talk sends in on a new connection and returns what comes back: until
// the server closes the connection when expectClose, or else until want's
// length has come, and then for a moment more, to catch what should not
// come.
func talk(sock string, in, want []byte, expectClose bool) (out []byte, closed bool, err error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return nil, false, err
	}
	defer c.Close()
	go c.Write(in) // Redis may close before reading it all
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64*1024)
	extra := false
	for {
		if !expectClose && !extra && len(out) >= len(want) {
			extra = true
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		}
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if !bytes.HasPrefix(want, out) && !extra {
			return out, false, nil // a difference: the caller reports it
		}
		var ne net.Error
		switch {
		case err == io.EOF:
			return out, true, nil
		case errors.As(err, &ne) && ne.Timeout():
			if expectClose || !extra {
				return out, false, fmt.Errorf("no answer after %q: %w", out, err)
			}
			return out, false, nil
		case err != nil:
			return out, false, err
		}
	}
}

// ours is what a connection loop on this package answers to in: PING,
// ECHO, AUTH (password "secret"), and RPUSH then LRANGE key 0 -1 are the
// commands it knows.
func ours(in []byte, lim Limits, authRequired bool) (out []byte, closed bool) {
	var b bytes.Buffer
	r := NewReader(bytes.NewReader(in), lim)
	r.SetAuthRequired(authRequired)
	w := NewWriter(&b)
	lists := map[string][][]byte{}
	for {
		args, err := r.ReadCommand()
		if err != nil {
			if reply, ok := ProtocolError(err); ok {
				w.WriteError(reply)
			}
			w.Flush()
			var perr *Error
			return b.Bytes(), errors.As(err, &perr)
		}
		name := strings.ToUpper(string(args[0]))
		switch {
		case name == "AUTH" && len(args) == 2 && string(args[1]) == "secret":
			authRequired = false
			r.SetAuthRequired(false)
			w.WriteOK()
		case authRequired:
			w.WriteError("NOAUTH Authentication required.")
		case name == "PING" && len(args) == 1:
			w.WriteStatus("PONG")
		case name == "ECHO" && len(args) == 2:
			w.WriteBulk(args[1])
		case name == "RPUSH" && len(args) < 3:
			w.WriteError("ERR wrong number of arguments for 'rpush' command")
		case name == "RPUSH":
			key := string(args[1])
			for _, a := range args[2:] {
				lists[key] = append(lists[key], bytes.Clone(a))
			}
			w.WriteInt(int64(len(lists[key])))
		case name == "LRANGE" && len(args) == 4:
			l := lists[string(args[1])]
			w.WriteArrayLen(len(l))
			for _, a := range l {
				w.WriteBulk(a)
			}
		default:
			w.WriteError(fmt.Sprintf("test: no command %q", args))
		}
	}
}

type redisCase struct {
	name string
	in   string
}

func runRedisCases(t *testing.T, sock string, lim Limits, auth bool, cases []redisCase) {
	type result struct {
		want, got          []byte
		wantClosed, closed bool
		err                error
	}
	results := make([]result, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			r.want, r.wantClosed = ours([]byte(c.in), lim, auth)
			r.got, r.closed, r.err = talk(sock, []byte(c.in), r.want, r.wantClosed)
		}()
	}
	wg.Wait()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := results[i]
			if r.err != nil {
				t.Fatalf("%q: %v", clip([]byte(c.in)), r.err)
			}
			if !bytes.Equal(r.got, r.want) || r.closed != r.wantClosed {
				t.Errorf("%q:\nredis-server: %q (closed: %v)\nresp:         %q (closed: %v)",
					clip([]byte(c.in)), clip(r.got), r.closed, clip(r.want), r.wantClosed)
			}
		})
	}
}

func TestRedisProtocolErrors(t *testing.T) {
	sock := redistest.Start(t)
	// over is line, filled up with c to one byte over the 64KB limit. The
	// input must end there: Redis stops reading at the error, and a unix
	// socket closed with unread bytes resets the connection, losing the
	// reply.
	over := func(line string, c byte) string {
		return line + strings.Repeat(string(c), 64*1024+1-len(line))
	}
	runRedisCases(t, sock, Limits{}, false, []redisCase{
		{"commands then invalid count", "PING\r\n*x\r\nPING\r\n"},
		{"count over INT_MAX", "*2147483648\r\n"},
		{"count of 21 digits", "*123456789012345678901\r\n"},
		{"count with leading zero", "*01\r\n"},
		{"count -0", "*-0\r\n"},
		{"count with plus", "*+1\r\n"},
		{"count with space", "* 1\r\n"},
		{"count 20 million waits", "*20000000\r\n"},
		{"count INT_MAX waits", "*2147483647\r\n"},
		{"empty requests", "*-1\r\nPING\r\n*0\r\nPING\r\n\r\n  \r\nPING\r\n"},
		{"negative bulk length", "*1\r\n$-1\r\n"},
		{"bulk length over 512MB", "*1\r\n$536870913\r\n"},
		{"bulk length 512MB waits", "*1\r\n$536870912\r\nabc"},
		{"bulk length not a number", "*1\r\n$1x\r\n"},
		{"expected dollar", "*1\r\nPING\r\n"},
		{"expected dollar, Redis's test", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n"},
		{"expected dollar got CR", "*1\r\n\r\n"},
		{"expected dollar got LF", "*1\r\n\n\r\n"},
		{"expected dollar got 0xff", "*1\r\n\xff\r\n"},
		{"lenient CR", "*1\rX$4\rYPING\r\n"},
		{"lenient argument end", "*1\r\n$4\r\nPINGxx"},
		{"binary argument", "*2\r\n$4\r\nECHO\r\n$5\r\na\x00b\r\n\r\n"},
		{"too big inline", over("", 'a')},
		{"too big mbulk count", over("*", '1')},
		{"too big bulk count", "*1\r\n" + over("$", '1')},
		{"NUL in inline waits", "PI\x00NG\r\nPING\r\n"},
		{"NUL in inline, too big", over("PI\x00NG\r\n", 'a')},
		{"NUL in count, too big", over("*1\x00\r\n", 'a')},
		{"NUL in bulk count, too big", "*1\r\n" + over("$4\x00\r\n", 'a')},
		{"unbalanced quotes", "PING\r\nECHO \"a\r\nPING\r\n"},
		{"quote then character", "ECHO \"a\"b\r\n"},
		{"single quote escape", "ECHO 'x\\'y'\r\n"},
		{"hex escapes", "ECHO \"\\x41\\x4g\\xfF\"\r\n"},
		{"LF and CR CR LF", "PING\nPING\r\r\n"},
		{"blank lines", "   \r\n\t\r\nPING\r\n"},
		{"partial inline waits", "PI"},
		{"partial multibulk waits", "*1\r\n"},
		{"pipeline", "PING\r\n*2\r\n$4\r\nECHO\r\n$1\r\nx\r\nECHO y\r\n*1\r\n$4\r\nping\r\n"},
	})
}

func TestRedisUnauthenticated(t *testing.T) {
	sock := redistest.Start(t, "--requirepass", "secret")
	runRedisCases(t, sock, Limits{}, true, []redisCase{
		{"11 arguments", "*11\r\n"},
		// Redis checks the command's name and arity before authentication:
		// the requests that pass the limits are DEL and ECHO, well formed.
		{"10 arguments", "*10\r\n$3\r\nDEL\r\n" + strings.Repeat("$1\r\na\r\n", 9)},
		{"16385 bytes", "*2\r\n$4\r\nECHO\r\n$16385\r\n"},
		{"16384 bytes", "*2\r\n$4\r\nECHO\r\n$16384\r\n" + strings.Repeat("x", 16384) + "\r\n"},
		{"invalid before unauthenticated", "*2147483648\r\n"},
		{"inline is not limited", "DEL" + strings.Repeat(" a", 50) + "\r\n"},
		{"limits lift after AUTH", "AUTH secret\r\n*1\r\n$4\r\nPING\r\n*12\r\n"},
	})
}

func TestRedisQueryBufferLimit(t *testing.T) {
	sock := redistest.Start(t, "--client-query-buffer-limit", "1mb", "--proto-max-bulk-len", "1mb")
	lim := Limits{MaxBulkLen: 1 << 20, MaxQueryBuffer: 1 << 20}
	runRedisCases(t, sock, lim, false, []redisCase{
		{"over the limit", "*1\r\n$1048576\r\n" + strings.Repeat("x", 1<<20) + "\r\n"},
		{"under the limit", "*2\r\n$4\r\nECHO\r\n$1000000\r\n" + strings.Repeat("x", 1000000) + "\r\n"},
		{"over proto-max-bulk-len", "*1\r\n$1048577\r\n"},
	})
}

// Inline requests: Redis's split of inlineCases' lines, read back with
// LRANGE.
func TestRedisInline(t *testing.T) {
	sock := redistest.Start(t)
	cases := make([]redisCase, len(inlineCases))
	for i, c := range inlineCases {
		key := fmt.Sprintf("k%d", i)
		in := []byte("RPUSH " + key + " " + c.line + "\r\n")
		in = AppendCommand(in, []byte("LRANGE"), []byte(key), []byte("0"), []byte("-1"))
		cases[i] = redisCase{strconv.Quote(c.line), string(in)}
	}
	runRedisCases(t, sock, Limits{}, false, cases)
}

// Replies: what Redis writes for commands whose reply is of each type, in
// RESP2 and RESP3, is what the Writer writes for the same Reply.
func TestRedisReplies(t *testing.T) {
	sock := redistest.Start(t)
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			// do sends a command and returns its reply's bytes.
			do := func(args ...string) []byte {
				t.Helper()
				var cmd [][]byte
				for _, a := range args {
					cmd = append(cmd, []byte(a))
				}
				if _, err := c.Write(AppendCommand(nil, cmd...)); err != nil {
					t.Fatal(err)
				}
				var raw bytes.Buffer
				if _, err := parseReply(bufio.NewReaderSize(io.TeeReader(c, &raw), 16)); err != nil {
					t.Fatalf("%q: %v", args, err)
				}
				return raw.Bytes()
			}
			check := func(want *messages.Reply, args ...string) {
				t.Helper()
				got := do(args...)
				if enc := encode(want, proto); string(got) != enc {
					t.Errorf("%q: redis-server %q, Writer %q", args, got, enc)
				}
			}
			do("HELLO", strconv.Itoa(proto))
			do("FLUSHALL")
			// (-0 is not here: ZADD makes it 0.)
			for _, s := range []string{"0.1", "1.5", "3", "0", "1e300", "1e-300", "-2.5e-7",
				"123456789012345678", "1e16", "1e17", "0.3", "inf", "-inf", "+inf", "4503599627370496.5"} {
				do("ZADD", "z", s, "m")
				f, err := strconv.ParseFloat(s, 64)
				if err != nil {
					t.Fatal(err)
				}
				check(double(f), "ZSCORE", "z", "m")
			}
			check(status("PONG"), "PING")
			check(status("OK"), "SET", "k", "v")
			check(errReply("ERR value is not an integer or out of range"), "INCR", "k")
			check(integer(1), "INCR", "n")
			check(integer(-9223372036854775807), "DECRBY", "m", "9223372036854775807")
			check(integer(-9223372036854775808), "DECRBY", "m", "1")
			check(nullBulk(), "GET", "nothing")
			check(nullArray(), "BLPOP", "nolist", "0.01")
			do("HSET", "h", "f", "v")
			check(mapOf(bulk("f"), bulk("v")), "HGETALL", "h")
			check(mapOf(), "HGETALL", "nohash")
			do("SADD", "s", "m")
			check(set(bulk("m")), "SMEMBERS", "s")
			check(set(), "SMEMBERS", "noset")
			do("RPUSH", "l", "a", "", "b\r\n")
			check(array(bulk("a"), bulk(""), bulk("b\r\n")), "LRANGE", "l", "0", "-1")
			check(array(), "LRANGE", "nolist", "0", "-1")
			// Lua's booleans are RESP3 booleans once the script says RESP3.
			check(boolean(true), "EVAL", "redis.setresp(3); return true", "0")
			check(boolean(false), "EVAL", "redis.setresp(3); return false", "0")
			// A verbatim string: CLIENT INFO's text, which only Redis knows.
			raw := do("CLIENT", "INFO")
			i := bytes.Index(raw, []byte("\r\n"))
			if i < 0 || len(raw) < i+4 {
				t.Fatalf("CLIENT INFO: %q", raw)
			}
			text := string(raw[i+2 : len(raw)-2])
			if proto == 3 {
				text = strings.TrimPrefix(text, "txt:")
			}
			if enc := encode(verbatim(text), proto); string(raw) != enc {
				t.Errorf("CLIENT INFO: redis-server %q, Writer %q", raw, enc)
			}
		})
	}
}
