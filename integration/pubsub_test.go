package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestPubSubAcrossNodes: a message published on any node reaches the
// subscribers of every node, one node's messages in the order published
// there, and PUBLISH and PUBSUB count the clients of all of them. A node
// killed stops counting (once gossip says it failed) and PUBLISH goes on
// answering.
func TestPubSubAcrossNodes(t *testing.T) {
	n1, n2, n3 := gossipTrio(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c1, c2, c3 := n1.redis(), n2.redis(), n3.redis()
	for _, c := range []*redis.Client{c1, c2, c3} {
		defer c.Close()
	}
	news := c2.Subscribe(ctx, "news")
	defer news.Close()
	pattern := c3.PSubscribe(ctx, "n*")
	defer pattern.Close()
	shard := c1.SSubscribe(ctx, "{s}orders")
	defer shard.Close()
	for _, ps := range []*redis.PubSub{news, pattern, shard} {
		if _, err := ps.Receive(ctx); err != nil { // the confirmation
			t.Fatal(err)
		}
	}
	// Until every node knows the others (gossip), a PUBLISH reaches
	// fewer; those messages are read and dropped below.
	eventually(t, 30*time.Second, "PUBLISH on n1 to reach n2's and n3's subscribers", func() error {
		if n, err := c1.Publish(ctx, "news", "hello").Result(); err != nil || n != 2 {
			return fmt.Errorf("PUBLISH answered %d, %v", n, err)
		}
		return nil
	})
	// PUBSUB counts every node's subscribers, as PUBLISH does.
	if got, err := c1.PubSubNumSub(ctx, "news", "other").Result(); err != nil || got["news"] != 1 || got["other"] != 0 {
		t.Fatalf("PUBSUB NUMSUB through n1: %v, %v; want news 1 (n2's), other 0", got, err)
	}
	if got, err := c1.PubSubNumPat(ctx).Result(); err != nil || got != 1 {
		t.Fatalf("PUBSUB NUMPAT through n1: %d, %v; want 1 (n3's)", got, err)
	}
	if got, err := c3.PubSubChannels(ctx, "n*").Result(); err != nil || fmt.Sprint(got) != "[news]" {
		t.Fatalf("PUBSUB CHANNELS n* through n3: %v, %v", got, err)
	}
	if got, err := c2.PubSubShardChannels(ctx, "*").Result(); err != nil || fmt.Sprint(got) != "[{s}orders]" {
		t.Fatalf("PUBSUB SHARDCHANNELS through n2: %v, %v", got, err)
	}
	if got, err := c3.PubSubShardNumSub(ctx, "{s}orders").Result(); err != nil || got["{s}orders"] != 1 {
		t.Fatalf("PUBSUB SHARDNUMSUB through n3: %v, %v", got, err)
	}
	const count = 500
	p := c1.Pipeline()
	for i := range count {
		p.Publish(ctx, "news", fmt.Sprint(i))
	}
	cmds, err := p.Exec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, cmd := range cmds {
		if n, err := cmd.(*redis.IntCmd).Result(); err != nil || n != 2 {
			t.Fatalf("PUBLISH %d answered %d, %v", i, n, err)
		}
	}
	for _, ps := range []*redis.PubSub{news, pattern} {
		next := 0
		for next < count {
			m, err := ps.ReceiveMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.Payload == "hello" && next == 0 {
				continue // the wait's
			}
			if m.Channel != "news" || m.Payload != fmt.Sprint(next) {
				t.Fatalf("message %d: %+v", next, m)
			}
			next++
		}
	}
	if n, err := c2.SPublish(ctx, "{s}orders", "o1").Result(); err != nil || n != 1 {
		t.Fatalf("SPUBLISH on n2: %d, %v; want 1 (n1's subscriber)", n, err)
	}
	if m, err := shard.ReceiveMessage(ctx); err != nil || m.Channel != "{s}orders" || m.Payload != "o1" {
		t.Fatalf("shard channel's subscriber on n1: %+v, %v", m, err)
	}

	n3.kill9()
	eventually(t, 60*time.Second, "PUBLISH to stop counting the killed n3", func() error {
		if n, err := c1.Publish(ctx, "news", "after").Result(); err != nil || n != 1 {
			return fmt.Errorf("PUBLISH answered %d, %v", n, err)
		}
		return nil
	})
	if got, err := c1.PubSubNumPat(ctx).Result(); err != nil || got != 0 {
		t.Fatalf("PUBSUB NUMPAT with n3 (the pattern's node) down: %d, %v", got, err)
	}
	start := time.Now()
	if n, err := c2.Publish(ctx, "news", "quick").Result(); err != nil || n != 1 {
		t.Fatalf("PUBLISH on n2 with n3 down: %d, %v", n, err)
	}
	t.Logf("a PUBLISH with a node down took %v", time.Since(start))
}
