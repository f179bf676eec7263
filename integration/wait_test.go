package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/redis/go-redis/v9"
)

// TestWaitCountsReplicas: on three nodes, WAIT counts the other members
// of each written shard's group that store the connection's writes. After
// writes to every shard through any node (forwarded to the leader or
// not), WAIT 2 answers 2 at once, and a connection that wrote nothing
// counts the members the leaders reach, 2. With a follower killed, a
// write's WAIT 2 1000 answers 1 once its timeout passes, and WAIT 1
// answers 1 at once.
func TestWaitCountsReplicas(t *testing.T) {
	n1, n2, n3 := gossipTrio(t)
	nodes := []*node{n1, n2, n3}
	for _, n := range nodes {
		eventually(t, 60*time.Second, n.name+" a voter of every shard", func() error { return voters(n, "n1", "n2", "n3") })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wait := func(c *redis.Conn, want, ms int) (int64, time.Duration) {
		t.Helper()
		start := time.Now()
		n, err := c.Do(ctx, "WAIT", want, ms).Int64()
		if err != nil {
			t.Fatalf("WAIT %d %d: %v", want, ms, err)
		}
		return n, time.Since(start)
	}

	for _, n := range nodes {
		c := n.redis()
		defer c.Close()
		conn := c.Conn() // one connection: WAIT is about its writes
		defer conn.Close()
		if got, took := wait(conn, 2, 5000); got != 2 || took > 4*time.Second {
			t.Fatalf("%s: WAIT 2 5000 with no write: %d after %v; want 2 (the members the leaders reach) at once", n.name, got, took)
		}
		for _, tag := range tagOnEachShard("w" + n.name) {
			if err := conn.Set(ctx, tag+"k", n.name, 0).Err(); err != nil {
				t.Fatalf("%s: SET %sk: %v", n.name, tag, err)
			}
		}
		if got, took := wait(conn, 2, 5000); got != 2 || took > 4*time.Second {
			t.Fatalf("%s: WAIT 2 5000 after a write to every shard: %d after %v; want 2 at once", n.name, got, took)
		}
	}

	// A shard n3 does not lead, and a node that does not lead it either:
	// its writes there are forwarded, and its WAITs ask the leader.
	st, err := n1.status()
	if err != nil {
		t.Fatal(err)
	}
	shard, leader := -1, ""
	for i, l := range st.Leaders() {
		if l != "" && l != "n3" {
			shard, leader = i, l
			break
		}
	}
	if shard < 0 {
		t.Fatalf("no shard led by n1 or n2: leaders %v", st.Leaders())
	}
	via := n1
	if leader == "n1" {
		via = n2
	}
	var tag string
	for _, tg := range tagOnEachShard("f") {
		if kv.ShardOf(kv.Slot([]byte(tg)), 4) == shard {
			tag = tg
		}
	}
	c := via.redis()
	defer c.Close()
	conn := c.Conn()
	defer conn.Close()

	n3.kill9()
	// Right after the kill the leader still counts n3 as reached (it
	// answered within 2 s): only the write's own index tells that n3
	// does not store it.
	if err := conn.Set(ctx, tag+"after", "1", 0).Err(); err != nil {
		t.Fatalf("SET through %s on shard %d, led by %s: %v", via.name, shard, leader, err)
	}
	if got, took := wait(conn, 2, 1000); got != 1 || took < 950*time.Millisecond || took > 3*time.Second {
		t.Fatalf("WAIT 2 1000 through %s after a write with n3 killed: %d after %v; want 1 after about 1s", via.name, got, took)
	}
	if got, took := wait(conn, 1, 5000); got != 1 || took > 3*time.Second {
		t.Fatalf("WAIT 1 5000 with n3 killed: %d after %v; want 1 at once", got, took)
	}

	// Through n1, writes to every shard (a shard n3 led elects another
	// leader first: the write is tried again until it is taken).
	c1 := n1.redis()
	defer c1.Close()
	conn1 := c1.Conn()
	defer conn1.Close()
	for _, tg := range tagOnEachShard("k") {
		eventually(t, 30*time.Second, "SET "+tg+" with n3 killed", func() error {
			if err := conn1.Set(ctx, tg+"x", "1", 0).Err(); err != nil {
				return fmt.Errorf("SET: %w", err)
			}
			return nil
		})
	}
	if got, took := wait(conn1, 2, 1000); got != 1 || took < 950*time.Millisecond || took > 3*time.Second {
		st, err := n1.status()
		var leaders []string
		if err == nil {
			leaders = st.Leaders()
		}
		t.Fatalf("WAIT 2 1000 through n1 after writes to every shard with n3 killed: %d after %v; want 1 after about 1s (leaders now %v, %v)", got, took, leaders, err)
	}
}
