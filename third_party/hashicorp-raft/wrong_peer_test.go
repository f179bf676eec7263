package raft

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// coppice fork: a response from another server than the one dialled (its
// old address now another's) is a failure, not the intended server's
// acknowledgement or vote. Upstream took it as the intended server's.
func TestNetworkTransport_WrongPeer(t *testing.T) {
	other, err := makeTransport(t, false, "localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Close() }()
	go func() {
		for rpc := range other.Consumer() {
			header := RPCHeader{ID: []byte("other")}
			switch rpc.Command.(type) {
			case *AppendEntriesRequest:
				rpc.Respond(&AppendEntriesResponse{RPCHeader: header, Term: 4, LastLog: 90, Success: true}, nil)
			case *RequestVoteRequest:
				rpc.Respond(&RequestVoteResponse{RPCHeader: header, Term: 4, Granted: true}, nil)
			}
		}
	}()
	trans, err := makeTransport(t, false, "localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = trans.Close() }()

	args := makeAppendRPC()
	var resp AppendEntriesResponse
	if err := trans.AppendEntries("moved", other.LocalAddr(), &args, &resp); !errors.Is(err, ErrWrongPeer) {
		t.Errorf("append entries for moved, answered by other: %v, want ErrWrongPeer", err)
	}
	var vote RequestVoteResponse
	if err := trans.RequestVote("moved", other.LocalAddr(), &RequestVoteRequest{Term: 4}, &vote); !errors.Is(err, ErrWrongPeer) {
		t.Errorf("vote of moved, answered by other: %v, want ErrWrongPeer", err)
	}
	if err := trans.AppendEntries("other", other.LocalAddr(), &args, &resp); err != nil || !resp.Success {
		t.Errorf("append entries for other: %v, %+v", err, resp)
	}

	p, err := trans.AppendEntriesPipeline("moved", other.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	var presp AppendEntriesResponse
	f, err := p.AppendEntries(&args, &presp)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case done := <-p.Consumer():
		if !errors.Is(done.Error(), ErrWrongPeer) || done.Response().Success {
			t.Errorf("pipelined append entries for moved: %v, success %v; want ErrWrongPeer, a failure", done.Error(), done.Response().Success)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pipelined response")
	}
	_ = f
}

// peerLayer is a stream layer that dials a given server (PeerStreamLayer)
// and records which.
type peerLayer struct {
	net.Listener
	mu     sync.Mutex
	dialed []ServerID
}

func (l *peerLayer) Dial(address ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.DialPeer("", address, timeout)
}

func (l *peerLayer) DialPeer(id ServerID, address ServerAddress, timeout time.Duration) (net.Conn, error) {
	l.mu.Lock()
	l.dialed = append(l.dialed, id)
	l.mu.Unlock()
	return net.DialTimeout("tcp", string(address), timeout)
}

// coppice fork: with a PeerStreamLayer the transport tells the stream
// layer which server it dials (so the far end can refuse a connection
// meant for another), and a connection dialled to one server is not
// pooled for another at the same address. Upstream dialled by address
// alone and pooled by address.
func TestNetworkTransport_DialsTheServer(t *testing.T) {
	other, err := makeTransport(t, false, "localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Close() }()
	go func() {
		for rpc := range other.Consumer() {
			rpc.Respond(&AppendEntriesResponse{RPCHeader: RPCHeader{ID: []byte("b")}, Success: true}, nil)
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	layer := &peerLayer{Listener: ln}
	trans := NewNetworkTransportWithConfig(&NetworkTransportConfig{Stream: layer, MaxPool: 2, Timeout: time.Second})
	defer func() { _ = trans.Close() }()

	args := makeAppendRPC()
	var resp AppendEntriesResponse
	// "a" once had the address "b" has now: its answer is b's, refused.
	if err := trans.AppendEntries("a", other.LocalAddr(), &args, &resp); !errors.Is(err, ErrWrongPeer) {
		t.Fatalf("append entries for a, answered by b: %v, want ErrWrongPeer", err)
	}
	for i := 0; i < 2; i++ {
		if err := trans.AppendEntries("b", other.LocalAddr(), &args, &resp); err != nil || !resp.Success {
			t.Fatalf("append entries for b: %v, %+v", err, resp)
		}
	}
	layer.mu.Lock()
	dialed := append([]ServerID(nil), layer.dialed...)
	layer.mu.Unlock()
	// a's connection was dropped with its wrong answer; b's first one is
	// pooled and used again: one dial each.
	if len(dialed) != 2 || dialed[0] != "a" || dialed[1] != "b" {
		t.Fatalf("dialled %q, want [a b]", dialed)
	}
	trans.connPoolLock.Lock()
	defer trans.connPoolLock.Unlock()
	if n := len(trans.connPool[connKey{"b", other.LocalAddr()}]); n != 1 {
		t.Fatalf("%d pooled connections to b, want 1", n)
	}
	if n := len(trans.connPool[connKey{"a", other.LocalAddr()}]); n != 0 {
		t.Fatalf("%d pooled connections to a, want 0", n)
	}
}
