package server

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/messages"
)

// send writes a command without reading its answer.
func (c *client) send(cmd string) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.nc, "%s\r\n", cmd); err != nil {
		c.t.Fatal(err)
	}
}

// A blocked pop answers once another client pushes; the blocked
// connection runs nothing else meanwhile (its next command waits); a
// timeout answers nil.
func TestBlockingPops(t *testing.T) {
	b, c, other := txServer(t)
	c.send("BLPOP {q}a {q}b 10")
	c.send("SET {q}after 1")
	waitBlockedClient(t, other)
	// Blocked: the SET sent after it has not run.
	script(t, other, "GET {q}after", "$-1")
	script(t, other, "RPUSH {q}b x y", ":2")
	if got := c.read(); got != "[{q}b x]" {
		t.Fatalf("BLPOP: %q", got)
	}
	if got := c.read(); got != "+OK" {
		t.Fatalf("the SET after BLPOP: %q", got)
	}
	script(t, c,
		"BRPOP {q}a {q}b 0", "[{q}b y]", // a list there: at once
		"BLPOP {q}a 0.05", "*-1",
		"BRPOP {q}a 0.001", "*-1",
		"BRPOPLPUSH {q}a {q}c 0.05", "$-1",
		"BLMOVE {q}a {q}c LEFT RIGHT 0.05", "$-1",
		"BLMPOP 0.05 2 {q}a {q}b LEFT", "*-1",
	)
	c.send("BLMPOP 10 2 {q}a {q}b RIGHT COUNT 2")
	script(t, other, "LPUSH {q}b 1 2 3", ":3")
	if got := c.read(); got != "[{q}b [1 2]]" {
		t.Fatalf("BLMPOP: %q", got)
	}
	c.send("BLMOVE {q}src {q}dst RIGHT LEFT 10")
	script(t, other, "RPUSH {q}src m", ":1")
	if got := c.read(); got != "m" {
		t.Fatalf("BLMOVE: %q", got)
	}
	script(t, c, "LRANGE {q}dst 0 -1", "[m]")
	// Sorted sets: the lowest (or highest) member, with its score.
	c.send("BZPOPMIN {q}z1 {q}z2 10")
	script(t, other, "ZADD {q}z2 2 b 1 a", ":2")
	if got := c.read(); got != "[{q}z2 a 1]" {
		t.Fatalf("BZPOPMIN: %q", got)
	}
	script(t, c,
		"BZPOPMAX {q}z1 {q}z2 0", "[{q}z2 b 2]",
		"BZPOPMIN {q}z2 0.05", "*-1",
		"BZMPOP 0.05 1 {q}z2 MIN", "*-1",
	)
	c.send("BZMPOP 10 2 {q}z1 {q}z2 MAX COUNT 2")
	script(t, other, "ZADD {q}z1 1 x 2 y 3 z", ":3")
	if got := c.read(); got != "[{q}z1 [[z 3] [y 2]]]" {
		t.Fatalf("BZMPOP: %q", got)
	}
	// The tries: one at the start and one after each write of a key
	// waited for, not one per poll.
	b.takeProposed()
	c.send("BRPOPLPUSH {q}e {q}dst 10")
	waitBlockedClient(t, other) // its first try made
	script(t, other, "SET {q}unrelated 1", "+OK", "RPUSH {q}e last", ":1")
	if got := c.read(); got != "last" {
		t.Fatalf("BRPOPLPUSH: %q", got)
	}
	if p := b.takeProposed(); len(p) != 4 {
		t.Fatalf("proposed %q: want the first try, the two writes, the try they woke", p)
	}
}

