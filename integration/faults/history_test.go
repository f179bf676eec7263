package faults

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/redis/go-redis/v9"
)

// registers is how many keys the clients read and overwrite; few keys make
// many concurrent operations on each, which is what porcupine checks.
const registers = 12

// kvInput is one operation on a register: a GET, a SET, a SET NX or a
// DEL. A SET NX of a register that holds a value and a DEL of one that
// holds none change nothing, and the node answers them without the log
// (kv.Probe): in a cluster, after a read's barrier.
type kvInput struct {
	op    byte // 'g', 's', 'n' (SET NX) or 'd'
	key   string
	value string
}

// kvOutput is what the client saw. unknown: a write that failed or timed
// out, which may or may not have taken effect. done: the SET NX set the
// value, the DEL deleted one.
type kvOutput struct {
	value   string
	exists  bool
	done    bool
	unknown bool
}

// kvState is one register's value.
type kvState struct {
	value  string
	exists bool
}

// registerModel is a map of independent registers: porcupine checks each
// key's history on its own. A write whose outcome is unknown returns at
// the end of time, so it may be placed where taking effect changes
// nothing the history saw.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(kvInput).key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return kvState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(kvState), input.(kvInput), output.(kvOutput)
		switch in.op {
		case 's':
			return true, kvState{value: in.value, exists: true}
		case 'n':
			if s.exists {
				return out.unknown || !out.done, s
			}
			return out.unknown || out.done, kvState{value: in.value, exists: true}
		case 'd':
			return out.unknown || out.done == s.exists, kvState{}
		}
		return out.exists == s.exists && out.value == s.value, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		result := fmt.Sprint(out.done)
		if out.unknown {
			result = "?"
		}
		switch {
		case in.op == 's' && out.unknown:
			return fmt.Sprintf("set(%s, %s) -> ?", in.key, in.value)
		case in.op == 's':
			return fmt.Sprintf("set(%s, %s)", in.key, in.value)
		case in.op == 'n':
			return fmt.Sprintf("setnx(%s, %s) -> %s", in.key, in.value, result)
		case in.op == 'd':
			return fmt.Sprintf("del(%s) -> %s", in.key, result)
		case !out.exists:
			return fmt.Sprintf("get(%s) -> nil", in.key)
		}
		return fmt.Sprintf("get(%s) -> %s", in.key, out.value)
	},
	DescribeState: func(state any) string {
		s := state.(kvState)
		if !s.exists {
			return "nil"
		}
		return s.value
	},
}

// workload runs clients against the nodes until stopped: each reads,
// overwrites, sets when empty (SETNX) and deletes the registers (the
// "sets" below count all three writes), and now and then writes a key of its own that
// nothing overwrites, to check later that every acknowledged write is
// there.
type workload struct {
	t     *testing.T
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
	// clients is how many were started (each one's id is its rank).
	clients int
	// epoch names the registers in use (newRegisters).
	epoch atomic.Int64

	mu         sync.Mutex
	history    []porcupine.Operation
	acked      map[string]string
	setOK      int
	setErr     int // failed, timed out or AMBIGUOUS: unknown
	setRefused int // TRYAGAIN: not applied
	getOK      int
	getErr     int
}

// startWorkload starts perNode clients on each of nodes.
func (c *cluster) startWorkload(perNode int, nodes ...*cnode) *workload {
	w := &workload{t: c.t, start: time.Now(), stop: make(chan struct{}), acked: map[string]string{}}
	w.addClients(c, perNode, nodes...)
	return w
}

// addClients starts perNode more clients on each of nodes.
func (w *workload) addClients(c *cluster, perNode int, nodes ...*cnode) {
	for _, n := range nodes {
		for range perNode {
			id := w.clients
			w.clients++
			w.wg.Add(1)
			go w.client(id, n, rand.New(rand.NewPCG(c.seed, uint64(id))))
		}
	}
}

func (w *workload) now() int64 { return int64(time.Since(w.start)) }

