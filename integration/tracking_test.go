package integration

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestClientSideCacheStaysFresh: a RESP3 client tracking keys through n2
// caches what it reads, and drops what invalidations name, while writers
// change the same keys through n1 and n3. Its cache must never keep a
// value the store has replaced: once the writers stop, every value it
// still holds is the key's last (bounded wait: an invalidation not sent,
// or sent before the reply of a read it concerns, leaves a stale value
// for good).
func TestClientSideCacheStaysFresh(t *testing.T) {
	n1, n2, n3 := gossipTrio(t)
	for _, n := range []*node{n1, n2, n3} {
		eventually(t, 60*time.Second, n.name+" a voter of every shard", func() error { return voters(n, "n1", "n2", "n3") })
	}
	tr := dialRESP3(t, n2.client)
	if got := tr.do("CLIENT", "TRACKING", "ON"); got != "OK" {
		t.Fatalf("CLIENT TRACKING ON: %v", got)
	}
	const keys = 16
	key := func(i int) string { return "cache:" + strconv.Itoa(i) }

	var stop atomic.Bool
	var wg sync.WaitGroup
	for w, n := range []*node{n1, n3, n1} {
		c := dialRESP3(t, n.client) // here: t.Fatal only on the test's goroutine
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				if got, err := c.try("SET", key(rand.IntN(keys)), fmt.Sprintf("w%d-%d", w, i)); err != nil || got != "OK" {
					t.Errorf("SET through %s: %v, %v", n.name, got, err)
					return
				}
			}
		})
	}
	hits, reads := 0, 0
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		k := key(rand.IntN(keys))
		if _, ok := tr.cache[k]; ok {
			hits++
			tr.do("PING") // let invalidations in
			continue
		}
		reads++
		if v, ok := tr.do("GET", k).(string); ok {
			tr.cache[k] = v
		}
	}
	stop.Store(true)
	wg.Wait()
	if hits == 0 || tr.invalidated == 0 {
		t.Fatalf("%d reads, %d cache hits, %d invalidations: the test did not exercise the cache", reads, hits, tr.invalidated)
	}
	plain := dialRESP3(t, n1.client)
	last := map[string]string{}
	for i := range keys {
		if v, ok := plain.do("GET", key(i)).(string); ok {
			last[key(i)] = v
		}
	}
	eventually(t, 15*time.Second, "the cache to hold no stale value", func() error {
		tr.do("PING")
		for k, v := range tr.cache {
			if v != last[k] {
				return fmt.Errorf("%s cached as %q, the store has %q", k, v, last[k])
			}
		}
		return nil
	})
	t.Logf("%d reads, %d cache hits, %d invalidations", reads, hits, tr.invalidated)
}

// resp3 is a minimal RESP3 client with a key cache: the pushes it reads
// ("invalidate") drop keys from it.
type resp3 struct {
	t           *testing.T
	nc          net.Conn
	rd          *bufio.Reader
	cache       map[string]string
	invalidated int
}

func dialRESP3(t *testing.T, addr string) *resp3 {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &resp3{t: t, nc: nc, rd: bufio.NewReader(nc), cache: map[string]string{}}
	c.do("HELLO", "3")
	return c
}

// do sends a command and returns its reply (a string, an int64, nil, an
// error text as an error, or a []any), handling the pushes before it.
func (c *resp3) do(args ...string) any {
	c.t.Helper()
	v, err := c.try(args...)
	if err != nil {
		c.t.Fatalf("%v: %v", args, err)
	}
	return v
}

// try is do that returns its error, for another goroutine than the
// test's (which alone may call t.Fatal).
func (c *resp3) try(args ...string) (any, error) {
	c.nc.SetDeadline(time.Now().Add(20 * time.Second))
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"+a+"\r\n"...)
	}
	if _, err := c.nc.Write(b); err != nil {
		return nil, err
	}
	for {
		v, isPush, err := c.read()
		if err != nil {
			return nil, err
		}
		if !isPush {
			return v, nil
		}
		if items, _ := v.([]any); len(items) == 2 && items[0] == "invalidate" {
			c.invalidated++
			keys, _ := items[1].([]any)
			if items[1] == nil {
				clear(c.cache)
			}
			for _, k := range keys {
				delete(c.cache, k.(string))
			}
		}
	}
}

func (c *resp3) read() (v any, isPush bool, err error) {
	line, err := c.rd.ReadString('\n')
	if err != nil {
		return nil, false, err
	}
	if len(line) < 3 {
		return nil, false, fmt.Errorf("short line %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, false, nil
	case '-':
		return fmt.Errorf("%s", body), false, nil
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		return n, false, err
	case '_':
		return nil, false, nil
	case '$', '=':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, false, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.rd, buf); err != nil {
			return nil, false, err
		}
		return string(buf[:n]), false, nil
	case '*', '>', '%', '~':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, false, err
		}
		if kind == '%' {
			n *= 2
		}
		items := make([]any, n)
		for i := range items {
			if items[i], _, err = c.read(); err != nil {
				return nil, false, err
			}
		}
		return items, kind == '>', nil
	}
	return nil, false, fmt.Errorf("unknown reply %q", line)
}
