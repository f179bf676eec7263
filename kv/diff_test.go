package kv

// The differential test: the commands of testdata/diff/*.txt run on a real
// redis-server and on the engine, and their replies, both written as RESP2,
// must be the same.
//
// A line of a script is one command, arguments split at spaces; an argument
// in double quotes is a Go string literal ("", "a b", "\xff"). {now+N},
// {now-N} and {now} become Unix ms, {nows+N} Unix seconds, taken when the
// line runs. A line may start with directives:
//
//	@sort        the reply is an array (or SCAN's [cursor, keys]) in Redis's hash
//	             order: compare it sorted
//	@pairs       the reply is a flat field/value array (HGETALL): compare sorted pairs
//	@approx=N    an integer reply may differ by N (TTLs: clocks differ)
//	@error       both replies are errors, the same up to the end of the first
//	             "user_script:N:" (Lua's own messages differ from gopher-lua's)
//
// A line "@sleep N" sleeps N ms. '#' starts a comment line. Each file starts
// with an empty database on both sides.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/redistest"
	"github.com/coppice-kv/coppice/messages"
	respw "github.com/coppice-kv/coppice/resp"
)

func TestDifferentialRedis(t *testing.T) {
	rc := startRedis(t)
	files, err := filepath.Glob("testdata/diff/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in testdata/diff: %v", err)
	}
	total, mismatches := 0, 0
	for _, f := range files {
		if filepath.Base(f) == "command.txt" && !sameMinor(rc.version, "Redis "+redisMetaVersion) {
			t.Logf("%s: skipped: the COMMAND metadata is %s's, the server is %s", f, redisMetaVersion, rc.version)
			continue
		}
		rc := rc
		if extra := diffRedisArgs[filepath.Base(f)]; extra != nil {
			rc = startRedis(t, extra...)
		}
		n, m := runDiffScript(t, rc, f)
		total += n
		mismatches += m
	}
	t.Logf("%d commands in %d files compared with %s, %d mismatches", total, len(files), rc.version, mismatches)
}

// sameMinor reports whether two "Redis x.y.z" versions share x.y.
func sameMinor(a, b string) bool {
	minor := func(v string) string {
		parts := strings.SplitN(v, ".", 3)
		if len(parts) < 2 {
			return v
		}
		return parts[0] + "." + parts[1]
	}
	return minor(a) == minor(b)
}

// respConn is a tiny RESP2 client.
type respConn struct {
	c       net.Conn
	r       *bufio.Reader
	version string
}

// diffRedisArgs are the scripts that run on a redis-server of their own,
// with these arguments: coppice has one database, so MOVE and SWAPDB are
// compared with a Redis that has one too.
var diffRedisArgs = map[string][]string{"databases.txt": {"--databases", "1"}}

// startRedis starts a redis-server, with DEBUG allowed (coppice serves
// DEBUG OBJECT) and extra arguments, and connects to it.
func startRedis(t *testing.T, extra ...string) *respConn {
	t.Helper()
	c, err := net.DialTimeout("unix", redistest.Start(t, append([]string{"--enable-debug-command", "yes"}, extra...)...), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &respConn{c: c, r: bufio.NewReader(c)}
	info := rc.do(t, [][]byte{[]byte("INFO"), []byte("server")})
	if m := regexp.MustCompile(`redis_version:(\S+)`).FindSubmatch(info.str); m != nil {
		rc.version = "Redis " + string(m[1])
	}
	return rc
}

// resp is a RESP2 value.
type resp struct {
	kind  byte // + - : $ *
	str   []byte
	n     int64
	null  bool
	items []resp
}

func (c *respConn) do(t *testing.T, args [][]byte) resp {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n", len(a))
		b.Write(a)
		b.WriteString("\r\n")
	}
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	v, err := readResp(c.r)
	if err != nil {
		t.Fatalf("reading the reply to %q: %v", args, err)
	}
	return v
}

func readResp(r *bufio.Reader) (resp, error) {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return resp{}, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return resp{}, fmt.Errorf("bad line %q", line)
	}
	line = line[:len(line)-2]
	v := resp{kind: line[0]}
	switch v.kind {
	case '+', '-':
		v.str = line[1:]
	case ':':
		v.n, err = strconv.ParseInt(string(line[1:]), 10, 64)
	case '$':
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil {
			return v, err
		}
		if n < 0 {
			v.null = true
			return v, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return v, err
		}
		v.str = buf[:n]
	case '*':
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil {
			return v, err
		}
		if n < 0 {
			v.null = true
			return v, nil
		}
		v.items = make([]resp, 0, n)
		for i := 0; i < n; i++ {
			it, err := readResp(r)
			if err != nil {
				return v, err
			}
			v.items = append(v.items, it)
		}
	default:
		return v, fmt.Errorf("unexpected RESP2 type %q", v.kind)
	}
	return v, err
}

