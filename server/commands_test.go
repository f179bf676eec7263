package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/redistest"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// recordingBackend has 4 shards and answers every command with its
// shard's number, remembering what it ran where.
type recordingBackend struct {
	mu  sync.Mutex
	ran []string
	// bulks is the commands that asked for their bulk strings written
	// out (Command.bulks).
	bulks []string
}

func (b *recordingBackend) Shards() int { return 4 }
func (b *recordingBackend) run(shard int, cmd *messages.Command) Pending {
	b.mu.Lock()
	b.ran = append(b.ran, fmt.Sprintf("%d:%s", shard, cmd.Args[0]))
	if cmd.Bulks {
		b.bulks = append(b.bulks, string(cmd.Args[0]))
	}
	b.mu.Unlock()
	return done{integer(int64(shard))}
}
func (b *recordingBackend) Propose(shard int, cmd *messages.Command) Pending {
	return b.run(shard, cmd)
}
func (b *recordingBackend) Read(shard int, cmd *messages.Command) Pending { return b.run(shard, cmd) }
func (b *recordingBackend) Scan(int, *messages.ScanShard) Pending         { return done{errorf("ERR no scan")} }

// recordingServer is a Server over a recordingBackend, closed at the
// test's end.
func recordingServer(t *testing.T) (*recordingBackend, *Server) {
	t.Helper()
	b := &recordingBackend{}
	srv, err := Listen(Config{Addr: "127.0.0.1:0"}, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return b, srv
}

// client is a RESP2 connection to srv that sends inline commands and
// reads one reply (a simple one, or a bulk string whole).
type client struct {
	t  *testing.T
	nc net.Conn
	rd *bufio.Reader
}

func dial(t *testing.T, srv *Server) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, nc: nc, rd: bufio.NewReader(nc)}
}

// dialRedis starts a redis-server (with args) and connects to it, as
// dial connects to a Server.
func dialRedis(t *testing.T, args ...string) *client {
	t.Helper()
	nc, err := net.DialTimeout("unix", redistest.Start(t, args...), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: t, nc: nc, rd: bufio.NewReader(nc)}
}

func (c *client) do(cmd string) string {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.nc, "%s\r\n", cmd); err != nil {
		c.t.Fatal(err)
	}
	return c.read()
}

func (c *client) read() string {
	c.t.Helper()
	line, err := c.rd.ReadString('\n')
	if err != nil {
		c.t.Fatal(err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch line[0] {
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return line
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.rd, buf); err != nil {
			c.t.Fatal(err)
		}
		return string(buf[:n])
	case '*', '>', '%', '~':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return line
		}
		if line[0] == '%' {
			n *= 2
		}
		items := make([]string, n)
		for i := range items {
			items[i] = c.read()
		}
		return "[" + strings.Join(items, " ") + "]"
	}
	return line
}

