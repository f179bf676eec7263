package raft

import (
	"errors"
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
