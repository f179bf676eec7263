package server

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/coppice-kv/coppice/messages"
)

// unsettledBackend runs writes and reads when issued, and takes every
// probed write as a probe that is not settled: it is proposed only when
// waited for, as a leader's probe is when the barrier finds it writes
// after all. It logs each probe as it is offered (with behind) and as it
// is waited for.
type unsettledBackend struct {
	*engineBackend
	mu  sync.Mutex
	log []string
}

func (b *unsettledBackend) note(s string) {
	b.mu.Lock()
	b.log = append(b.log, s)
	b.mu.Unlock()
}

type lateWrite struct {
	b     *unsettledBackend
	shard int
	cmd   *messages.Command
}

func (w lateWrite) Wait() *messages.Reply {
	w.b.note("wait " + string(w.cmd.Args[0]) + " " + string(w.cmd.Args[2]))
	return w.b.Propose(w.shard, w.cmd).Wait()
}

func (b *unsettledBackend) Probe(shard int, cmd *messages.Command, _ *LogIndexes, behind bool) (Pending, bool) {
	b.note(fmt.Sprintf("probe %s %s behind=%v", cmd.Args[0], cmd.Args[2], behind))
	return lateWrite{b, shard, cmd}, false
}

// A probe that is not settled may still write: the commands after it on
// its shard in the same pipeline wait for it. A read after it sees its
// write, and a write (not such a probe) after it comes after it. Probes
// after it are offered at once, behind it (no wait: a pipeline of them
// waits out one barrier, not one each), and answered after it.
func TestUnsettledProbeHoldsWhatFollowsOnItsShard(t *testing.T) {
	b := &unsettledBackend{engineBackend: newEngineBackend()}
	srv, err := Listen(Config{Addr: "127.0.0.1:0"}, b)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := dial(t, srv)
	pipeline := func(steps []string, want ...string) {
		t.Helper()
		if _, err := fmt.Fprint(c.nc, strings.Join(steps, "\r\n")+"\r\n"); err != nil {
			t.Fatal(err)
		}
		for i, s := range steps {
			if got := c.read(); got != want[i] {
				t.Fatalf("%s: %q, want %q", s, got, want[i])
			}
		}
	}
	// SISMEMBER waits for the SADD before it.
	pipeline([]string{"SADD {s}a z", "SISMEMBER {s}a z"}, ":1", ":1")
	// SADD v is offered behind SADD w, at once; SINTERSTORE (not probed)
	// waits for both before it is proposed, and stores the three members.
	pipeline([]string{"SADD {s}a w", "SADD {s}a v", "SINTERSTORE {s}d {s}a", "SCARD {s}d"}, ":1", ":1", ":3", ":3")
	wantLog := []string{"probe SADD z behind=false", "wait SADD z", "probe SADD w behind=false", "probe SADD v behind=true", "wait SADD w", "wait SADD v"}
	b.mu.Lock()
	defer b.mu.Unlock()
	if strings.Join(b.log, ", ") != strings.Join(wantLog, ", ") {
		t.Fatalf("probes offered and waited for:\n%s\nwant\n%s", strings.Join(b.log, ", "), strings.Join(wantLog, ", "))
	}
}
