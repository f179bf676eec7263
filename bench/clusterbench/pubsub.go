package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coppice-kv/coppice/bench/internal/benchkit"
	"github.com/redis/go-redis/v9"
)

// pubsubPart measures pub/sub fan-out: a 3-node coppice cluster against
// one redis-server (no persistence; pub/sub keeps nothing), in one run.
// -subs subscribers of one channel (on coppice spread over the three
// nodes) and 10 publishers (on coppice spread over the nodes too, so most
// messages cross nodes), each publishing -n/10 messages of 64 bytes one at
// a time (the next once PUBLISH answered). Each row reports the messages
// published per second (over the publishers' wall time), the deliveries
// per second (messages times subscribers, until the last subscriber has
// all of them), and the p50 and p99 time from a message's sending to its
// receipt (one machine, one clock: the send time is in the payload).
// Every delivery must arrive: a missing one fails the run.
func pubsubPart(c config, bin, work string) error {
	nodes, err := startCluster(bin, work, 3, c.shards)
	if err != nil {
		return err
	}
	redisAddr := freePort()
	_, port, _ := strings.Cut(redisAddr, ":")
	rp, err := start("redis", exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", work), filepath.Join(work, "redis.log"))
	if err != nil {
		return err
	}
	if err := waitFor(10*time.Second, 20*time.Millisecond, "redis-server", rp, func() error {
		_, err := command(redisAddr, "PING")
		return err
	}); err != nil {
		return err
	}
	coppice := []string{nodes[0].client, nodes[1].client, nodes[2].client}
	redisAddrs := []string{redisAddr}
	const publishers = 10
	fmt.Printf("\n## pub/sub: %d subscribers, %d publishers, %d messages of 64 bytes; coppice's clients spread over 3 nodes, redis-server alone\n\n",
		c.subs, publishers, c.n)
	fmt.Println("| round | system | published/s | deliveries/s | p50 ms | p99 ms |")
	fmt.Println("|---|---|---|---|---|---|")
	var pubRatio, delRatio, p50Ratio []float64
	for round := 1; round <= c.rounds; round++ {
		var res [2]pubsubResult
		order := []int{0, 1}
		if round%2 == 0 {
			order = []int{1, 0}
		}
		for _, sys := range order {
			addrs, name := coppice, "coppice"
			if sys == 1 {
				addrs, name = redisAddrs, "redis"
			}
			r, err := runPubSub(addrs, c.subs, publishers, c.n, fmt.Sprintf("bench-%d", round))
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			res[sys] = r
			fmt.Printf("| %d | %s | %.0f | %.0f | %.2f | %.2f |\n", round, name, r.published, r.deliveries, r.p50, r.p99)
		}
		pubRatio = append(pubRatio, res[0].published/res[1].published)
		delRatio = append(delRatio, res[0].deliveries/res[1].deliveries)
		p50Ratio = append(p50Ratio, res[0].p50/res[1].p50)
	}
	fmt.Println()
	for _, f := range []struct {
		name string
		xs   []float64
	}{{"published/s", pubRatio}, {"deliveries/s", delRatio}, {"p50 latency", p50Ratio}} {
		med, lo, hi := benchkit.Spread(f.xs)
		fmt.Printf("- coppice / redis, %s: %.2fx (%.2f-%.2f over %d rounds)\n", f.name, med, lo, hi, len(f.xs))
	}
	return nil
}

type pubsubResult struct {
	published, deliveries float64 // per second
	p50, p99              float64 // ms
}

// runPubSub subscribes subs clients to channel (spread over addrs),
// publishes n messages from publishers clients (spread too), and waits
// for every delivery.
func runPubSub(addrs []string, subs, publishers, n int, channel string) (pubsubResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	client := func(i int) *redis.Client {
		return redis.NewClient(&redis.Options{Addr: addrs[i%len(addrs)], PoolSize: 1, Protocol: 2,
			ReadTimeout: 30 * time.Second, MaxRetries: -1})
	}
	per := n / publishers
	want := per * publishers
	lat := make([][]time.Duration, subs)
	var subWG sync.WaitGroup
	subErrs := make([]error, subs)
	var lastDelivery time.Time
	var lastMu sync.Mutex
	for i := range subs {
		c := client(i)
		defer c.Close()
		ps := c.Subscribe(ctx, channel)
		defer ps.Close()
		if _, err := ps.Receive(ctx); err != nil {
			return pubsubResult{}, fmt.Errorf("subscriber %d: %w", i, err)
		}
		lat[i] = make([]time.Duration, 0, want)
		subWG.Add(1)
		go func() {
			defer subWG.Done()
			for len(lat[i]) < want {
				m, err := ps.ReceiveMessage(ctx)
				if err != nil {
					subErrs[i] = fmt.Errorf("subscriber %d after %d of %d messages: %w", i, len(lat[i]), want, err)
					return
				}
				sent, err := strconv.ParseInt(strings.TrimRight(m.Payload, "x"), 10, 64)
				if err != nil {
					subErrs[i] = fmt.Errorf("subscriber %d: payload %q", i, m.Payload)
					return
				}
				lat[i] = append(lat[i], time.Since(time.Unix(0, sent)))
			}
			lastMu.Lock()
			lastDelivery = time.Now()
			lastMu.Unlock()
		}()
	}
	var pubWG sync.WaitGroup
	pubErrs := make([]error, publishers)
	start := time.Now()
	for i := range publishers {
		c := client(i)
		defer c.Close()
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			for j := range per {
				payload := strconv.FormatInt(time.Now().UnixNano(), 10)
				payload += strings.Repeat("x", 64-len(payload))
				got, err := c.Publish(ctx, channel, payload).Result()
				if err == nil && got != int64(subs) {
					err = fmt.Errorf("PUBLISH reached %d subscribers, want %d", got, subs)
				}
				if err != nil {
					pubErrs[i] = fmt.Errorf("publisher %d, message %d: %w", i, j, err)
					return
				}
			}
		}()
	}
	pubWG.Wait()
	pubWall := time.Since(start)
	if err := errors.Join(pubErrs...); err != nil {
		cancel()
		return pubsubResult{}, err
	}
	subWG.Wait()
	if err := errors.Join(subErrs...); err != nil {
		return pubsubResult{}, err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	ms := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))]) / 1e6 }
	return pubsubResult{
		published:  float64(want) / pubWall.Seconds(),
		deliveries: float64(want*subs) / lastDelivery.Sub(start).Seconds(),
		p50:        ms(0.5), p99: ms(0.99),
	}, nil
}
