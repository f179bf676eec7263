package transport

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// clusterNode listens as node name of the cluster clusterID ("": of
// none yet) and serves echo.
func clusterNode(t *testing.T, name, clusterID string) (*Mux, *Remote, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	m, err := Listen("127.0.0.1:0", "", nil, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetNode(name, func() string { return clusterID }); err != nil {
		t.Fatal(err)
	}
	r := NewRemote(m, echo, 2*time.Second)
	t.Cleanup(func() { r.Close(); m.Close() })
	return m, r, logs
}

// TestHelloRefusesOtherClustersAndNodes: a connection names the dialling
// node's cluster and the node it is meant for, and the node that answers
// refuses one of another cluster or meant for another node, before any
// stream sees it, telling the dialler who it is (an address handed out
// again must not let one node's Raft traffic or requests reach another).
// A node of no cluster yet, on either side, and a dial to whichever node
// answers, are let through.
func TestHelloRefusesOtherClustersAndNodes(t *testing.T) {
	srv, _, srvLog := clusterNode(t, "n1", "cluster-a")
	_, same, _ := clusterNode(t, "n2", "cluster-a")
	_, other, _ := clusterNode(t, "n2", "cluster-b")
	_, newcomer, _ := clusterNode(t, "n4", "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr := srv.Addr().String()

	for _, c := range []struct {
		what string
		from *Remote
		to   Peer
	}{
		{"same cluster, meant for n1", same, Peer{"n1", addr}},
		{"same cluster, whichever node", same, Peer{"", addr}},
		{"no cluster yet", newcomer, Peer{"n1", addr}},
	} {
		res, err := c.from.Request(ctx, c.to, "t", wrapperspb.String("hi"))
		if err != nil || res.(*wrapperspb.StringValue).Value != "t:hi" {
			t.Fatalf("%s: request = %v, %v; want t:hi", c.what, res, err)
		}
	}

	_, err := other.Request(ctx, Peer{"n1", addr}, "t", wrapperspb.String("hi"))
	if !errors.Is(err, ErrOtherCluster) || !strings.Contains(err.Error(), `is node "n1" of cluster "cluster-a", this node is of cluster "cluster-b"`) {
		t.Fatalf("request from another cluster = %v, want ErrOtherCluster naming both", err)
	}
	if err := other.Ping(ctx, Peer{"n1", addr}); !errors.Is(err, ErrOtherCluster) {
		t.Fatalf("ping from another cluster = %v, want ErrOtherCluster", err)
	}
	_, err = same.Request(ctx, Peer{"n3", addr}, "t", wrapperspb.String("hi"))
	if !errors.Is(err, ErrOtherNode) || !strings.Contains(err.Error(), `is node "n1", not "n3"`) {
		t.Fatalf("request meant for n3, at n1's address = %v, want ErrOtherNode", err)
	}
	// A refusal is not a connection: the same node is reached again.
	if _, err := same.Request(ctx, Peer{"n1", addr}, "t", wrapperspb.String("hi")); err != nil {
		t.Fatalf("request for n1 after the refusal: %v", err)
	}

	log := srvLog.String()
	for _, want := range []string{
		"refused a node of another cluster", "cluster_id=cluster-b", "ours=cluster-a",
		"refused a connection meant for another node", "meant_for=n3", "this_node=n1",
	} {
		if !strings.Contains(log, want) {
			t.Fatalf("the refusals are not logged (%q):\n%s", want, log)
		}
	}
	// Each kind of refusal from the same node is logged once a minute.
	for range 3 {
		_ = other.Ping(ctx, Peer{"n1", addr})
	}
	if n := strings.Count(srvLog.String(), "refused a node of another cluster"); n != 1 {
		t.Fatalf("the refusal of cluster-b's n2 was logged %d times, want 1", n)
	}

	// A node of no cluster yet takes connections from any.
	free, _, _ := clusterNode(t, "x", "")
	if _, err := other.Request(ctx, Peer{"x", free.Addr().String()}, "t", wrapperspb.String("hi")); err != nil {
		t.Fatalf("a node of no cluster refused one of cluster-b: %v", err)
	}
}

// TestStreamNotServed: a connection for a stream the node does not serve
// is refused with an answer that says so.
func TestStreamNotServed(t *testing.T) {
	srv, _, _ := clusterNode(t, "n1", "")
	cli, _, _ := clusterNode(t, "n2", "")
	_, err := cli.Layer(99).DialPeer("n1", raft.ServerAddress(srv.Addr().String()), time.Second)
	if !errors.Is(err, ErrUnknownPeer) || !strings.Contains(err.Error(), `node "n1" at `) {
		t.Fatalf("dial of a stream not served = %v, want ErrUnknownPeer", err)
	}
}

// TestHelloRefusesOversizedStrings: a name or cluster ID that does not
// fit the hello's length byte is an error, and nothing is sent.
func TestHelloRefusesOversizedStrings(t *testing.T) {
	long := strings.Repeat("x", maxString+1)
	srv, _, _ := clusterNode(t, "n1", "")
	cli, _, _ := clusterNode(t, "n2", long)
	_, err := cli.Layer(StreamRemote).Dial(raft.ServerAddress(srv.Addr().String()), time.Second)
	if err == nil || !strings.Contains(err.Error(), "at most 255 fit") {
		t.Fatalf("dial with a %d-byte cluster ID = %v, want an error", len(long), err)
	}
	if err := cli.SetNode(long, nil); err == nil {
		t.Fatalf("SetNode took a %d-byte name", len(long))
	}
	h := hello{stream: 7, clusterID: strings.Repeat("y", maxString), from: "a", to: "b"}
	b, err := h.encode()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readHello(bytes.NewReader(b)); err != nil || got != h {
		t.Fatalf("hello read back = %+v, %v; want %+v", got, err, h)
	}
}

// TestOldHeaderRefused: a connection with the header of before the hello
// (CPX1) is dropped, not read as a stream, with a warning once a minute
// per host.
func TestOldHeaderRefused(t *testing.T) {
	srv, _, srvLog := clusterNode(t, "n1", "")
	for range 3 {
		c, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{'C', 'P', 'X', '1', 0x40, 0, 0, 1})
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
			t.Fatalf("read after an old header = %v, want the connection closed", err)
		}
		c.Close()
	}
	if n := srvLog.Count("bad header"); n != 1 {
		t.Fatalf("3 bad headers from one host logged %d times, want 1:\n%s", n, srvLog.String())
	}
}