// Refusals, as Redis's, with nothing run: a bad timeout, a bad
// direction (before the timeout), keys on two shards (inside MULTI too),
// a key of another type (at once), arity.
func TestBlockingRefusals(t *testing.T) {
	_, c, _ := txServer(t)
	script(t, c,
		"SET {q}s v", "+OK",
		"BLPOP {q}a x", "-ERR timeout is not a float or out of range",
		"BLPOP {q}a -1", "-ERR timeout is negative",
		"BLPOP {q}a inf", "-ERR timeout is negative",
		"BLPOP {q}a nan", "-ERR timeout is not a float or out of range",
		"BLMOVE {q}a {q}b UP LEFT x", "-ERR syntax error",
		"BLPOP a b 1", "-CROSSSLOT Keys in request don't hash to the same shard: give them one {hash tag}",
		"BLPOP {q}a {q}s 1", "-WRONGTYPE Operation against a key holding the wrong kind of value",
		"BLMPOP 1 0 {q}a LEFT", "-ERR numkeys should be greater than 0",
		"BLMPOP 1 1 {q}a UP", "-ERR syntax error",
		"BZPOPMIN {q}a x", "-ERR timeout is not a float or out of range",
		"BZPOPMIN {q}a {q}s 1", "-WRONGTYPE Operation against a key holding the wrong kind of value",
		"BZMPOP 1 1 {q}a UP", "-ERR syntax error",
		"BLPOP {q}a", "-ERR wrong number of arguments for 'blpop' command",
		"BLMOVE {q}a {q}b LEFT LEFT", "-ERR wrong number of arguments for 'blmove' command",
		"MULTI", "+OK",
		"BLPOP a b 1", "-CROSSSLOT Keys in request don't hash to the same shard: give them one {hash tag}",
		"DISCARD", "+OK",
	)
}

// A client that goes away while blocked is no longer waited for: a push
// after it stays in the list.
func TestBlockedClientGone(t *testing.T) {
	_, c, other := txServer(t)
	c.send("BLPOP {q}gone 0")
	c.nc.Close()
	testwait.For(t, 10*time.Second, 10*time.Millisecond, "the blocked client gone", func() error {
		if n := strings.Count(other.do("CLIENT LIST"), "\n"); n != 1 {
			return fmt.Errorf("%d clients", n)
		}
		return nil
	})
	script(t, other, "RPUSH {q}gone x", ":1", "LLEN {q}gone", ":1")
}

// A try that finds the shard electing (TRYAGAIN: nothing popped) is made
// again, within the timeout, not answered.
func TestBlockedTryAgain(t *testing.T) {
	b, c, other := txServer(t)
	script(t, other, "RPUSH {q}t x", ":1")
	b.mu.Lock()
	b.tryAgain = 2
	b.mu.Unlock()
	script(t, c, "BLPOP {q}t 10", "[{q}t x]")
	if p := b.takeProposed(); len(p) != 4 {
		t.Fatalf("proposed %q: want the push and three tries", p)
	}
	b.mu.Lock()
	b.tryAgain = 100
	b.mu.Unlock()
	script(t, c, "BRPOP {q}t 0.5", "*-1")
}

// XREAD BLOCK waits for an entry after the IDs it names, "$" standing for
// each stream's last ID when it begins; with data there it answers at
// once, and a timeout answers nil.
func TestXReadBlock(t *testing.T) {
	_, c, other := txServer(t)
	script(t, other, "XADD {s}a 1-0 f old", "1-0")
	c.send("XREAD BLOCK 0 STREAMS {s}a {s}b $ $")
	c.send("SET {s}after 1")
	waitBlockedClient(t, other)             // "$" is resolved by then
	script(t, other, "GET {s}after", "$-1") // blocked: the SET waits
	script(t, other, "XADD {s}b 5-0 f new", "5-0")
	if got := c.read(); got != "[[{s}b [[5-0 [f new]]]]]" {
		t.Fatalf("XREAD BLOCK: %q", got)
	}
	if got := c.read(); got != "+OK" {
		t.Fatalf("the SET after XREAD: %q", got)
	}
	script(t, c,
		"XREAD BLOCK 0 COUNT 1 STREAMS {s}a {s}b 0 0", "[[{s}a [[1-0 [f old]]]] [{s}b [[5-0 [f new]]]]]",
		"XREAD BLOCK 50 STREAMS {s}a $", "*-1",
		"XREAD BLOCK 50 STREAMS {s}a 1", "*-1",
		"XREAD BLOCK 10 STREAMS {s}a {other}b 0 0", "-CROSSSLOT Keys in request don't hash to the same shard: give them one {hash tag}",
		"XREAD BLOCK -1 STREAMS {s}a 0", "-ERR timeout is negative",
		"XREAD BLOCK x STREAMS {s}a 0", "-ERR timeout is not an integer or out of range",
		"XREAD BLOCK 10 STREAMS {s}after $", "-WRONGTYPE Operation against a key holding the wrong kind of value",
	)
	// Inside MULTI it reads once, as in Redis.
	script(t, c, "MULTI", "+OK", "XREAD BLOCK 0 STREAMS {s}a 0", "+QUEUED", "XREAD BLOCK 0 STREAMS {s}a $", "+QUEUED",
		"EXEC", "[[[{s}a [[1-0 [f old]]]]] *-1]")
}

