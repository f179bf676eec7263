// coppice: a replication's peer follows the server's suffrage
// (startStopReplication).

package raft

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// lockedBuffer is a bytes.Buffer several goroutines write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startInmem starts a server on trans, an in-memory transport at addr,
// logging to logger (nil: the test's log), bootstrapped with boot if it
// has servers, its config changed by tune (if not nil). It is shut down
// when the test ends.
func startInmem(t *testing.T, addr ServerAddress, trans *InmemTransport, logger hclog.Logger, boot Configuration, tune func(*Config)) *Raft {
	t.Helper()
	conf := inmemConfig(t)
	conf.LocalID = ServerID(addr)
	if logger != nil {
		conf.Logger = logger
	}
	if tune != nil {
		tune(conf)
	}
	store, snaps := NewInmemStore(), NewInmemSnapshotStore()
	if len(boot.Servers) > 0 {
		if err := BootstrapCluster(conf, store, store, snaps, trans, boot); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewRaft(conf, &MockFSM{}, store, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown().Error() })
	return r
}

// TestRaft_ReplicationPeerFollowsPromotion: a server added as a non-voter
// and then promoted is named a voter in its replication's lines. The
// replication kept the server as it was when replication started, and
// updated it only when its address changed: the leader's warnings about a
// voter said Nonvoter for as long as it led.
func TestRaft_ReplicationPeerFollowsPromotion(t *testing.T) {
	addr1, t1 := NewInmemTransport("")
	addr2, t2 := NewInmemTransport("")
	t1.Connect(addr2, t2)
	t2.Connect(addr1, t1)
	var out lockedBuffer
	self := Configuration{Servers: []Server{{Suffrage: Voter, ID: ServerID(addr1), Address: addr1}}}
	leader := leaderOf(t, []*Raft{startInmem(t, addr1, t1, hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Warn}), self, nil)})
	startInmem(t, addr2, t2, nil, Configuration{}, nil)
	if err := leader.AddNonvoter(ServerID(addr2), addr2, 0, time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if err := leader.AddVoter(ServerID(addr2), addr2, 0, time.Second).Error(); err != nil {
		t.Fatal(err)
	}

	before := len(out.String())
	t1.Disconnect(addr2)
	leader.Apply([]byte("x"), 50*time.Millisecond) // cannot commit: its voter is cut off
	var line string
	for deadline := time.Now().Add(5 * time.Second); line == ""; {
		for _, l := range strings.Split(out.String()[before:], "\n") {
			if strings.Contains(l, "appendEntries") && strings.Contains(l, string(addr2)) {
				line = l
			}
		}
		if line == "" {
			if time.Now().After(deadline) {
				t.Fatalf("no appendEntries failure logged within 5s; log:\n%s", out.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if !strings.Contains(line, "Voter") || strings.Contains(line, "Nonvoter") {
		t.Fatalf("the promoted server is not named a voter: %s", line)
	}
}