// TestLaterVersionAnswered: a hello of a later wire version (CPX3, with
// more after its first eight bytes than this version sends) is answered
// with the version this node speaks, so a later node can dial again in
// it; the refusal is logged once a minute per host.
func TestLaterVersionAnswered(t *testing.T) {
	srv, _, srvLog := clusterNode(t, "n1", "cluster-a")
	for range 3 {
		c, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		later := append([]byte{'C', 'P', 'X', '3', 0, 0, 0, 1}, bytes.Repeat([]byte{0xff}, 300)...)
		if _, err := c.Write(later); err != nil {
			t.Fatal(err)
		}
		a, err := readAnswer(c)
		if err != nil {
			t.Fatalf("no answer to a later hello: %v", err)
		}
		if a.status != helloVersion || a.name != "n1" || a.clusterID != magic {
			t.Fatalf("answer to a later hello = %+v, want status %d from n1 naming %q", a, helloVersion, magic)
		}
		err = a.err(srv.Addr().String(), hello{})
		if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), `node "n1" at `) {
			t.Fatalf("the answer as a dialler reads it: %v, want ErrVersion naming n1", err)
		}
		c.Close()
	}
	if n := srvLog.Count("later wire version"); n != 1 {
		t.Fatalf("3 later hellos from one host logged %d times, want 1:\n%s", n, srvLog.String())
	}
}

// TestDialerReportsLaterVersion: a node that speaks only a later version
// answers this one's hello with helloVersion, and the dial fails with
// ErrVersion naming that node and both versions.
func TestDialerReportsLaterVersion(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := readHello(c); err != nil {
			return
		}
		c.Write(answer{status: helloVersion, name: "n9", clusterID: "CPX3"}.encode())
	}()
	cli, _, _ := clusterNode(t, "n2", "cluster-a")
	_, err = cli.Layer(StreamRemote).DialPeer("n9", raft.ServerAddress(l.Addr().String()), 3*time.Second)
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), `node "n9" at `) || !strings.Contains(err.Error(), `speaks "CPX3", this node "CPX2"`) {
		t.Fatalf("dial of a node of a later version = %v, want ErrVersion naming n9, CPX3 and CPX2", err)
	}
}