// toResp2 renders an engine reply as a RESP2 client receives it: written
// by the client port's writer, read back.
func toResp2(r *messages.Reply) resp {
	var b bytes.Buffer
	w := respw.NewWriter(&b)
	if err := w.WriteReply(r, 2); err != nil {
		panic(err)
	}
	if err := w.Flush(); err != nil {
		panic(err)
	}
	v, err := readResp(bufio.NewReader(&b))
	if err != nil {
		panic(fmt.Sprintf("the writer's RESP2 of %v: %v", r, err))
	}
	return v
}

// wire writes v in RESP2.
func (v resp) wire() string {
	var b strings.Builder
	v.write(&b)
	return b.String()
}

func (v resp) write(b *strings.Builder) {
	switch {
	case v.null:
		fmt.Fprintf(b, "%c-1\r\n", v.kind)
	case v.kind == '+' || v.kind == '-':
		fmt.Fprintf(b, "%c%s\r\n", v.kind, v.str)
	case v.kind == ':':
		fmt.Fprintf(b, ":%d\r\n", v.n)
	case v.kind == '$':
		fmt.Fprintf(b, "$%d\r\n%s\r\n", len(v.str), v.str)
	case v.kind == '*':
		fmt.Fprintf(b, "*%d\r\n", len(v.items))
		for _, it := range v.items {
			it.write(b)
		}
	}
}

// sorted sorts an array's items by their wire form (SCAN: its key array).
func (v resp) sorted() resp {
	if v.kind != '*' || v.null {
		return v
	}
	if len(v.items) == 2 && v.items[1].kind == '*' && v.items[0].kind == '$' {
		v.items = []resp{v.items[0], v.items[1].sorted()}
		return v
	}
	items := append([]resp(nil), v.items...)
	sort.Slice(items, func(i, j int) bool { return items[i].wire() < items[j].wire() })
	v.items = items
	return v
}

// sortedPairs sorts a flat field/value array by pairs.
func (v resp) sortedPairs() resp {
	if v.kind != '*' || v.null || len(v.items)%2 != 0 {
		return v
	}
	type pair struct{ k, v resp }
	var ps []pair
	for i := 0; i < len(v.items); i += 2 {
		ps = append(ps, pair{v.items[i], v.items[i+1]})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].k.wire() < ps[j].k.wire() })
	out := resp{kind: '*'}
	for _, p := range ps {
		out.items = append(out.items, p.k, p.v)
	}
	return out
}

var timeToken = regexp.MustCompile(`\{(nows|now)([+-]\d+)?\}`)

// parseLine splits a script line into directives and arguments.
func parseLine(line string, now time.Time) (directives []string, args [][]byte, err error) {
	line = timeToken.ReplaceAllStringFunc(line, func(tok string) string {
		m := timeToken.FindStringSubmatch(tok)
		off := int64(0)
		if m[2] != "" {
			off, _ = strconv.ParseInt(m[2], 10, 64)
		}
		if m[1] == "nows" {
			return strconv.FormatInt(now.Unix()+off, 10)
		}
		return strconv.FormatInt(now.UnixMilli()+off, 10)
	})
	s := strings.TrimSpace(line)
	for len(s) > 0 {
		var tok []byte
		if s[0] == '"' {
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, nil, fmt.Errorf("unterminated quote")
			}
			u, err := strconv.Unquote(s[:end+1])
			if err != nil {
				return nil, nil, fmt.Errorf("quoted argument %s: %v", s[:end+1], err)
			}
			tok, s = []byte(u), s[end+1:]
		} else {
			end := strings.IndexAny(s, " \t")
			if end < 0 {
				end = len(s)
			}
			tok, s = []byte(s[:end]), s[end:]
			if len(args) == 0 && tok[0] == '@' {
				directives = append(directives, string(tok[1:]))
				s = strings.TrimSpace(s)
				continue
			}
		}
		args = append(args, tok)
		s = strings.TrimSpace(s)
	}
	return directives, args, nil
}

// engine runs a command as the node does: unknown and badly sized commands
// are refused by CheckArity, writes go through Exec on a batch that then
// commits, reads through Read.
func engineDo(t *testing.T, ps *pebbleStore, args [][]byte, now int64) *messages.Reply {
	if r := CheckArity(args); r != nil {
		return r
	}
	s, _ := Lookup(args[0])
	switch s.Name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro":
		// As the node does (one shard), with a cache of the EVALs run.
		cmd, _, read, sc, r := PrepareEval(s.Name, args, func(sha string) []byte { return diffScripts[sha] }, 1)
		if r != nil {
			return r
		}
		diffScripts[sc.SHA] = sc.Body
		args, s = cmd, &Spec{Write: !read}
	}
	if !s.Write {
		return Read(ps, args, now)
	}
	r := Exec(ps, &messages.Command{Args: args, NowMs: now})
	ps.commit(t)
	return r
}

