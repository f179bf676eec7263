package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// replicaBackend is engineBackend with WAIT's side, as a node's: each
// write is committed at its shard's next log index, and each shard has
// replicas whose match indexes the test sets; ReplicaAcks counts those at
// or past the index (index 0: every replica, all reached), waiting up to
// its wait for want of them as a shard's leader does.
type replicaBackend struct {
	*engineBackend
	mu      sync.Mutex
	last    []uint64   // each shard's last log index
	match   [][]uint64 // each shard's replicas' match indexes
	failing map[int]bool
	changed chan struct{} // closed and made again at every change
	asked   []shardIndex  // the ReplicaAcks asked, in order
	asking  atomic.Int32  // ReplicaAcks under way
}

func newReplicaBackend(replicas int) *replicaBackend {
	b := &replicaBackend{engineBackend: newEngineBackend(), failing: map[int]bool{}, changed: make(chan struct{})}
	b.last = make([]uint64, b.Shards())
	for range b.Shards() {
		b.match = append(b.match, make([]uint64, replicas))
	}
	return b
}

func (b *replicaBackend) ProposeIndexed(shard int, cmd *messages.Command, to *LogIndexes) Pending {
	p := b.Propose(shard, cmd)
	b.mu.Lock()
	b.last[shard]++
	to.Note(shard, b.last[shard])
	b.mu.Unlock()
	return p
}

