package integration

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAcknowledgedWritesSurviveKill9 writes from several clients, kills the
// node with SIGKILL in the middle, restarts it on the same data dir, and
// checks that every write the node acknowledged is there.
func TestAcknowledgedWritesSurviveKill9(t *testing.T) {
	dir := t.TempDir()
	n := newNode(t, "n1", dir)
	n.start()

	const writers = 8
	var (
		mu    sync.Mutex
		acked = map[string]string{}
		count atomic.Int64
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := n.redis()
			defer c.Close()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k, v := fmt.Sprintf("k:%d:%d", w, i), fmt.Sprintf("v%d", i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := c.Set(ctx, k, v, 0).Err()
				cancel()
				if err != nil {
					t.Logf("writer %d: %v", w, err)
					return // the node is gone: this write may or may not have happened
				}
				mu.Lock()
				acked[k] = v
				mu.Unlock()
				count.Add(1)
			}
		}(w)
	}
	deadline := time.Now().Add(30 * time.Second)
	for count.Load() < 2000 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	n.kill9()
	close(stop)
	wg.Wait()
	if len(acked) < 100 {
		t.Fatalf("only %d writes acknowledged before the kill", len(acked))
	}

	n.start()
	readAll(t, n, acked)
	t.Logf("%d acknowledged writes all present after kill -9 and restart", len(acked))
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
}