// diffScripts is the differential test's script cache: the bodies of the
// EVALs run, by SHA.
var diffScripts = map[string][]byte{}

// againstRedis runs cmds in order on a real redis-server and on the
// engine, and fails at the first reply that differs; seen, if set, gets
// each command with Redis's reply.
func againstRedis(t *testing.T, cmds [][]string, seen func(cmd []string, want resp)) {
	t.Helper()
	rc := startRedis(t)
	ps := newPebbleStore(t)
	rc.do(t, [][]byte{[]byte("FLUSHALL")})
	for i, c := range cmds {
		args := make([][]byte, len(c))
		for j, s := range c {
			args[j] = []byte(s)
		}
		want := rc.do(t, args)
		got := toResp2(engineDo(t, ps, args, time.Now().UnixMilli()))
		if got.wire() != want.wire() {
			t.Fatalf("command %d %.80q:\n  redis:  %.300q\n  engine: %.300q", i, c, want.wire(), got.wire())
		}
		if seen != nil {
			seen(c, want)
		}
	}
}

func runDiffScript(t *testing.T, rc *respConn, file string) (n, mismatches int) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ps := newPebbleStore(t)
	rc.do(t, [][]byte{[]byte("FLUSHALL")})
	for i, line := range strings.Split(string(data), "\n") {
		where := fmt.Sprintf("%s:%d", file, i+1)
		if s := strings.TrimSpace(line); s == "" || s[0] == '#' {
			continue
		}
		now := time.Now()
		dirs, args, err := parseLine(line, now)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if len(args) == 0 {
			for _, d := range dirs {
				if ms, ok := strings.CutPrefix(d, "sleep="); ok {
					d, _ := strconv.Atoi(ms)
					time.Sleep(time.Duration(d) * time.Millisecond)
				}
			}
			continue
		}
		if s, ok := Lookup(args[0]); ok && s.Node && s.Name != "command" {
			t.Fatalf("%s: %s is served by the node, not the engine", where, args[0])
		}
		want := rc.do(t, args)
		got := toResp2(engineDo(t, ps, args, now.UnixMilli()))
		n++
		approx := int64(0)
		for _, d := range dirs {
			switch {
			case d == "error":
				want, got = want.luaErrorPrefix(), got.luaErrorPrefix()
			case d == "sort":
				want, got = want.sorted(), got.sorted()
			case d == "pairs":
				want, got = want.sortedPairs(), got.sortedPairs()
			case strings.HasPrefix(d, "approx="):
				approx, _ = strconv.ParseInt(d[len("approx="):], 10, 64)
			default:
				t.Fatalf("%s: unknown directive @%s", where, d)
			}
		}
		if approx > 0 && want.kind == ':' && got.kind == ':' && want.n >= 0 && got.n >= 0 &&
			got.n-want.n <= approx && want.n-got.n <= approx {
			continue
		}
		if got.wire() != want.wire() {
			mismatches++
			t.Errorf("%s: %s\n  redis:  %s\n  engine: %s", where, strings.TrimSpace(line), clip(want.wire()), clip(got.wire()))
		}
	}
	return n, mismatches
}

// luaErrorPrefix keeps an error up to the end of its first
// "user_script:N:" (a reply that is not an error is kept whole).
func (r resp) luaErrorPrefix() resp {
	if r.kind != '-' {
		return r
	}
	if loc := luaPosition.FindIndex(r.str); loc != nil {
		r.str = r.str[:loc[1]]
	}
	return r
}

var luaPosition = regexp.MustCompile(`user_script:\d+:`)

// clip quotes a reply for a message, cut at 1000 bytes.
func clip(s string) string {
	if len(s) > 1000 {
		return strconv.Quote(s[:1000]) + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return strconv.Quote(s)
}

// Every command the engine runs appears at least twice in the differential
// scripts: these, or the node's (server/testdata/pubsub, whose lines start
// with their connection's name: FCALL needs FUNCTION LOAD, the node's).
func TestDiffScriptsCoverEveryCommand(t *testing.T) {
	files, _ := filepath.Glob("testdata/diff/*.txt")
	nodeFiles, _ := filepath.Glob("../server/testdata/pubsub/*.txt")
	seen := map[string]int{}
	for _, f := range append(files, nodeFiles...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if slices.Contains(nodeFiles, f) {
				for strings.HasPrefix(line, "@") {
					_, line, _ = strings.Cut(line, " ")
				}
				_, line, _ = strings.Cut(line, " ") // the connection
			}
			_, args, err := parseLine(line, time.Now())
			if err != nil || len(args) == 0 || strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			seen[strings.ToLower(string(args[0]))]++
		}
	}
	for _, s := range Commands() {
		if s.Node && s.Name != "command" {
			continue
		}
		if seen[s.Name] < 2 {
			t.Errorf("%s: %d lines in testdata/diff", s.Name, seen[s.Name])
		}
	}
}
