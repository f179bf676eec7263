package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/coppice-kv/coppice/messages"
)

// unsettledBackend runs writes and reads when issued, and takes every
// write as a probe that is not settled: it is proposed only when waited
// for, as a leader's probe is when the barrier finds it writes after all.
type unsettledBackend struct{ *engineBackend }

type lateWrite struct {
	b     *engineBackend
	shard int
	cmd   *messages.Command
}

func (w lateWrite) Wait() *messages.Reply { return w.b.Propose(w.shard, w.cmd).Wait() }

func (b unsettledBackend) Probe(shard int, cmd *messages.Command, _ *LogIndexes) (Pending, bool) {
	return lateWrite{b.engineBackend, shard, cmd}, false
}

// A probe that is not settled may still write: the commands after it on
// its shard, in the same pipeline, wait for it. A read after it sees its
// write, and a write after it comes after it.
func TestUnsettledProbeHoldsWhatFollowsOnItsShard(t *testing.T) {
	srv, err := Listen(Config{Addr: "127.0.0.1:0"}, unsettledBackend{newEngineBackend()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := dial(t, srv)
	steps := []string{"SADD s y", "SREM s y", "SISMEMBER s y", "SADD s z", "SISMEMBER s z", "SCARD s"}
	want := []string{":1", ":1", ":0", ":1", ":1", ":1"}
	if _, err := fmt.Fprint(c.nc, strings.Join(steps, "\r\n")+"\r\n"); err != nil {
		t.Fatal(err)
	}
	for i, s := range steps {
		if got := c.read(); got != want[i] {
			t.Fatalf("%s: %q, want %q", s, got, want[i])
		}
	}
}