// TestRefuseUntilCluster: a node that joins refuses every dialler, of any
// cluster or none, until it knows its cluster's ID; then it takes its own
// cluster's and refuses others as any node does.
func TestRefuseUntilCluster(t *testing.T) {
	var id atomic.Value
	id.Store("")
	logs := &logBuffer{}
	srv, err := Listen("127.0.0.1:0", "", nil, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SetNode("n3", func() string { return id.Load().(string) }); err != nil {
		t.Fatal(err)
	}
	srv.RefuseUntilCluster()
	r := NewRemote(srv, echo, 2*time.Second)
	t.Cleanup(func() { r.Close(); srv.Close() })
	addr := raft.ServerAddress(srv.Addr().String())

	for _, dialler := range []string{"cluster-a", "cluster-b", ""} {
		cli, _, _ := clusterNode(t, "n1", dialler)
		_, err := cli.Layer(StreamRemote).DialPeer("n3", addr, time.Second)
		if !errors.Is(err, ErrNoCluster) || !strings.Contains(err.Error(), `node "n3" at `) {
			t.Fatalf("dial from cluster %q before n3 knows its cluster = %v, want ErrNoCluster", dialler, err)
		}
	}
	if n := logs.Count("has not joined its cluster yet"); n != 3 {
		t.Fatalf("3 refusals of different diallers logged %d times, want 3:\n%s", n, logs.String())
	}
	id.Store("cluster-a")
	own, _, _ := clusterNode(t, "n1", "cluster-a")
	c, err := own.Layer(StreamRemote).DialPeer("n3", addr, time.Second)
	if err != nil {
		t.Fatalf("dial from n3's own cluster once it knows it: %v", err)
	}
	c.Close()
	other, _, _ := clusterNode(t, "n1", "cluster-b")
	if _, err := other.Layer(StreamRemote).DialPeer("n3", addr, time.Second); !errors.Is(err, ErrOtherCluster) {
		t.Fatalf("dial from another cluster once n3 knows its own = %v, want ErrOtherCluster", err)
	}
}

// TestDialEndsWhenLayerCloses: a dial to a peer that takes the connection
// and never answers the hello (a peer stopped, or cut off after the TCP
// handshake) ends with ErrClosed as soon as its layer closes, not at its
// timeout: a Raft group that stops waits for its replication's dials.
func TestDialEndsWhenLayerCloses(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	held := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			held <- c // never answered
		}
	}()
	cli, _, _ := clusterNode(t, "n2", "cluster-a")
	layer := cli.Layer(StreamRemote)
	done := make(chan error, 1)
	go func() {
		_, err := layer.DialPeer("n9", raft.ServerAddress(l.Addr().String()), 30*time.Second)
		done <- err
	}()
	c := <-held
	defer c.Close()
	select {
	case err := <-done:
		t.Fatalf("the dial ended before the layer closed: %v", err)
	default:
	}
	layer.Close()
	if err := testwait.Recv(t, done, 5*time.Second, "end of the dial after its layer closed (its timeout is 30s)"); !errors.Is(err, ErrClosed) {
		t.Fatalf("dial after the layer closed: %v, want ErrClosed", err)
	}
}

// TestLayerCloseClosesItsConnections: closing a layer closes every
// connection it dialled or accepted, so a read waiting on a peer that went
// silent (cut off: no answer, no reset) ends at once, not at its deadline:
// a Raft group that stops waits for the RPCs of its replication. Each side
// is closed on a stream of its own (once one side closes, the other reads
// an EOF from it).
func TestLayerCloseClosesItsConnections(t *testing.T) {
	srv, _, _ := clusterNode(t, "n1", "cluster-a")
	cli, _, _ := clusterNode(t, "n2", "cluster-a")
	for _, side := range []string{"dialling", "accepting"} {
		stream := StreamSystem
		if side == "accepting" {
			stream = ShardStream(0)
		}
		in, out := srv.Layer(stream), cli.Layer(stream)
		dialled, err := out.DialPeer("n1", raft.ServerAddress(srv.Addr().String()), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		accepted, err := in.Accept()
		if err != nil {
			t.Fatal(err)
		}
		closing, c := out, dialled
		if side == "accepting" {
			closing, c = in, accepted
		}
		// Nobody writes: the read waits as on a silent peer.
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		read := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			read <- err
		}()
		select {
		case err := <-read:
			t.Fatalf("%s side: a read ended before its layer closed: %v", side, err)
		case <-time.After(50 * time.Millisecond):
		}
		closing.Close()
		if err := testwait.Recv(t, read, 5*time.Second, "end of the "+side+" side's read after its layer closed (its deadline is 30s)"); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("%s side: read after its layer closed: %v, want net.ErrClosed", side, err)
		}
		if err := c.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("%s side: closing a connection its layer closed: %v, want net.ErrClosed", side, err)
		}
		if _, err := out.DialPeer("n1", raft.ServerAddress(srv.Addr().String()), 5*time.Second); side == "dialling" && !errors.Is(err, ErrClosed) {
			t.Fatalf("dial on a closed layer: %v, want ErrClosed", err)
		}
	}
	if _, err := cli.Layer(StreamSystem).DialPeer("n1", raft.ServerAddress(srv.Addr().String()), 5*time.Second); err != nil {
		t.Fatalf("a layer made again after its close: %v", err)
	}
}
