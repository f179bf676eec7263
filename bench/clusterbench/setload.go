package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// setLoad is redis-benchmark's SET -c clients -P 1 -d 64 -r 100000, in
// Go: each client has its own connection and sends one SET at a time. It
// exists because redis-benchmark 7 exits on the first error reply, and a
// join under load can cost a shard an election, which clients see as a
// retryable TRYAGAIN, or as AMBIGUOUS for a SET caught in it: setLoad
// counts them, waits 10ms and sends the same SET again (it is idempotent).
type setLoad struct {
	ok, tryagain, ambiguous, other, connErr atomic.Int64
	next                                    atomic.Int64 // the last key number taken, with a total
	firstErr                                atomic.Value // string
	stop                                    atomic.Bool
	wg                                      sync.WaitGroup
}

// With total > 0, the clients write the keys load:1..load:total once each
// (a key that got an error is written again) and stop; otherwise random
// keys among 100000, until finish. Client i uses addrs[i%len(addrs)].
// Values are valueSize bytes of "x" or, with random, random bytes of the
// client's own (what a store compresses no more than a file copy does).
func startSetLoad(addrs []string, clients, valueSize int, random bool, total int64) *setLoad {
	l := &setLoad{}
	for i := 0; i < clients; i++ {
		addr := addrs[i%len(addrs)]
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			value := strings.Repeat("x", valueSize)
			if random {
				b := make([]byte, valueSize)
				for j := range b {
					b[j] = byte(rng.Uint32())
				}
				value = string(b)
			}
			var nc net.Conn
			var r *bufio.Reader
			key := ""
			for !l.stop.Load() {
				if nc == nil {
					var err error
					if nc, err = net.DialTimeout("tcp", addr, time.Second); err != nil {
						l.connErr.Add(1)
						nc = nil
						time.Sleep(100 * time.Millisecond)
						continue
					}
					r = bufio.NewReader(nc)
				}
				if key == "" {
					if total == 0 {
						key = fmt.Sprintf("key:%012d", rng.IntN(100000))
					} else if k := l.next.Add(1); k <= total {
						key = fmt.Sprintf("load:%d", k)
					} else {
						break
					}
				}
				req := fmt.Sprintf("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(key), key, len(value), value)
				nc.SetDeadline(time.Now().Add(30 * time.Second))
				line, err := "", error(nil)
				if _, err = nc.Write([]byte(req)); err == nil {
					line, err = r.ReadString('\n')
				}
				switch {
				case err != nil:
					l.connErr.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error())
					nc.Close()
					nc = nil
				case strings.HasPrefix(line, "+OK"):
					l.ok.Add(1)
					key = ""
				case strings.HasPrefix(line, "-TRYAGAIN"):
					l.tryagain.Add(1)
					time.Sleep(10 * time.Millisecond)
				case strings.HasPrefix(line, "-AMBIGUOUS"):
					l.ambiguous.Add(1)
					time.Sleep(10 * time.Millisecond)
				default:
					l.other.Add(1)
					l.firstErr.CompareAndSwap(nil, strings.TrimSpace(line))
				}
			}
			if nc != nil {
				nc.Close()
			}
		}()
	}
	return l
}

// finish stops the clients and waits for them (bounded by their 30s
// deadlines).
func (l *setLoad) finish() {
	l.stop.Store(true)
	l.wg.Wait()
}

func (l *setLoad) errors() string {
	s := fmt.Sprintf("TRYAGAIN %d, AMBIGUOUS %d, other error replies %d, connection errors %d",
		l.tryagain.Load(), l.ambiguous.Load(), l.other.Load(), l.connErr.Load())
	if e, ok := l.firstErr.Load().(string); ok {
		s += ", first: " + e
	}
	return s
}

// sampler records l.ok once a second until stopped.
type sampler struct {
	per  []int64
	stop chan struct{}
	done chan struct{}
}

func sample(l *setLoad) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := l.ok.Load()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				now := l.ok.Load()
				s.per = append(s.per, now-last)
				last = now
			}
		}
	}()
	return s
}

func (s *sampler) finish() []int64 {
	close(s.stop)
	<-s.done
	return s.per
}
