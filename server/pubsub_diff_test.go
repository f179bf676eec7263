package server

// The pub/sub differential test: testdata/pubsub/*.txt run on a real
// redis-server and on a Server over the engine (engineBackend), with
// several connections, and what each connection receives must be the same
// bytes.
//
// A line is a connection's name (a word; the first use of a name dials
// it), then a command, arguments split at spaces (an argument in double
// quotes is a Go string literal, with no space in it). The command is sent,
// then PING with a token, and every frame that comes before the token's
// answer is what the line received: the command's replies, and the
// messages that came to the connection meanwhile. A line with a name alone
// sends only the PING: it collects the messages that came. "@sort" before
// the name compares the line's frames, and the items of an array of bulk
// strings, in any order (Redis answers an UNSUBSCRIBE of every channel,
// PUBSUB CHANNELS and a message's pmessages in its hash tables' order):
// the counts that end confirmations are compared as a set of their own,
// apart from the names they come with; "@ignore" does not compare
// them (HELLO's answer has the connection's id); "@one" sends no PING and
// reads one frame (in MULTI, where the PING would be queued); "@words"
// compares each line of the frames with its words in any order (ACL
// rules); "@closed" expects the connection closed by the server;
// "@stats" compares INFO's counters (statsLines). '#' starts a comment.
// Each file starts on new connections to an empty database on both sides.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/redistest"
)

func TestPubSubAgainstRedis(t *testing.T) { compareScripts(t, "testdata/pubsub/*.txt", false) }

// compareScripts runs the scripts glob names, each on a new Server over
// the engine and on a redis-server: one for all (freshRedis false: each
// file starts with a FLUSHALL there) or one per file (users and other
// server state outlive a file).
func compareScripts(t *testing.T, glob string, freshRedis bool) {
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in %s: %v", glob, err)
	}
	start := func(t *testing.T) string {
		return redistest.Start(t, "--enable-debug-command", "yes") // the node serves DEBUG's safe subcommands
	}
	var sock string
	if !freshRedis {
		sock = start(t)
	}
	lines := 0
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			sock := sock
			if freshRedis {
				sock = start(t)
			}
			b := newEngineBackend()
			srv, err := Listen(Config{Addr: "127.0.0.1:0", Notify: b.notify}, b)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			b.fire, b.modified = srv.Notify, srv.Modified
			redis := func() (net.Conn, error) { return net.DialTimeout("unix", sock, 5*time.Second) }
			ours := func() (net.Conn, error) { return net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second) }
			lines += runPubSubScript(t, f, redis, ours)
		})
	}
	t.Logf("%d lines in %d files compared with redis-server", lines, len(files))
}

// frameConn is one connection of a script, on one side.
type frameConn struct {
	nc net.Conn
	rd *bufio.Reader
}