// Commands whose keys change or are read together (RENAME, RENAMENX,
// COPY, MSETNX, SMOVE, SINTER, SUNION, SDIFF and their STORE forms, LMOVE,
// RPOPLPUSH, and SINTERCARD and LMPOP, whose keys follow their count)
// run on their shard when every key is on it, and are refused with
// CROSSSLOT, nothing run, when not. TOUCH is split by shard, as EXISTS.
func TestKeysOnOneShard(t *testing.T) {
	b, srv := recordingServer(t)
	c := dial(t, srv)
	// {a} and {b} are on different shards of 4; {a}x and {a}y share one.
	sa, sb := kv.ShardOf(kv.Slot([]byte("a")), 4), kv.ShardOf(kv.Slot([]byte("b")), 4)
	if sa == sb {
		t.Fatalf("a and b share shard %d: pick other keys", sa)
	}
	cross := "-CROSSSLOT Keys in request don't hash to the same shard: give them one {hash tag}"
	for _, cmd := range []string{"RENAME a b", "RENAMENX a b", "COPY a b", "COPY a b REPLACE", "MSETNX a 1 b 2", "MSETNX {a}x 1 {a}y 2 b 3",
		"SMOVE a b m", "SINTER a b", "SUNION {a}x b", "SDIFF a {a}x b", "SINTERSTORE {a}x a b", "SDIFFSTORE b a",
		"LMOVE a b LEFT RIGHT", "RPOPLPUSH a b", "SINTERCARD 2 a b", "LMPOP 2 {a}x b LEFT",
		"ZUNIONSTORE a 2 {a}x b", "ZUNIONSTORE b 1 a", "ZINTER 2 a b", "ZRANGESTORE a b 0 1"} {
		if got := c.do(cmd); got != cross {
			t.Errorf("%s: %q, want CROSSSLOT", cmd, got)
		}
	}
	if len(b.ran) != 0 {
		t.Fatalf("refused commands ran: %v", b.ran)
	}
	for _, cmd := range []string{"RENAME {a}x {a}y", "COPY {a}x {a}y DB 0", "MSETNX {a}x 1 {a}y 2", "RENAMENX a {a}z", "SINTER a {a}x", "SUNIONSTORE a {a}y {a}z",
		"LMOVE a {a}x LEFT LEFT", "RPOPLPUSH {a}x a", "SINTERCARD 2 a {a}x LIMIT 1", "LMPOP 2 {a}x a RIGHT",
		"ZUNIONSTORE {a}d 2 a {a}x WEIGHTS 1 2", "ZDIFF 2 a {a}y", "ZRANGESTORE {a}z a 0 -1"} {
		if got, want := c.do(cmd), ":"+strconv.Itoa(sa); got != want {
			t.Errorf("%s: %q, want %q (its shard)", cmd, got, want)
		}
	}
	// TOUCH: one read per shard (the fake answers its number), the replies
	// summed.
	b.ran = nil
	if got, want := c.do("TOUCH a b {a}x"), ":"+strconv.Itoa(sa+sb); got != want {
		t.Errorf("TOUCH a b {a}x: %q, want %q", got, want)
	}
	if len(b.ran) != 2 {
		t.Errorf("TOUCH ran %v, want one read on each of two shards", b.ran)
	}
}

