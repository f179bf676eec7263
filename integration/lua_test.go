package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestLuaScriptsOnEveryReplica: scripts sent through every node of three,
// with EVALSHA (go-redis's Script sends EVAL on NOSCRIPT), run once each,
// on their keys' shard; a script loaded through one node runs through the
// others, and SCRIPT FLUSH through one empties them all; every replica of a
// shard ends with the same data though the scripts write what they drew
// at random (SRANDMEMBER, math.random), the names of their tables, and
// tables encoded (cjson, cmsgpack: a table's keys in one order everywhere):
// each replica runs the script itself, and must draw the same.
func TestLuaScriptsOnEveryReplica(t *testing.T) {
	n1, n2, n3 := gossipTrio(t)
	nodes := []*node{n1, n2, n3}
	for _, n := range nodes {
		eventually(t, 60*time.Second, n.name+" a voter of every shard", func() error { return voters(n, "n1", "n2", "n3") })
	}
	clients := []*redis.Client{n1.redis(), n2.redis(), n3.redis()}
	for _, c := range clients {
		defer c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	tags := tagOnEachShard("t")
	draw := redis.NewScript(`
redis.call('sadd', KEYS[1], unpack(ARGV))
local m = redis.call('srandmember', KEYS[1])
local some = redis.call('srandmember', KEYS[1], -3)
redis.call('rpush', KEYS[2], m, table.concat(some, ','), tostring(math.random()), tostring({}), cjson.encode({m = m, some = some, n = #some}), cmsgpack.pack({m = m, x = 1, y = 2}))
return redis.call('incr', KEYS[3])`)
	const each = 30
	var wg sync.WaitGroup
	errs := make(chan error, len(tags)*len(clients))
	for _, tag := range tags {
		keys := []string{tag + "set", tag + "log", tag + "count"}
		for ci, c := range clients {
			wg.Go(func() {
				for i := range each {
					_, err := draw.Run(ctx, c, keys, "a", "b", "c", strconv.Itoa(ci*each+i)).Int()
					if err != nil {
						errs <- fmt.Errorf("%s through %s: %w", tag, c.Options().Addr, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, tag := range tags {
		for _, c := range clients {
			if n, err := c.Get(ctx, tag+"count").Int(); err != nil || n != each*len(clients) {
				t.Fatalf("%scount through %s: %d, %v; want %d runs", tag, c.Options().Addr, n, err, each*len(clients))
			}
			if n, err := c.LLen(ctx, tag+"log").Result(); err != nil || n != 6*each*int64(len(clients)) {
				t.Fatalf("%slog through %s: %d entries, %v", tag, c.Options().Addr, n, err)
			}
		}
	}

	// A script on a key of another shard than its keys' is refused on any
	// node; a read-only script reads through any node.
	if err := clients[1].Eval(ctx, "return redis.call('get', ARGV[1])", []string{tags[0] + "x"}, tags[1]+"count").Err(); err == nil ||
		!strings.HasPrefix(err.Error(), "ERR Script attempted to access a non local key") {
		t.Fatalf("a key of another shard: %v", err)
	}
	eventually(t, 30*time.Second, "every shard the same on every replica", func() error { return sameData(nodes...) })
	sha, err := clients[0].ScriptLoad(ctx, "return 'loaded through n1'").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clients[1:] {
		if got, err := c.EvalSha(ctx, sha, nil).Text(); err != nil || got != "loaded through n1" {
			t.Fatalf("EVALSHA of n1's script through %s: %q, %v", c.Options().Addr, got, err)
		}
	}
	if err := clients[2].ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if err := c.EvalSha(ctx, sha, nil).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOSCRIPT") {
			t.Fatalf("EVALSHA through %s after SCRIPT FLUSH through n3: %v", c.Options().Addr, err)
		}
	}
	// A library loaded through one node is on every shard of every node.
	lib := "#!lua name=counters\nredis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)"
	if name, err := clients[1].FunctionLoad(ctx, lib).Result(); err != nil || name != "counters" {
		t.Fatalf("FUNCTION LOAD through n2: %q, %v", name, err)
	}
	for i, c := range clients {
		for _, tag := range tags {
			if n, err := c.FCall(ctx, "bump", []string{tag + "bumped"}, 1).Int(); err != nil || n != i+1 {
				t.Fatalf("FCALL bump on %s through %s: %d, %v", tag, c.Options().Addr, n, err)
			}
		}
	}
	eventually(t, 30*time.Second, "every shard, its functions too, the same on every replica", func() error { return sameData(nodes...) })
	for _, c := range clients {
		if n, err := c.EvalRO(ctx, "return tonumber(redis.call('get', KEYS[1])) * 2", []string{tags[2] + "count"}).Int(); err != nil || n != 2*each*len(clients) {
			t.Fatalf("EVAL_RO through %s: %d, %v", c.Options().Addr, n, err)
		}
	}

	// A script's PUBLISH, through any node, on any shard (every replica
	// runs the script), reaches a subscriber once, after the script's
	// writes; then a plain PUBLISH, sent after them all, comes last.
	sub := clients[0].Subscribe(ctx, "news")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	var want []string
	for ci, c := range clients {
		for _, tag := range tags {
			msg := fmt.Sprintf("%s via n%d", tag, ci+1)
			if err := c.Eval(ctx, "redis.call('set', KEYS[1], ARGV[1]) return redis.call('publish', 'news', ARGV[1])", []string{tag + "news"}, msg).Err(); err != nil {
				t.Fatalf("a script's PUBLISH through %s: %v", c.Options().Addr, err)
			}
			want = append(want, msg)
		}
	}
	if err := clients[2].Publish(ctx, "news", "end").Err(); err != nil {
		t.Fatal(err)
	}
	want = append(want, "end")
	for _, w := range want {
		m, err := sub.ReceiveMessage(ctx)
		if err != nil || m.Payload != w {
			t.Fatalf("message: %v, %v; want %q (each script's message once, in order)", m, err, w)
		}
	}
}