func runPubSubScript(t *testing.T, file string, dials ...func() (net.Conn, error)) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]map[string]*frameConn, len(dials))
	for i := range conns {
		conns[i] = map[string]*frameConn{}
	}
	defer func() {
		for _, side := range conns {
			for _, c := range side {
				c.nc.Close()
			}
		}
	}()
	n := 0
	for lineNo, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n++
		where := fmt.Sprintf("%s:%d: %s", file, lineNo+1, line)
		sorted, ignore, one, words := false, false, false, false
		if rest, ok := strings.CutPrefix(line, "@one "); ok {
			one, line = true, rest
		}
		if rest, ok := strings.CutPrefix(line, "@words "); ok {
			words, line = true, rest
		}
		closed, stats := false, false
		if rest, ok := strings.CutPrefix(line, "@stats "); ok {
			stats, line = true, rest
		}
		if rest, ok := strings.CutPrefix(line, "@closed "); ok {
			closed, line = true, rest
		}
		if rest, ok := strings.CutPrefix(line, "@sort "); ok {
			sorted, line = true, rest
		}
		if rest, ok := strings.CutPrefix(line, "@ignore "); ok {
			ignore, line = true, rest
		}
		fields, err := splitArgs(line)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		name, args := fields[0], fields[1:]
		token := fmt.Sprintf("token-%d", n)
		var got [][]string
		for side, dial := range dials {
			c := conns[side][name]
			if c == nil {
				nc, err := dial()
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				c = &frameConn{nc: nc, rd: bufio.NewReader(nc)}
				conns[side][name] = c
				if side == 0 && n == 1 {
					// Redis keeps its data between files: start empty.
					fmt.Fprintf(nc, "FLUSHALL\r\n")
					if _, err := readFrame(c.rd); err != nil {
						t.Fatalf("%s: FLUSHALL: %v", where, err)
					}
				}
			}
			if one {
				token = ""
			}
			frames, err := c.exchange(args, token)
			if closed && err != nil && (errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
				frames, err = []string{"closed"}, nil
			}
			if err != nil {
				t.Fatalf("%s: side %d: %v (received %q)", where, side, err, frames)
			}
			if sorted {
				frames = unordered(frames)
			}
			if words {
				frames = sortedWords(frames)
			}
			if stats {
				frames = statsLines(frames)
			}
			got = append(got, frames)
		}
		if !ignore && !slices.Equal(got[0], got[1]) {
			t.Errorf("%s\n  redis:  %q\n  coppice: %q", where, got[0], got[1])
		}
	}
	return n
}

