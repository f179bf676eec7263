package integration

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestPipelinedReadSeesEarlierWrite: in one pipeline, a read of a key
// sees the write to it pipelined just before, and a write does not leak
// into a read pipelined before it.
func TestPipelinedReadSeesEarlierWrite(t *testing.T) {
	n := newNode(t, "n1", t.TempDir())
	n.start()
	c := n.redis()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for round := 0; round < 3; round++ {
		pipe := c.Pipeline()
		type pair struct{ before, after interface{ Val() string } }
		var checks []pair
		for i := 0; i < 100; i++ {
			k := fmt.Sprintf("p%d:%d", round, i)
			before := pipe.Get(ctx, k)
			pipe.Set(ctx, k, "v", 0)
			checks = append(checks, pair{before, pipe.Get(ctx, k)})
		}
		pipe.Exec(ctx) // the GET of a missing key is redis.Nil: checked below
		for i, p := range checks {
			if p.before.Val() != "" || p.after.Val() != "v" {
				t.Fatalf("round %d key %d: GET before SET = %q, GET after SET = %q; want \"\" and \"v\"", round, i, p.before.Val(), p.after.Val())
			}
		}
	}
}