// A client's read of one shard asks for its reply's bulk strings written
// out (Command.bulks): the port writes that reply as it comes. The reads
// whose replies the port takes apart or puts together (MGET's and KEYS'
// parts, EXISTS' counts) and writes do not.
func TestOneShardReadsComeWrittenOut(t *testing.T) {
	b, srv := recordingServer(t)
	c := dial(t, srv)
	for _, cmd := range []string{"LRANGE l 0 -1", "MGET a b", "KEYS *", "EXISTS a b", "HGETALL h", "RPUSH l x", "SMEMBERS s"} {
		c.do(cmd)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if got, want := strings.Join(b.bulks, " "), "LRANGE HGETALL SMEMBERS"; got != want {
		t.Fatalf("written out: %q, want %q", got, want)
	}
}

// TIME is the node's clock as Redis gives it; CLIENT LIST lists every
// connection, with its name, in the order of ids, and takes TYPE and ID.
func TestTimeAndClientList(t *testing.T) {
	_, srv := recordingServer(t)
	c1, c2 := dial(t, srv), dial(t, srv)
	before := time.Now().Unix()
	got := c1.do("TIME")
	var secs, micros int64
	if n, _ := fmt.Sscanf(got, "[%d %d]", &secs, &micros); n != 2 || secs < before || secs > time.Now().Unix() || micros < 0 || micros > 999999 {
		t.Fatalf("TIME: %q", got)
	}
	if got := c1.do("TIME x"); got != "-ERR wrong number of arguments for 'time' command" {
		t.Fatalf("TIME x: %q", got)
	}
	if got := c2.do("CLIENT SETNAME second"); got != "+OK" {
		t.Fatal(got)
	}
	list := c1.do("CLIENT LIST")
	lines := strings.Split(strings.TrimSuffix(list, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "id=1 addr=") || !strings.Contains(lines[0], " name= ") ||
		!strings.HasPrefix(lines[1], "id=2 addr=") || !strings.Contains(lines[1], " name=second ") || !strings.Contains(lines[1], " resp=2") {
		t.Fatalf("CLIENT LIST:\n%s", list)
	}
	if got := c1.do("CLIENT LIST ID 2 99"); strings.Count(got, "\n") != 1 || !strings.HasPrefix(got, "id=2 ") {
		t.Fatalf("CLIENT LIST ID 2 99: %q", got)
	}
	if got := c1.do("CLIENT LIST TYPE normal"); got != list {
		t.Fatalf("CLIENT LIST TYPE normal: %q, want %q", got, list)
	}
	if got := c1.do("CLIENT LIST TYPE pubsub"); got != "" {
		t.Fatalf("CLIENT LIST TYPE pubsub: %q", got)
	}
	for cmd, want := range map[string]string{
		"CLIENT LIST TYPE nosuch": "-ERR Unknown client type 'nosuch'",
		"CLIENT LIST ID x":        "-ERR Invalid client ID",
		"CLIENT LIST bogus":       "-ERR syntax error",
	} {
		if got := c1.do(cmd); got != want {
			t.Errorf("%s: %q, want %q", cmd, got, want)
		}
	}
}

// CLIENT KILL closes other connections by filter (and the caller's own
// only with SKIPME no, after its reply), or by address in the old form.
func TestClientKill(t *testing.T) {
	_, srv := recordingServer(t)
	c1, c2, c3 := dial(t, srv), dial(t, srv), dial(t, srv)
	for _, c := range []*client{c2, c3} { // accepted for sure
		if got := c.do("PING"); got != "+PONG" {
			t.Fatal(got)
		}
	}
	closed := func(c *client) bool {
		_, err := c.rd.ReadByte()
		return err != nil
	}
	for cmd, want := range map[string]string{
		"CLIENT KILL ID 0":                       "-ERR client-id should be greater than 0",
		"CLIENT KILL ID x":                       "-ERR client-id should be greater than 0",
		"CLIENT KILL ID 2 SKIPME maybe":          "-ERR syntax error",
		"CLIENT KILL ID 2 BOGUS 1":               "-ERR syntax error",
		"CLIENT KILL ID 2 TYPE":                  "-ERR syntax error",
		"CLIENT KILL TYPE nosuch":                "-ERR Unknown client type 'nosuch'",
		"CLIENT KILL":                            "-ERR wrong number of arguments for 'client|kill' command",
		"CLIENT KILL 10.9.9.9:1":                 "-ERR No such client",
		"CLIENT KILL ID 99":                      ":0",
		"CLIENT KILL ID 1":                       ":0", // itself, skipped
		"CLIENT KILL TYPE pubsub":                ":0",
		"CLIENT KILL USER someone":               "-ERR No such user 'someone'",
		"CLIENT KILL ID 2 ADDR 10.9.9.9:1":       ":0",
		"CLIENT KILL LADDR 10.9.9.9:1 SKIPME no": ":0",
	} {
		if got := c1.do(cmd); got != want {
			t.Errorf("%s: %q, want %q", cmd, got, want)
		}
	}
	// Counted out at once, as Redis frees a killed client before it
	// answers (Redis's "CLIENT KILL SKIPME YES/NO will kill all
	// clients"), even while its goroutine is busy (in DEBUG SLEEP).
	c2.send("DEBUG SLEEP 1")
	testwait.For(t, 5*time.Second, 5*time.Millisecond, "c2 in its DEBUG SLEEP", func() error {
		if l := c1.do("CLIENT LIST ID 2"); !strings.Contains(l, "cmd=debug") {
			return fmt.Errorf("CLIENT LIST ID 2: %s", l)
		}
		return nil
	})
	if got, info := c1.do("CLIENT KILL ID 2"), c1.do("INFO clients"); got != ":1" || !strings.Contains(info, "connected_clients:2\r\n") || !closed(c2) {
		t.Fatalf("CLIENT KILL ID 2: %q, then INFO:\n%s", got, info)
	}
	if got := c1.do("CLIENT KILL " + c3.nc.LocalAddr().String()); got != "+OK" || !closed(c3) {
		t.Fatalf("CLIENT KILL <c3's address>: %q", got)
	}
	if got := c1.do("CLIENT KILL ID 1 SKIPME no"); got != ":1" || !closed(c1) {
		t.Fatalf("CLIENT KILL ID 1 SKIPME no: %q", got)
	}
}

// SORT's BY and GET patterns must form keys on the sorted key's shard:
// a {hash tag} before the '*' does it; patterns that may reach another
// shard are refused, nothing run.
func TestSortPatternsStayOnTheShard(t *testing.T) {
	_, c, _ := txServer(t)
	other := "other"
	for i := 0; kv.ShardOf(kv.Slot([]byte(other)), 4) == kv.ShardOf(kv.Slot([]byte("{u}")), 4); i++ {
		other = fmt.Sprintf("other%d", i)
	}
	script(t, c,
		"RPUSH {u}l 1 2 3", ":3",
		"MSET {u}w_1 3 {u}w_2 2 {u}w_3 1", "+OK",
		"SET {u}v_2 two", "+OK",
		"SORT {u}l BY {u}w_*", "[3 2 1]",
		"SORT {u}l BY {u}w_* GET # GET {u}v_*", "[3 $-1 2 two 1 $-1]",
		"SORT {u}l BY nosort DESC", "[3 2 1]",
		"SORT {u}l BY w_*", "-ERR BY option of SORT denied: the keys the pattern forms may be on another shard than the key's; give the pattern the key's {hash tag} before its '*'",
		"SORT {u}l GET v_*", "-ERR GET option of SORT denied: the keys the pattern forms may be on another shard than the key's; give the pattern the key's {hash tag} before its '*'",
		"SORT_RO {u}l BY w_*{u}", "-ERR BY option of SORT denied: the keys the pattern forms may be on another shard than the key's; give the pattern the key's {hash tag} before its '*'",
		"SORT {u}l STORE {u}out", ":3",
		"SORT {u}l STORE "+other, "-CROSSSLOT Keys in request don't hash to the same shard: give them one {hash tag}",
		"EXISTS "+other, ":0",
	)
}

// RANDOMKEY on a node of four shards: nil when every shard is empty, the
// key when there is one (whatever shard it is on), and over enough tries
// every key, from every shard.
func TestRandomKeyAcrossShards(t *testing.T) {
	_, c, _ := txServer(t)
	script(t, c, "RANDOMKEY", "$-1")
	keys := map[string]bool{}
	// RANDOMKEY takes a shard's first key after a random point, so a key
	// right after another of its shard ("c" after "b") comes up once in
	// about 256 picks of that shard: 2000 tries missed one now and then.
	// First bytes 8 apart make every key at least 8 in 256.
	for _, k := range []string{"0", "8", "@", "H", "P", "X", "`", "h"} {
		keys[k] = true
		script(t, c, "SET "+k+" 1", "+OK")
	}
	shards := map[int]bool{}
	for k := range keys {
		shards[kv.ShardOf(kv.Slot([]byte(k)), 4)] = true
	}
	if len(shards) < 3 {
		t.Fatalf("the keys are on %d shards: pick others", len(shards))
	}
	seen := map[string]bool{}
	for i := 0; i < 2000 && len(seen) < len(keys); i++ {
		k := c.do("RANDOMKEY")
		if !keys[k] {
			t.Fatalf("RANDOMKEY answered %q", k)
		}
		seen[k] = true
	}
	if len(seen) != len(keys) {
		t.Fatalf("2000 RANDOMKEYs saw %d keys of %d", len(seen), len(keys))
	}
	script(t, c, "DEL 0 8 @ H P X `", ":7", "RANDOMKEY", "h", "RANDOMKEY x", "-ERR wrong number of arguments for 'randomkey' command")
}