// exchange sends args (if any), then PING token, and returns the frames
// that come before the token's answer. After QUIT, it returns the answer
// and "closed" once the connection is. With no token it sends no PING and
// returns one frame.
func (c *frameConn) exchange(args []string, token string) ([]string, error) {
	var b bytes.Buffer
	quit := len(args) > 0 && strings.EqualFold(args[0], "quit")
	ping := []string{"PING", token}
	if quit || token == "" {
		ping = nil
	}
	for _, cmd := range [][]string{args, ping} {
		if len(cmd) == 0 {
			continue
		}
		fmt.Fprintf(&b, "*%d\r\n", len(cmd))
		for _, a := range cmd {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	c.nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write(b.Bytes()); err != nil {
		return nil, err
	}
	tokenReplies := []string{
		fmt.Sprintf("$%d\r\n%s\r\n", len(token), token),
		fmt.Sprintf("*2\r\n$4\r\npong\r\n$%d\r\n%s\r\n", len(token), token),
	}
	var frames []string
	for len(frames) < 1000 {
		f, err := readFrame(c.rd)
		if quit && len(frames) == 1 && err == io.EOF && f == "" {
			return append(frames, "closed"), nil
		}
		if err != nil {
			return frames, err
		}
		if token == "" && !quit {
			return []string{f}, nil
		}
		if slices.Contains(tokenReplies, f) {
			return frames, nil
		}
		frames = append(frames, f)
	}
	return frames, fmt.Errorf("no answer to PING %s in 1000 frames", token)
}

// readFrame reads one RESP2 or RESP3 value whole and returns its bytes.
func readFrame(rd *bufio.Reader) (string, error) {
	var out strings.Builder
	var read func() error
	read = func() error {
		line, err := rd.ReadString('\n')
		if err != nil {
			return err
		}
		out.WriteString(line)
		if len(line) < 3 {
			return fmt.Errorf("short line %q", line)
		}
		body := strings.TrimSuffix(line[1:], "\r\n")
		switch line[0] {
		case '+', '-', ':', '_', '#', ',', '(':
			return nil
		case '$', '=', '!':
			n, err := strconv.Atoi(body)
			if err != nil || n < 0 {
				return err // a null bulk ($-1) is whole
			}
			buf := make([]byte, n+2)
			if _, err := io.ReadFull(rd, buf); err != nil {
				return err
			}
			out.Write(buf)
			return nil
		case '*', '~', '>', '%', '|':
			n, err := strconv.Atoi(body)
			if err != nil {
				return err
			}
			if line[0] == '%' || line[0] == '|' {
				n *= 2
			}
			for range max(n, 0) {
				if err := read(); err != nil {
					return err
				}
			}
			return nil
		}
		return fmt.Errorf("unknown frame %q", line)
	}
	err := read()
	return out.String(), err
}

// unordered puts frames in a canonical order: a lone array of bulk strings
// sorted (PUBSUB CHANNELS), each confirmation's count (a last integer) taken off and the
// counts sorted after the sorted frames.
func unordered(frames []string) []string {
	var out, counts []string
	for _, f := range frames {
		rd := bufio.NewReader(strings.NewReader(f))
		head, _ := rd.ReadString('\n')
		n, err := strconv.Atoi(strings.TrimSuffix(head[1:], "\r\n"))
		if (head[0] != '*' && head[0] != '>') || err != nil {
			out = append(out, f)
			continue
		}
		var items []string
		for range n {
			item, err := readFrame(rd)
			if err != nil {
				break
			}
			items = append(items, item)
		}
		if len(items) > 0 && items[len(items)-1][0] == ':' && len(items) == 3 {
			counts = append(counts, items[2])
			items = items[:2]
		} else if len(frames) == 1 && !slices.ContainsFunc(items, func(s string) bool { return s[0] != '$' }) {
			slices.Sort(items)
		}
		out = append(out, head+strings.Join(items, ""))
	}
	slices.Sort(out)
	slices.Sort(counts)
	return append(out, counts...)
}

// sortedWords sorts the words of each line of each frame: ACL rules
// that name single commands come in Redis's hash table order, which
// changes from run to run (a bulk string's length is the same whatever
// the order).
func sortedWords(frames []string) []string {
	out := make([]string, len(frames))
	for i, f := range frames {
		lines := strings.Split(f, "\r\n")
		for j, l := range lines {
			w := strings.Split(l, " ")
			slices.Sort(w)
			lines[j] = strings.Join(w, " ")
		}
		out[i] = strings.Join(lines, "\r\n")
	}
	return out
}

// statsLines keeps of INFO's text the counters two servers that ran the
// same commands share: each command's calls, rejected and failed calls
// (cmdstat_, in Redis's hash table order: sorted here; the time masked),
// the errors by prefix (errorstat_), total_commands_processed and
// total_error_replies.
func statsLines(frames []string) []string {
	usec := regexp.MustCompile(`usec=\d+,usec_per_call=[\d.]+,`)
	out := make([]string, len(frames))
	for i, f := range frames {
		var keep []string
		for _, l := range strings.Split(f, "\r\n") {
			switch {
			case strings.HasPrefix(l, "cmdstat_"):
				keep = append(keep, usec.ReplaceAllString(l, ""))
			case strings.HasPrefix(l, "errorstat_"), strings.HasPrefix(l, "total_commands_processed:"), strings.HasPrefix(l, "total_error_replies:"):
				keep = append(keep, l)
			}
		}
		slices.Sort(keep)
		out[i] = strings.Join(keep, "\n")
	}
	return out
}

// splitArgs splits a script line at spaces; an argument in double quotes
// is a Go string literal (spaces, "\n", "\x00" inside).
func splitArgs(line string) ([]string, error) {
	var out []string
	s := strings.TrimSpace(line)
	for len(s) > 0 {
		if s[0] != '"' {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			out, s = append(out, s[:end]), strings.TrimSpace(s[end:])
			continue
		}
		end := 1
		for end < len(s) && s[end] != '"' {
			if s[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(s) {
			return nil, fmt.Errorf("unterminated quote")
		}
		u, err := strconv.Unquote(s[:end+1])
		if err != nil {
			return nil, err
		}
		out, s = append(out, u), strings.TrimSpace(s[end+1:])
	}
	return out, nil
}