func (b *replicaBackend) ReplicaAcks(ctx context.Context, shard int, index uint64, want int, wait time.Duration) (int, error) {
	b.asking.Add(1)
	defer b.asking.Add(-1)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	b.mu.Lock()
	b.asked = append(b.asked, shardIndex{shard, index})
	b.mu.Unlock()
	for {
		b.mu.Lock()
		if b.failing[shard] {
			b.mu.Unlock()
			return 0, errors.New("no leader")
		}
		n := 0
		for _, m := range b.match[shard] {
			if index == 0 || m >= index {
				n++
			}
		}
		changed := b.changed
		b.mu.Unlock()
		if n >= want {
			return n, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return n, nil
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
}

// store sets replica r of shard as storing its log up to index.
func (b *replicaBackend) store(shard, r int, index uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.match[shard][r] = index
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *replicaBackend) setFailing(shard int, failing bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failing[shard] = failing
	close(b.changed)
	b.changed = make(chan struct{})
}

// takeAsked returns the distinct (shard, index) asked since the last call,
// sorted.
func (b *replicaBackend) takeAsked() []shardIndex {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []shardIndex
	for _, a := range b.asked {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	b.asked = nil
	slices.SortFunc(out, func(x, y shardIndex) int { return x.shard - y.shard })
	return out
}

func replicaServer(t *testing.T, replicas int) (*replicaBackend, *client, *client) {
	t.Helper()
	b := newReplicaBackend(replicas)
	srv, err := Listen(Config{Addr: "127.0.0.1:0"}, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return b, dial(t, srv), dial(t, srv)
}

// tagsOnShards returns a hash tag on each of two shards of four.
func tagsOnShards() (a, b string, shardA, shardB int) {
	for i := 0; ; i++ {
		tag := fmt.Sprintf("{t%d}", i)
		sh := kv.ShardOf(kv.Slot([]byte(tag)), 4)
		switch {
		case a == "":
			a, shardA = tag, sh
		case sh != shardA:
			return a, tag, shardA, sh
		}
	}
}

// timed runs WAIT on c and checks its answer and how long it took.
func timed(t *testing.T, c *client, cmd, want string, atLeast, under time.Duration) {
	t.Helper()
	start := time.Now()
	got := c.do(cmd)
	took := time.Since(start)
	if got != want || took < atLeast || took >= under {
		t.Fatalf("%s: %q after %v; want %q after %v to %v", cmd, got, took, want, atLeast, under)
	}
}

// WAIT's arguments, as Redis 7.0 parses them (string2ll: no '+', no
// leading zero, no space).
func TestParseWait(t *testing.T) {
	notInt, timeoutNotInt := "ERR value is not an integer or out of range", "ERR timeout is not an integer or out of range"
	for _, tc := range []struct {
		args    string
		want    int64
		timeout time.Duration
		err     string
	}{
		{"WAIT 0 0", 0, 0, ""},
		{"WAIT 2 1500", 2, 1500 * time.Millisecond, ""},
		{"WAIT -1 10", -1, 10 * time.Millisecond, ""},
		{"WAIT 1 9223372036854775807", 1, 0, ""}, // centuries: none
		{"WAIT x 0", 0, 0, notInt},
		{"WAIT +1 0", 0, 0, notInt},
		{"WAIT 01 0", 0, 0, notInt},
		{"WAIT 99999999999999999999 0", 0, 0, notInt},
		{"WAIT x -1", 0, 0, notInt},
		{"WAIT 0 x", 0, 0, timeoutNotInt},
		{"WAIT 0 1.5", 0, 0, timeoutNotInt},
		{"WAIT 0 -0", 0, 0, timeoutNotInt},
		{"WAIT 0 99999999999999999999", 0, 0, timeoutNotInt},
		{"WAIT 0 -1", 0, 0, "ERR timeout is negative"},
		{"WAIT 0", 0, 0, "ERR wrong number of arguments for 'wait' command"},
		{"WAIT 0 0 0", 0, 0, "ERR wrong number of arguments for 'wait' command"},
	} {
		var args [][]byte
		for _, f := range strings.Fields(tc.args) {
			args = append(args, []byte(f))
		}
		want, timeout, r := parseWait(args)
		if r.GetError() != tc.err || (tc.err == "" && (want != tc.want || timeout != tc.timeout)) {
			t.Errorf("%s: %d, %v, %q; want %d, %v, %q", tc.args, want, timeout, r.GetError(), tc.want, tc.timeout, tc.err)
		}
	}
}

// The count is the least over the shards asked; a shard that fails counts
// 0; a backend without replicas counts 0.
func TestCountReplicas(t *testing.T) {
	b := newReplicaBackend(3)
	b.store(0, 0, 5)
	b.store(0, 1, 5)
	b.store(1, 0, 7)
	b.store(2, 2, 9)
	ctx := context.Background()
	for _, tc := range []struct {
		targets []shardIndex
		want    int64
	}{
		{[]shardIndex{{0, 5}}, 2},
		{[]shardIndex{{0, 6}}, 0},
		{[]shardIndex{{0, 4}, {1, 7}}, 1},
		{[]shardIndex{{0, 5}, {1, 7}, {2, 9}}, 1},
		{[]shardIndex{{0, 5}, {3, 1}}, 0},
		{[]shardIndex{{0, 0}, {1, 0}}, 3}, // index 0: the replicas reached
	} {
		if got := countReplicas(ctx, b, tc.targets, 0, 0); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.targets, got, tc.want)
		}
	}
	b.setFailing(1, true)
	if got := countReplicas(ctx, b, []shardIndex{{0, 5}, {2, 9}}, 0, 0); got != 1 {
		t.Errorf("without the failing shard: %d, want 1", got)
	}
	if got := countReplicas(ctx, b, []shardIndex{{0, 5}, {1, 7}}, 0, 0); got != 0 {
		t.Errorf("with the failing shard: %d, want 0", got)
	}
	// Asked with a wait, a shard that fails (a leader stepping down) is
	// asked again within it.
	time.AfterFunc(100*time.Millisecond, func() { b.setFailing(1, false) })
	start := time.Now()
	if got := countReplicas(ctx, b, []shardIndex{{0, 5}, {1, 7}}, 1, 5*time.Second); got != 1 {
		t.Errorf("with the shard failing for 100 ms of a 5 s wait: %d, want 1", got)
	}
	if took := time.Since(start); took < 100*time.Millisecond || took > 4*time.Second {
		t.Errorf("with the shard failing for 100 ms: answered after %v", took)
	}
	if got := countReplicas(ctx, nil, []shardIndex{{0, 5}}, 0, 0); got != 0 {
		t.Errorf("no ReplicaBackend: %d, want 0", got)
	}
}

// WAIT waits for the replicas of the connection's last write on each shard
// it wrote to, and answers the least count; with no write yet, every shard
// is asked for the replicas its leader reaches.
func TestWaitCountsTheShardsWritten(t *testing.T) {
	b, c, other := replicaServer(t, 2)
	tagA, tagB, shA, shB := tagsOnShards()
	script(t, c, "WAIT 0 0", ":2", "WAIT 2 0", ":2")
	if got := b.takeAsked(); len(got) != 4 || got[0] != (shardIndex{0, 0}) || got[3] != (shardIndex{3, 0}) {
		t.Fatalf("asked %v; want every shard at index 0", got)
	}

	// A write at shard A's index 1: no replica has it.
	script(t, c, "SET "+tagA+"x 1", "+OK", "WAIT 0 0", ":0")
	if got := b.takeAsked(); !slices.Equal(got, []shardIndex{{shA, 1}}) {
		t.Fatalf("asked %v; want shard %d at index 1 only", got, shA)
	}
	// Blocked until one replica stores it.
	c.send("WAIT 1 0")
	waitBlockedClient(t, other)
	b.store(shA, 0, 1)
	if got := c.read(); got != ":1" {
		t.Fatalf("WAIT 1 0 after a replica stored the write: %q, want :1", got)
	}
	// More than there are: the count after the timeout.
	timed(t, c, "WAIT 2 150", ":1", 150*time.Millisecond, 2*time.Second)

	// A second shard written: the least of the two.
	b.store(shA, 1, 1)
	script(t, c, "WAIT 2 0", ":2", "SET "+tagB+"y 1", "+OK", "WAIT 0 0", ":0")
	if got := b.takeAsked(); len(got) != 2 || !slices.Contains(got, shardIndex{shA, 1}) || !slices.Contains(got, shardIndex{shB, 1}) {
		t.Fatalf("asked %v; want shards %d and %d at index 1", got, shA, shB)
	}
	c.send("WAIT 2 5000")
	waitBlockedClient(t, other)
	b.store(shB, 1, 1)
	b.store(shB, 0, 3) // past it: holds it too
	if got := c.read(); got != ":2" {
		t.Fatalf("WAIT 2 5000 once both shards' replicas stored the writes: %q, want :2", got)
	}
	// A later write on A: the replicas must store it too.
	script(t, c, "INCR "+tagA+"n", ":1", "WAIT 0 0", ":0")
	b.store(shA, 0, 2)
	script(t, c, "WAIT 0 0", ":1")

	// Another connection's writes are not this one's: it wrote nothing.
	script(t, other, "WAIT 2 0", ":2")

	// A shard without a leader counts 0, and is asked again until it
	// answers or the timeout passes.
	b.setFailing(shB, true)
	timed(t, c, "WAIT 1 200", ":0", 200*time.Millisecond, 2*time.Second)
	c.send("WAIT 1 5000")
	waitBlockedClient(t, other)
	b.setFailing(shB, false)
	if got := c.read(); got != ":1" {
		t.Fatalf("WAIT 1 5000 once the shard answers again: %q, want :1", got)
	}
}

// A blocked WAIT ends with CLIENT UNBLOCK (TIMEOUT: the count; ERROR: the
// UNBLOCKED error) and with its client's going, which ends its asks.
func TestWaitUnblocked(t *testing.T) {
	b, c, other := replicaServer(t, 1)
	tagA, _, _, _ := tagsOnShards()
	id := strings.TrimPrefix(c.do("CLIENT ID"), ":")
	script(t, c, "SET "+tagA+"x 1", "+OK")
	c.send("WAIT 1 0")
	waitBlockedClient(t, other)
	script(t, other, "CLIENT UNBLOCK "+id, ":1")
	if got := c.read(); got != ":0" {
		t.Fatalf("WAIT unblocked with TIMEOUT: %q, want :0", got)
	}
	c.send("WAIT 1 0")
	waitBlockedClient(t, other)
	script(t, other, "CLIENT UNBLOCK "+id+" ERROR", ":1")
	if got := c.read(); got != "-UNBLOCKED client unblocked via CLIENT UNBLOCK" {
		t.Fatalf("WAIT unblocked with ERROR: %q", got)
	}
	// The connection is served again.
	script(t, c, "PING", "+PONG")

	c.send("WAIT 1 0")
	waitBlockedClient(t, other)
	c.nc.Close()
	testwait.For(t, 10*time.Second, 10*time.Millisecond, "the waiting client gone and its asks ended", func() error {
		if n := strings.Count(other.do("CLIENT LIST"), "\n"); n != 1 {
			return fmt.Errorf("%d clients", n)
		}
		if n := b.asking.Load(); n != 0 {
			return fmt.Errorf("%d asks under way", n)
		}
		return nil
	})
}

// In MULTI, WAIT does not block: EXEC's array has the count then, the
// transaction's writes included; its argument errors are answered there.
func TestWaitInMulti(t *testing.T) {
	b, c, _ := replicaServer(t, 2)
	tagA, _, shA, _ := tagsOnShards()
	b.store(shA, 0, 1)
	start := time.Now()
	script(t, c,
		"MULTI", "+OK",
		"SET "+tagA+"x 1", "+QUEUED",
		"WAIT 2 0", "+QUEUED",
		"WAIT x 0", "+QUEUED",
		"EXEC", "[+OK :1 -ERR value is not an integer or out of range]",
	)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the transaction took %v: WAIT blocked in it", took)
	}
	script(t, c, "MULTI", "+OK", "WAIT 0", "-ERR wrong number of arguments for 'wait' command", "EXEC",
		"-EXECABORT Transaction discarded because of previous errors.")
}

// A backend that cannot count replicas has none: WAIT answers 0, after
// its timeout when it asks for more, as a Redis without replicas.
func TestWaitWithoutReplicas(t *testing.T) {
	_, c, other := txServer(t)
	script(t, c, "WAIT 0 0", ":0", "SET k v", "+OK", "WAIT 0 0", ":0", "WAIT -1 0", ":0")
	timed(t, c, "WAIT 1 100", ":0", 100*time.Millisecond, 2*time.Second)
	id := strings.TrimPrefix(c.do("CLIENT ID"), ":")
	c.send("WAIT 1 0")
	waitBlockedClient(t, other)
	script(t, other, "CLIENT UNBLOCK "+id, ":1")
	if got := c.read(); got != ":0" {
		t.Fatalf("WAIT unblocked: %q, want :0", got)
	}
}
