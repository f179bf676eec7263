package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestKeyspaceEventsOnEveryNode: with --notify-keyspace-events, a write
// through any node fires its events once on every node, to that node's
// subscribers (every node applies every shard's writes), in the shard's
// order; a key left to expire fires "expired" on every node once the
// shard's leader deletes it (active expiry), with no write to it; CONFIG
// SET changes one node's events only.
func TestKeyspaceEventsOnEveryNode(t *testing.T) {
	n1, n2, n3 := gossipTrio(t, "--notify-keyspace-events", "Eg$hx")
	nodes := []*node{n1, n2, n3}
	for _, n := range nodes {
		eventually(t, 60*time.Second, n.name+" a voter of every shard", func() error { return voters(n, "n1", "n2", "n3") })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var clients []*redis.Client
	var subs []*redis.PubSub
	for _, n := range nodes {
		c := n.redis()
		defer c.Close()
		ps := c.PSubscribe(ctx, "__keyevent@0__:*")
		defer ps.Close()
		if _, err := ps.Receive(ctx); err != nil { // the confirmation
			t.Fatal(err)
		}
		clients, subs = append(clients, c), append(subs, ps)
	}
	// expect reads a node's next events, as "event key".
	expect := func(i int, want ...string) {
		t.Helper()
		for _, w := range want {
			rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
			m, err := subs[i].ReceiveMessage(rctx)
			rcancel()
			if err != nil {
				t.Fatalf("%s's subscriber, waiting for %q: %v", nodes[i].name, w, err)
			}
			if got := strings.TrimPrefix(m.Channel, "__keyevent@0__:") + " " + m.Payload; got != w {
				t.Fatalf("%s's subscriber: %q, want %q", nodes[i].name, got, w)
			}
		}
	}

	// Writes through each node in turn: every node tells its subscriber,
	// once each, in the shard's order.
	for i, c := range clients {
		k := fmt.Sprintf("{ks}%d", i)
		p := c.TxPipeline()
		p.Set(ctx, k, "1", 0)
		p.HSet(ctx, k+"h", "f", "v")
		p.Incr(ctx, k)
		p.Del(ctx, k+"h")
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		for j := range nodes {
			expect(j, "set "+k, "hset "+k+"h", "incrby "+k, "del "+k+"h")
		}
	}

	// A key nobody touches again: deleted at its expiry by the shard's
	// leader, which every node applies.
	setAt := time.Now()
	if err := clients[1].Set(ctx, "{ks}short", "v", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	for j := range nodes {
		expect(j, "set {ks}short", "expire {ks}short", "expired {ks}short")
		if since := time.Since(setAt); since < 300*time.Millisecond {
			t.Fatalf("%s: expired %v after the SET, before its 300 ms", nodes[j].name, since)
		}
	}
	if n, err := clients[0].Exists(ctx, "{ks}short").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS of the expired key: %d, %v", n, err)
	}

	// CONFIG SET on n2 turns n2's events off, and no other node's.
	if err := clients[1].ConfigSet(ctx, "notify-keyspace-events", "").Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := clients[1].ConfigGet(ctx, "notify-keyspace-events").Result(); err != nil || got["notify-keyspace-events"] != "" {
		t.Fatalf("CONFIG GET on n2: %v, %v", got, err)
	}
	if err := clients[0].Set(ctx, "{ks}quiet", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	expect(0, "set {ks}quiet")
	expect(2, "set {ks}quiet")
	// n2 applies the write in its own time: events back on only once it
	// has (every shard at one index on every node).
	eventually(t, 30*time.Second, "n2 to apply the write", func() error { return sameData(nodes...) })
	if err := clients[1].ConfigSet(ctx, "notify-keyspace-events", "E$").Err(); err != nil {
		t.Fatal(err)
	}
	if err := clients[0].Set(ctx, "{ks}loud", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for j := range nodes {
		expect(j, "set {ks}loud") // n2's next event: not {ks}quiet's
	}
	if err := clients[0].ConfigSet(ctx, "notify-keyspace-events", "KEQ").Err(); err == nil ||
		!strings.Contains(err.Error(), "Invalid event class character") {
		t.Fatalf("CONFIG SET of a bad class: %v", err)
	}
}

// TestNoKeyExpiresDuringClientPause: under CLIENT PAUSE WRITE the node's
// shard leaders delete no expired key (Redis's pause.tcl "Test both active
// and passive expires are skipped during client pause"): the keys read as
// gone once due, INFO's expired_keys stays where it was through ten expiry
// ticks, and once the pause is lifted they are deleted.
func TestNoKeyExpiresDuringClientPause(t *testing.T) {
	n := newNode(t, "n1", t.TempDir())
	n.start()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := n.redis()
	defer c.Close()
	expired := func() string {
		t.Helper()
		info, err := c.Info(ctx, "stats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "expired_keys:"); ok {
				return v
			}
		}
		t.Fatalf("no expired_keys in INFO stats:\n%s", info)
		return ""
	}
	before := expired()
	for _, k := range []string{"{a}foo", "{b}bar"} { // two shards
		if err := c.Set(ctx, k, "v", 300*time.Millisecond).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Do(ctx, "CLIENT", "PAUSE", "50000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the keys read as gone", func() error {
		if n, err := c.Exists(ctx, "{a}foo", "{b}bar").Result(); err != nil || n != 0 {
			return fmt.Errorf("EXISTS: %d, %v", n, err)
		}
		return nil
	})
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got := expired(); got != before {
			t.Fatalf("expired_keys went from %s to %s during the pause", before, got)
		}
	}
	if err := c.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "both keys deleted after the pause", func() error {
		var b, a int
		fmt.Sscan(before, &b)
		fmt.Sscan(expired(), &a)
		if a != b+2 {
			return fmt.Errorf("expired_keys %d, want %d", a, b+2)
		}
		return nil
	})
}
