package actors

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/gossip"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/transport"
	"google.golang.org/protobuf/proto"
)

// listening starts a cluster listener for node name of cluster clusterID
// and returns its address; its remote serves nothing.
func listening(t *testing.T, name, clusterID string) (string, *transport.Remote) {
	t.Helper()
	mux, err := transport.Listen("127.0.0.1:0", "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := mux.SetNode(name, func() string { return clusterID }); err != nil {
		t.Fatal(err)
	}
	r := transport.NewRemote(mux, func(context.Context, string, proto.Message) (proto.Message, error) {
		return nil, errors.New("serves nothing")
	}, 2*time.Second)
	t.Cleanup(func() { r.Close(); mux.Close() })
	return mux.Addr().String(), r
}

// TestEarlierRun: a join refused because this node's name is held at
// another cluster address waits for gossip to see that holder fail when no
// node of this name answers there (nothing does, or another node does:
// the address was handed out again), for at most twinWait; a node of this
// name that answers there is a live twin, refused at once.
func TestEarlierRun(t *testing.T) {
	_, remote := listening(t, "n3", "c1")
	rt := &Runtime{Name: "n3", Shards: 1, remote: remote}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nothing := ln.Addr().String()
	ln.Close()
	twin, _ := listening(t, "n3", "c1")
	other, _ := listening(t, "r4", "c1")
	otherCluster, _ := listening(t, "n3", "c2")

	for _, c := range []struct {
		what, at string
		want     bool
	}{
		{"nothing answers", nothing, true},
		{"another node of the cluster answers", other, true},
		{"a node of this name in another cluster answers", otherCluster, true},
		{"a node of this name answers", twin, false},
		{"no cluster address in its tags", "", false},
	} {
		var since time.Time
		conflict := &gossip.NameConflictError{Name: "n3", Addr: "127.0.0.1:1", ClusterAddr: c.at, Self: "127.0.0.1:2"}
		if got := earlierRun(rt, conflict, &since); got != c.want {
			t.Errorf("%s: earlier run = %v, want %v", c.what, got, c.want)
		}
		if since.IsZero() {
			t.Errorf("%s: the first call did not set when the wait began", c.what)
		}
	}

	since := time.Now().Add(-twinWait - time.Second)
	conflict := &gossip.NameConflictError{Name: "n3", ClusterAddr: nothing}
	if earlierRun(rt, conflict, &since) {
		t.Error("still taken for the earlier run after twinWait")
	}
}

// TestAdoptClusterID: a node of no cluster yet takes the ID its alive
// gossip peers announce once it has joined them (not recorded in node.json:
// the system group's state does that); a node with an ID keeps it.
func TestAdoptClusterID(t *testing.T) {
	members := []*messages.Member{
		{Name: "n1", Status: messages.MemberStatus_FAILED, ClusterId: "old"},
		{Name: "n2", Status: messages.MemberStatus_ALIVE, ClusterId: "c1"},
		{Name: "n4", Status: messages.MemberStatus_ALIVE},
	}
	rt := &Runtime{Name: "n4"}
	adoptClusterID(rt, members)
	if rt.ClusterID() != "c1" || rt.clusterIDIsRecorded() {
		t.Fatalf("cluster ID %q (recorded %v), want c1 taken from n2, not recorded", rt.ClusterID(), rt.clusterIDIsRecorded())
	}
	rt = &Runtime{Name: "n4"}
	rt.setClusterID("c0", true)
	adoptClusterID(rt, members)
	if rt.ClusterID() != "c0" {
		t.Fatalf("a node of cluster c0 took %q", rt.ClusterID())
	}
	rt = &Runtime{Name: "n4"}
	adoptClusterID(rt, members[:1])
	if rt.ClusterID() != "" {
		t.Fatalf("took %q from a failed member", rt.ClusterID())
	}
}
