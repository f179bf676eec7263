package integration

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/redis/go-redis/v9"
)

// TestTransactionsAndBlockingThroughTwoNodes: clients of two nodes increment
// counters, one per shard, with WATCH, GET, MULTI, SET, EXEC (go-redis's
// Watch), retrying when EXEC answers nil. Every increment is counted
// once: a transaction whose watched key changed ran nothing. Through the
// node that does not lead a shard, the transaction is forwarded to its
// leader as one command. Then a client blocked in BLPOP on one node is
// woken by a push through the other, on every shard, and one blocked in
// XREAD by an XADD; a consumer group read by a consumer on each node
// delivers every entry once.
func TestTransactionsAndBlockingThroughTwoNodes(t *testing.T) {
	n1 := newNode(t, "n1", t.TempDir())
	n1.start()
	n2 := newNode(t, "n2", t.TempDir(), "--join", n1.gossip, "--gossip-fast")
	n2.start()
	clients := []*redis.Client{n1.redis(), n2.redis()}
	for _, c := range clients {
		defer c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	keys := tagOnEachShard("c") // one counter on each shard
	const workers, each = 3, 12
	var wg sync.WaitGroup
	errs := make(chan error, len(keys)*workers)
	var retried atomic.Int64
	for _, key := range keys {
		for w := range workers {
			c := clients[w%2]
			wg.Go(func() {
				for range each {
					if err := increment(ctx, c, key, &retried); err != nil {
						errs <- fmt.Errorf("%s through %s: %w", key, c.Options().Addr, err)
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
	for _, key := range keys {
		for _, c := range clients {
			if got, err := c.Get(ctx, key).Int(); err != nil || got != workers*each {
				t.Fatalf("%s through %s: %d, %v; want %d", key, c.Options().Addr, got, err, workers*each)
			}
		}
	}
	t.Logf("%d increments, %d transactions retried after a conflict", len(keys)*workers*each, retried.Load())

	// A transaction's commands answer in EXEC's array, errors included.
	c := clients[1]
	cmds, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{t}a", "1", 0)
		p.LPush(ctx, "{t}a", "x") // WRONGTYPE
		p.Incr(ctx, "{t}a")
		return nil
	})
	if len(cmds) != 3 || cmds[0].Err() != nil || cmds[1].Err() == nil || cmds[2].(*redis.IntCmd).Val() != 2 {
		t.Fatalf("transaction: %v, %v", cmds, err)
	}

	// Blocked on n2, woken by a push through n1 (n2's replica applies
	// it), each shard's list in turn; and a timeout.
	for i, key := range keys {
		q := key + ":queue"
		got := make(chan []string, 1)
		go func() {
			v, err := clients[1].BLPop(ctx, 30*time.Second, q).Result()
			if err != nil {
				v = []string{"error", err.Error()}
			}
			got <- v
		}()
		// Until n2 has the client blocked: its reply is not in yet.
		if err := waitBlocked(ctx, clients[1], 1); err != nil {
			t.Fatal(err)
		}
		if err := clients[0].RPush(ctx, q, fmt.Sprintf("job%d", i)).Err(); err != nil {
			t.Fatal(err)
		}
		select {
		case v := <-got:
			if len(v) != 2 || v[0] != q || v[1] != fmt.Sprintf("job%d", i) {
				t.Fatalf("BLPOP %s: %q", q, v)
			}
		case <-ctx.Done():
			t.Fatalf("BLPOP %s: not woken", q)
		}
	}
	if v, err := clients[1].BRPop(ctx, time.Second, keys[0]+":empty").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("BRPOP of an empty list: %q, %v; want a timeout (nil)", v, err)
	}

	// XREAD BLOCK on n2 with "$", woken by an XADD through n1, on every
	// shard.
	for i, key := range keys {
		st := key + ":stream"
		got := make(chan string, 1)
		go func() {
			res, err := clients[1].XRead(ctx, &redis.XReadArgs{Streams: []string{st, "$"}, Block: 30 * time.Second}).Result()
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			got <- fmt.Sprint(res)
		}()
		if err := waitBlocked(ctx, clients[1], 1); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("%d-1", i+1)
		if err := clients[0].XAdd(ctx, &redis.XAddArgs{Stream: st, ID: id, Values: []string{"job", strconv.Itoa(i)}}).Err(); err != nil {
			t.Fatal(err)
		}
		select {
		case v := <-got:
			if want := fmt.Sprintf("[{%s [{%s map[job:%d] 0 0}]}]", st, id, i); v != want {
				t.Fatalf("XREAD %s: %s, want %s", st, v, want)
			}
		case <-ctx.Done():
			t.Fatalf("XREAD %s: not woken", st)
		}
	}

	// A work queue: a consumer group read by a consumer on each node
	// (XREADGROUP BLOCK), entries added through either; every entry is
	// delivered to one consumer once, and acknowledged.
	const jobs = 40
	if err := clients[0].XGroupCreateMkStream(ctx, "{wq}", "workers", "$").Err(); err != nil {
		t.Fatal(err)
	}
	delivered := make(chan string, 2*jobs)
	var consumers sync.WaitGroup
	for i, c := range clients {
		consumers.Go(func() {
			for {
				res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "workers", Consumer: fmt.Sprintf("w%d", i),
					Streams: []string{"{wq}", ">"}, Block: 2 * time.Second}).Result()
				if errors.Is(err, redis.Nil) {
					return // idle for 2 s: the queue is done
				}
				if err != nil {
					delivered <- "error: " + err.Error()
					return
				}
				for _, m := range res[0].Messages {
					if err := c.XAck(ctx, "{wq}", "workers", m.ID).Err(); err != nil {
						delivered <- "error: " + err.Error()
						return
					}
					delivered <- m.Values["job"].(string)
				}
			}
		})
	}
	for j := range jobs {
		if err := clients[j%2].XAdd(ctx, &redis.XAddArgs{Stream: "{wq}", Values: []string{"job", strconv.Itoa(j)}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	consumers.Wait()
	close(delivered)
	seenJobs := map[string]int{}
	for d := range delivered {
		if strings.HasPrefix(d, "error") {
			t.Fatal(d)
		}
		seenJobs[d]++
	}
	for j := range jobs {
		if n := seenJobs[strconv.Itoa(j)]; n != 1 {
			t.Fatalf("job %d delivered %d times (all: %v)", j, n, seenJobs)
		}
	}
	if p, err := clients[1].XPending(ctx, "{wq}", "workers").Result(); err != nil || p.Count != 0 {
		t.Fatalf("pending after every ack: %+v, %v", p, err)
	}

	// ZSCAN pages through a sorted set too big to come whole, through the
	// node that does not hold it, with the node's cursors.
	var members []redis.Z
	for i := range 300 {
		members = append(members, redis.Z{Score: float64(i) + 0.5, Member: fmt.Sprintf("m%03d", i)})
	}
	if err := clients[0].ZAdd(ctx, "{zs}", members...).Err(); err != nil {
		t.Fatal(err)
	}
	scanned := map[string]string{}
	var cursor uint64
	calls := 0
	for ; calls == 0 || cursor != 0; calls++ {
		if calls > 1000 {
			t.Fatal("ZSCAN does not end")
		}
		var page []string
		if page, cursor, err = clients[1].ZScan(ctx, "{zs}", cursor, "", 25).Result(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(page); i += 2 {
			scanned[page[i]] = page[i+1]
		}
	}
	if len(scanned) != 300 || scanned["m007"] != "7.5" || calls < 300/25 {
		t.Fatalf("ZSCAN: %d members in %d calls (m007 scored %q)", len(scanned), calls, scanned["m007"])
	}
}

// waitBlocked waits until the node c talks to has n clients in a
// blocking command (CLIENT LIST's flag b).
func waitBlocked(ctx context.Context, c *redis.Client, n int) error {
	return testwait.Until(5*time.Second, 10*time.Millisecond, func() error {
		list, err := c.ClientList(ctx).Result()
		if err == nil && strings.Count(list, " flags=b ") < n {
			err = fmt.Errorf("%d clients blocked in BLPOP, want %d", strings.Count(list, " flags=b "), n)
		}
		return err
	})
}

// increment adds one to key with WATCH and a transaction, again after a
// conflict (at most 500 times).
func increment(ctx context.Context, c *redis.Client, key string, retried *atomic.Int64) error {
	for try := range 500 {
		err := c.Watch(ctx, func(tx *redis.Tx) error {
			n, err := tx.Get(ctx, key).Int()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, strconv.Itoa(n+1), 0)
				return nil
			})
			return err
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			retried.Add(int64(try))
			return err
		}
	}
	return fmt.Errorf("500 conflicts in a row")
}