// register picks one of the registers in use.
func (w *workload) register(rng *rand.Rand) string {
	return fmt.Sprintf("reg:%d:%d", w.epoch.Load(), rng.IntN(registers))
}

// newRegisters moves the clients on to registers no one has used. A long
// run (the nemesis) does so at every step: a SET that failed stays open
// to the end of the history (it may take effect at any time), and a few
// hundred of them on one key make its check too costly to finish, where
// each key's history is cheap when it spans one step.
func (w *workload) newRegisters() { w.epoch.Add(1) }

func (w *workload) client(id int, n *cnode, rng *rand.Rand) {
	defer w.wg.Done()
	rc := n.redis()
	defer rc.Close()
	for seq := 0; ; seq++ {
		select {
		case <-w.stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		failed := false
		switch r := rng.IntN(10); {
		case r == 0: // a key of its own
			k, v := fmt.Sprintf("ack:%d:%d", id, seq), fmt.Sprintf("v%d", rng.Uint64())
			err := rc.Set(ctx, k, v, 0).Err()
			w.mu.Lock()
			if err == nil {
				w.acked[k] = v
			}
			w.mu.Unlock()
			failed = err != nil
		case r < 6: // read a register
			in := kvInput{op: 'g', key: w.register(rng)}
			call := w.now()
			v, err := rc.Get(ctx, in.key).Result()
			ret := w.now()
			out := kvOutput{value: v, exists: err == nil}
			w.mu.Lock()
			if err == nil || errors.Is(err, redis.Nil) {
				w.getOK++
				w.history = append(w.history, porcupine.Operation{ClientId: id, Input: in, Call: call, Output: out, Return: ret})
			} else {
				w.getErr++ // a failed read changes nothing: left out
				failed = true
			}
			w.mu.Unlock()
		default: // write a register: a value never written before, or delete it
			in := kvInput{op: 's', key: w.register(rng), value: fmt.Sprintf("c%d-%d", id, seq)}
			var err error
			var out kvOutput
			call := w.now()
			switch r {
			case 8: // changes nothing once the register holds a value
				in.op = 'n'
				out.done, err = rc.SetNX(ctx, in.key, in.value, 0).Result()
			case 9: // changes nothing while it holds none
				in.op, in.value = 'd', ""
				var n int64
				n, err = rc.Del(ctx, in.key).Result()
				out.done = n == 1
			default:
				err = rc.Set(ctx, in.key, in.value, 0).Err()
			}
			ret := w.now()
			if err != nil {
				// It may take effect at any time from now on.
				out, ret = kvOutput{unknown: true}, math.MaxInt64
			}
			w.mu.Lock()
			switch {
			case err == nil:
				w.setOK++
			case refused(err):
				w.setRefused++
			default:
				w.setErr++
			}
			// A write that surely did not happen is left out: were it
			// applied after all, a read of its value (written by no
			// other write) would fail the check.
			if !neverSent(err) && !refused(err) {
				w.history = append(w.history, porcupine.Operation{ClientId: id, Input: in, Call: call, Output: out, Return: ret})
			}
			w.mu.Unlock()
			failed = err != nil
		}
		cancel()
		if failed {
			// The node is down, paused or cut off: pace the client so it
			// does not spin (this is pacing, not a wait for a condition).
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// refused reports the node's TRYAGAIN: the command was not applied (an
// outcome it does not know is AMBIGUOUS).
func refused(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "TRYAGAIN ")
}

// neverSent reports an error that says the command never left the client
// (the connection could not be made), so it surely did not happen.
func neverSent(err error) bool {
	var op *net.OpError
	return err != nil && errors.As(err, &op) && op.Op == "dial"
}

// ops is how many operations succeeded so far.
func (w *workload) ops() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.setOK + w.getOK
}

// failures is how many operations failed so far.
func (w *workload) failures() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.setErr + w.setRefused + w.getErr
}

// waitOps waits until at least more operations than now have succeeded:
// progress, not a duration.
func (w *workload) waitOps(more int, timeout time.Duration) {
	w.t.Helper()
	w.waitCount("successful", w.ops, more, timeout)
}

// waitFailures waits until at least more operations than now have failed:
// the clients saw the fault.
func (w *workload) waitFailures(more int, timeout time.Duration) {
	w.t.Helper()
	w.waitCount("failed", w.failures, more, timeout)
}

func (w *workload) waitCount(what string, count func() int, more int, timeout time.Duration) {
	w.t.Helper()
	target := count() + more
	eventually(w.t, timeout, fmt.Sprintf("%d more %s operations", more, what), func() error {
		if got := count(); got < target {
			return fmt.Errorf("%d of %d", got, target)
		}
		return nil
	})
}

// finish stops the clients.
func (w *workload) finish() {
	close(w.stop)
	w.wg.Wait()
	w.t.Logf("workload: %d sets ok, %d sets failed or timed out (unknown), %d sets refused (TRYAGAIN), %d gets ok, %d gets failed, %d own keys acknowledged",
		w.setOK, w.setErr, w.setRefused, w.getOK, w.getErr, len(w.acked))
}

// check stops the workload and checks, once the cluster has healed: the
// history is linearizable, every acknowledged write is readable through
// every node in nodes, and every shard's checksum agrees on them.
func (c *cluster) check(w *workload, nodes ...*cnode) {
	c.t.Helper()
	w.finish()
	t0 := time.Now()
	c.waitVoters(90*time.Second, nodes...)
	c.t.Logf("check: healed in %v", time.Since(t0).Round(time.Millisecond))
	tp := time.Now()
	res := porcupine.CheckOperationsTimeout(registerModel, w.history, 60*time.Second)
	switch res {
	case porcupine.Ok:
		c.t.Logf("porcupine: %d operations on %d registers are linearizable (checked in %v)", len(w.history), registers*(w.epoch.Load()+1), time.Since(tp).Round(time.Millisecond))
	case porcupine.Unknown:
		c.t.Errorf("porcupine: history of %d operations not checked within 60s: neither shown linearizable nor not", len(w.history))
	default:
		// Only now the costly verbose run, for the visualization.
		_, info := porcupine.CheckOperationsVerbose(registerModel, w.history, 60*time.Second)
		path := filepath.Join(os.TempDir(), fmt.Sprintf("coppice-faults-%s-%d.html", c.prefix, c.seed))
		verr := porcupine.VisualizePath(registerModel, info, path)
		c.t.Errorf("porcupine: history of %d operations is %s (visualization %s, %v)", len(w.history), res, path, verr)
	}
	t1 := time.Now()
	for _, n := range nodes {
		c.readAcked(n, w.acked)
	}
	t2 := time.Now()
	c.sameData(60*time.Second, nodes...)
	c.t.Logf("check: acknowledged writes read in %v, checksums agreed in %v", t2.Sub(t1).Round(time.Millisecond), time.Since(t2).Round(time.Millisecond))
}

// readAcked reads every acknowledged own key through n.
func (c *cluster) readAcked(n *cnode, acked map[string]string) {
	c.t.Helper()
	rc := n.redis()
	defer rc.Close()
	missing, retried := 0, 0
	for k, v := range acked {
		var got string
		var err error
		for attempt := range 10 { // a retryable error during a leader change: try again
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			t0 := time.Now()
			got, err = rc.Get(ctx, k).Result()
			cancel()
			if err == nil || errors.Is(err, redis.Nil) {
				break
			}
			if retried++; retried <= 3 {
				c.t.Logf("%s: GET %s, attempt %d: %v after %v; trying again", n.name, k, attempt+1, err, time.Since(t0).Round(time.Millisecond))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || got != v {
			if missing++; missing <= 5 {
				c.t.Errorf("%s: GET %s = %q, %v; want %q", n.name, k, got, err, v)
			}
		}
	}
	if missing > 0 {
		c.t.Fatalf("%s: %d of %d acknowledged writes missing", n.name, missing, len(acked))
	}
}
