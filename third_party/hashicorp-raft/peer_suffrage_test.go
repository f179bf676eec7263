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
	start := func(addr ServerAddress, trans *InmemTransport, logger hclog.Logger, bootstrap bool) *Raft {
		conf := inmemConfig(t)
		conf.LocalID = ServerID(addr)
		if logger != nil {
			conf.Logger = logger
		}
		store, snaps := NewInmemStore(), NewInmemSnapshotStore()
		if bootstrap {
			self := Server{Suffrage: Voter, ID: conf.LocalID, Address: addr}
			if err := BootstrapCluster(conf, store, store, snaps, trans, Configuration{Servers: []Server{self}}); err != nil {
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
	leader := start(addr1, t1, hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Warn}), true)
	start(addr2, t2, nil, false)
	deadline := time.Now().Add(5 * time.Second)
	for leader.State() != Leader {
		if time.Now().After(deadline) {
			t.Fatal("no leader within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
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
	for deadline = time.Now().Add(5 * time.Second); line == ""; {
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