// XREADGROUP BLOCK with ">" waits for an entry no consumer of the group
// was given; with an ID it answers the consumer's history at once.
func TestXReadGroupBlock(t *testing.T) {
	_, c, other := txServer(t)
	script(t, other, "XGROUP CREATE {s}a g $ MKSTREAM", "+OK")
	c.send("XREADGROUP GROUP g alice BLOCK 0 STREAMS {s}a >")
	script(t, other, "XADD {s}a 1-0 f v", "1-0")
	if got := c.read(); got != "[[{s}a [[1-0 [f v]]]]]" {
		t.Fatalf("XREADGROUP BLOCK: %q", got)
	}
	script(t, c,
		"XREADGROUP GROUP g alice BLOCK 0 STREAMS {s}a 0", "[[{s}a [[1-0 [f v]]]]]",
		"XREADGROUP GROUP g bob BLOCK 50 STREAMS {s}a >", "*-1",
		"XPENDING {s}a g", "[:1 1-0 1-0 [[alice 1]]]",
		"XREADGROUP GROUP nogroup bob BLOCK 50 STREAMS {s}a >", "-NOGROUP No such key '{s}a' or consumer group 'nogroup' in XREADGROUP with GROUP option",
	)
	// The group destroyed while a consumer waits: its error.
	c.send("XREADGROUP GROUP g bob BLOCK 0 STREAMS {s}a >")
	waitBlockedClient(t, other)
	script(t, other, "XGROUP DESTROY {s}a g", ":1")
	if got := c.read(); !strings.HasPrefix(got, "-NOGROUP") {
		t.Fatalf("XREADGROUP of a destroyed group: %q", got)
	}
}

// waitBlockedClient waits until CLIENT LIST, through other, shows a
// blocked client.
func waitBlockedClient(t *testing.T, other *client) {
	t.Helper()
	testwait.For(t, 5*time.Second, 5*time.Millisecond, "a client to block", func() error {
		if list := other.do("CLIENT LIST"); !strings.Contains(list, "flags=b") {
			return fmt.Errorf("not blocked: %s", list)
		}
		return nil
	})
}

// A key a blocked command waits on that becomes another type serves
// nothing: the command waits on, as in Redis, and is served once the key
// is of its type again; before it blocks, another type is WRONGTYPE.
// A move's destination of another type is WRONGTYPE, as in Redis.
func TestBlockedWaitsThroughOtherTypes(t *testing.T) {
	_, c, other := txServer(t)
	script(t, other, "SET {w}s x", "+OK")
	script(t, c, "BLPOP {w}s 1", "-WRONGTYPE Operation against a key holding the wrong kind of value")
	c.send("BLPOP {w}l 10")
	waitBlockedClient(t, other)
	script(t, other, "SET {w}l x", "+OK", "DEL {w}l", ":1", "RPUSH {w}l v", ":1")
	if got := c.read(); got != "[{w}l v]" {
		t.Fatalf("BLPOP after its key was a string: %q", got)
	}
	// A move whose source gets an element while its destination is of
	// another type ends with WRONGTYPE, and moves nothing.
	script(t, other, "SET {w}dst s", "+OK")
	c.send("BRPOPLPUSH {w}src {w}dst 10")
	waitBlockedClient(t, other)
	script(t, other, "RPUSH {w}src foo", ":1")
	if got := c.read(); got != "-WRONGTYPE Operation against a key holding the wrong kind of value" {
		t.Fatalf("BRPOPLPUSH to a string: %q", got)
	}
	script(t, other, "LRANGE {w}src 0 -1", "[foo]")
	c.send("XREAD BLOCK 10000 STREAMS {w}x $")
	waitBlockedClient(t, other)
	script(t, other, "MULTI", "+OK", "XADD {w}x 1-1 old v", "+QUEUED", "DEL {w}x", "+QUEUED", "LPUSH {w}x a", "+QUEUED", "EXEC", "[1-1 :1 :1]")
	script(t, other, "DEL {w}x", ":1", "XADD {w}x 2-1 new v", "2-1")
	if got := c.read(); got != "[[{w}x [[2-1 [new v]]]]]" {
		t.Fatalf("XREAD after its key was a list: %q", got)
	}
}

// gatedReads is engineBackend whose XREAD tries wait for the test to let
// each through: a try in flight, held.
type gatedReads struct {
	*engineBackend
	gate chan struct{}
}

func (g *gatedReads) Read(shard int, cmd *messages.Command) Pending {
	if strings.EqualFold(string(cmd.Args[0]), "xread") {
		<-g.gate
	}
	return g.engineBackend.Read(shard, cmd)
}

// A blocking command counts as blocked (CLIENT LIST's b, INFO's
// blocked_clients, UNBLOCK) only once its first try found nothing, as in
// Redis: while that try is in flight a key of another type is still its
// WRONGTYPE, and a client that waited for the flag to write one saw
// WRONGTYPE now and then.
func TestBlockedOnlyAfterTheFirstTry(t *testing.T) {
	g := &gatedReads{engineBackend: newEngineBackend(), gate: make(chan struct{})}
	srv, err := Listen(Config{Addr: "127.0.0.1:0"}, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	t.Cleanup(func() { close(g.gate) }) // first: a try still held goes on
	c, other := dial(t, srv), dial(t, srv)
	c.send("XREAD BLOCK 10000 STREAMS {w}x 0")
	testwait.For(t, 5*time.Second, 5*time.Millisecond, "the first try in flight", func() error {
		if list := other.do("CLIENT LIST"); !strings.Contains(list, "cmd=xread") {
			return fmt.Errorf("no XREAD running: %s", list)
		}
		return nil
	})
	if list := other.do("CLIENT LIST"); strings.Contains(list, "flags=b") {
		t.Fatalf("blocked during its first try: %s", list)
	}
	if got := other.do("CLIENT UNBLOCK " + strconv.FormatInt(clientID(t, c, other), 10)); got != ":0" {
		t.Fatalf("UNBLOCK during the first try: %q, want :0", got)
	}
	g.gate <- struct{}{} // the first try: nothing
	waitBlockedClient(t, other)
	script(t, other, "XADD {w}x 1-1 f v", "1-1")
	g.gate <- struct{}{} // the try the write wakes
	if got := c.read(); got != "[[{w}x [[1-1 [f v]]]]]" {
		t.Fatalf("XREAD: %q", got)
	}
}

// clientID is c's CLIENT ID, read through other's CLIENT LIST (c is busy).
func clientID(t *testing.T, c, other *client) int64 {
	t.Helper()
	local := c.nc.LocalAddr().String()
	for _, line := range strings.Split(other.do("CLIENT LIST"), "\n") {
		if strings.Contains(line, "addr="+local+" ") {
			var id int64
			if _, err := fmt.Sscanf(line, "id=%d", &id); err == nil {
				return id
			}
		}
	}
	t.Fatalf("no client at %s", local)
	return 0
}

// A blocked XREADGROUP ends with Redis's error when its stream goes
// (deleted, flushed, made another type: UNBLOCKED) or its group does
// (NOGROUP), where a blocked XREAD waits on.
func TestBlockedXReadGroupLosesItsStream(t *testing.T) {
	_, c, other := txServer(t)
	for _, lose := range [][]string{
		{"DEL {g}s", ":1"},
		{"SET {g}s v", "+OK"},
		{"FLUSHALL", "+OK"},
		{"XGROUP DESTROY {g}s grp", ":1"},
	} {
		script(t, other, "DEL {g}s", other.do("EXISTS {g}s"), "XADD {g}s 1-1 f v", "1-1", "XGROUP CREATE {g}s grp $", "+OK")
		c.send("XREADGROUP GROUP grp alice BLOCK 0 STREAMS {g}s >")
		waitBlockedClient(t, other)
		script(t, other, lose...)
		want := "-UNBLOCKED the stream key no longer exists"
		if lose[0] == "XGROUP DESTROY {g}s grp" {
			want = "-NOGROUP the consumer group this client was blocked on no longer exists"
		}
		if got := c.read(); got != want {
			t.Fatalf("XREADGROUP blocked, then %s: %q, want %q", lose[0], got, want)
		}
	}
}

// waitBlockedClients waits until n clients are blocked.
func waitBlockedClients(t *testing.T, other *client, n int) {
	t.Helper()
	want := fmt.Sprintf("blocked_clients:%d\r", n)
	testwait.For(t, 5*time.Second, 5*time.Millisecond, want, func() error {
		if info := other.do("INFO clients"); !strings.Contains(info, want) {
			return fmt.Errorf("%s", info)
		}
		return nil
	})
}

// Clients blocked on a key are served in the order they blocked, as in
// Redis: one write's elements go to the longest waiting first, a client
// waiting on several keys takes its place in each key's line, a client
// that leaves the line (timed out, gone) lets the next one in, and pops
// of another kind (a sorted set's, another consumer group's) are in
// lines of their own.
func TestBlockedClientsServedInOrder(t *testing.T) {
	b := newEngineBackend()
	srv, err := Listen(Config{Addr: "127.0.0.1:0"}, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	other := dial(t, srv)
	var cs []*client
	for range 6 {
		cs = append(cs, dial(t, srv))
	}
	// block sends each command on the next client, once the one before
	// it is blocked.
	block := func(cmds ...string) {
		t.Helper()
		for i, cmd := range cmds {
			cs[i].send(cmd)
			waitBlockedClients(t, other, i+1)
		}
	}
	expect := func(want ...string) {
		t.Helper()
		for i, w := range want {
			if w == "" {
				continue
			}
			if got := cs[i].read(); got != w {
				t.Fatalf("client %d: %q, want %q", i, got, w)
			}
		}
	}

	block("BLPOP {o}q 0", "BRPOP {o}q 0", "BLMPOP 0 1 {o}q LEFT COUNT 2", "BLMOVE {o}q {o}d LEFT LEFT 0", "BRPOPLPUSH {o}q {o}d 0", "BLPOP {o}q 0")
	script(t, other, "RPUSH {o}q a b c d e f g", ":7")
	expect("[{o}q a]", "[{o}q g]", "[{o}q [b c]]", "d", "f", "[{o}q e]")

	// Several keys: the first client is first in line for both.
	block("BLPOP {o}x {o}y 0", "BLPOP {o}y 0", "BLPOP {o}x 0")
	script(t, other, "RPUSH {o}y 1", ":1")
	expect("[{o}y 1]")
	script(t, other, "RPUSH {o}x 2", ":1", "RPUSH {o}y 3", ":1")
	if got := cs[1].read(); got != "[{o}y 3]" {
		t.Fatalf("second in line for y: %q", got)
	}
	if got := cs[2].read(); got != "[{o}x 2]" {
		t.Fatalf("second in line for x: %q", got)
	}

	// The first in line times out, the second goes away: the third is
	// served.
	block("BLPOP {o}t 0.2", "BLPOP {o}t 0", "BLPOP {o}t 0")
	expect("*-1")
	cs[1].nc.Close()
	waitBlockedClients(t, other, 1)
	script(t, other, "RPUSH {o}t v", ":1")
	expect("", "", "[{o}t v]")
	cs[1] = dial(t, srv)

	// A sorted set's pops, and two consumer groups, in lines of their own.
	block("BZPOPMIN {o}z 0", "BZPOPMAX {o}z 0", "BZPOPMIN {o}z 0")
	script(t, other, "ZADD {o}z 1 a 2 b 3 c", ":3")
	expect("[{o}z a 1]", "[{o}z c 3]", "[{o}z b 2]")
	script(t, other, "XGROUP CREATE {o}s g1 $ MKSTREAM", "+OK", "XGROUP CREATE {o}s g2 $", "+OK")
	block("XREADGROUP GROUP g1 a BLOCK 0 STREAMS {o}s >", "XREADGROUP GROUP g2 a BLOCK 0 STREAMS {o}s >",
		"XREADGROUP GROUP g1 b BLOCK 0 STREAMS {o}s >", "XREADGROUP GROUP g2 b BLOCK 0 STREAMS {o}s >")
	script(t, other, "XADD {o}s 1-1 f v", "1-1")
	expect("[[{o}s [[1-1 [f v]]]]]", "[[{o}s [[1-1 [f v]]]]]")
	script(t, other, "XADD {o}s 2-1 f v", "2-1")
	expect("", "", "[[{o}s [[2-1 [f v]]]]]", "[[{o}s [[2-1 [f v]]]]]")
}
