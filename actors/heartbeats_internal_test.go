package actors

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/transport"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// listenBeats opens a cluster listener whose heartbeats stream h answers.
func listenBeats(t *testing.T, h transport.Handler) (*transport.Mux, *transport.Remote) {
	t.Helper()
	m, err := transport.Listen("127.0.0.1:0", "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := transport.NewRemoteOn(m, transport.StreamHeartbeats, h, 2*time.Second)
	t.Cleanup(func() { r.Close(); m.Close() })
	return m, r
}

// TestHeartbeatsToANodeBeforeThem: a peer that cannot take batches (a
// node of a version before them serves no such stream, or answers an
// error) is sent heartbeats alone (ErrHeartbeatNotBatched), and not asked
// again for a while. A batch to a peer that is down fails its heartbeats,
// and the next tick asks again.
func TestHeartbeatsToANodeBeforeThem(t *testing.T) {
	var asked atomic.Int32
	erring, _ := listenBeats(t, func(ctx context.Context, target string, msg proto.Message) (proto.Message, error) {
		asked.Add(1)
		return nil, errors.New("no actor " + target + " on this node")
	})
	old, err := transport.Listen("127.0.0.1:0", "", nil, nil) // no heartbeats stream
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := down.Addr().String()
	down.Close()

	rt := &Runtime{Name: "n1"}
	m, r := listenBeats(t, rt.beats.handler)
	rt.setMux(m, nil, r)
	send := func(peer, addr string) error {
		var resp raft.AppendEntriesResponse
		return rt.beats.send(rt, 1, raft.ServerID(peer), raft.ServerAddress(addr), &raft.AppendEntriesRequest{Term: 3}, &resp, nil)
	}
	for _, p := range []struct{ name, addr string }{{"erring", erring.Addr().String()}, {"old", old.Addr().String()}} {
		for i := range 3 {
			if err := send(p.name, p.addr); !errors.Is(err, raft.ErrHeartbeatNotBatched) {
				t.Fatalf("heartbeat %d to %s: got %v, want ErrHeartbeatNotBatched", i, p.name, err)
			}
		}
	}
	for i := range 3 {
		if err := send("down", downAddr); err == nil || errors.Is(err, raft.ErrHeartbeatNotBatched) {
			t.Fatalf("heartbeat %d to a node down: got %v, want its failure", i, err)
		}
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the erring peer was asked %d times, want once", n)
	}
	// One batch each to the erring and the old peer, three to the down one.
	if st, _ := rt.HeartbeatStats(); st.Batches != 5 || st.Beats != 5 || st.Failed != 5 {
		t.Errorf("stats %+v, want 5 failed batches of one", st)
	}
}

// TestHeartbeatsBatchedAndServed: heartbeats of two groups sent at once to
// a node go in one request; the node hands each to its group's transport
// and each caller gets its group's answer, its commit index included; a
// heartbeat for a group the node does not run, or no longer runs, gets an
// error.
func TestHeartbeatsBatchedAndServed(t *testing.T) {
	follower := &Runtime{Name: "n2"}
	fm, fr := listenBeats(t, follower.beats.handler)
	follower.setMux(fm, nil, fr)
	for _, stream := range []uint32{1, 2} {
		nt, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nt.Close() })
		follower.raftTransport(stream, nt).SetHeartbeatHandler(func(rpc raft.RPC) {
			req := rpc.Command.(*raft.AppendEntriesRequest)
			rpc.Respond(&raft.AppendEntriesResponse{
				RPCHeader: raft.RPCHeader{ID: []byte("n2")}, Term: req.Term, LastLog: uint64(stream) * 10, Success: true,
				FollowerCommit: uint64(stream) * 7,
			}, nil)
		})
	}

	leader := &Runtime{Name: "n1"}
	lm, lr := listenBeats(t, leader.beats.handler)
	leader.setMux(lm, nil, lr)
	to := raft.ServerAddress(fm.Addr().String())
	type result struct {
		stream uint32
		resp   raft.AppendEntriesResponse
		err    error
	}
	// round sends a heartbeat of groups 1, 2 and 9 at once and checks the
	// answers.
	round := func() {
		results := make(chan result, 3)
		for _, stream := range []uint32{1, 2, 9} {
			go func() {
				r := result{stream: stream}
				r.err = leader.beats.send(leader, stream, "n2", to, &raft.AppendEntriesRequest{Term: 5}, &r.resp, nil)
				results <- r
			}()
		}
		for range 3 {
			select {
			case r := <-results:
				switch {
				case r.stream == 9:
					if !errors.Is(r.err, errNoGroupThere) {
						t.Errorf("a heartbeat for a group n2 does not run: %v (answer %+v), want %v", r.err, r.resp, errNoGroupThere)
					}
				case r.err != nil:
					t.Errorf("stream %d: %v", r.stream, r.err)
				case !r.resp.Success || r.resp.Term != 5 || r.resp.LastLog != uint64(r.stream)*10 || string(r.resp.ID) != "n2" ||
					!r.resp.FollowerCommitKnown || r.resp.FollowerCommit != uint64(r.stream)*7:
					t.Errorf("stream %d: answer %+v", r.stream, r.resp)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no answer after 10 s")
			}
		}
	}
	// The three go in one request unless one of them comes more than the
	// batch's linger after the first (a busy machine): up to 10 rounds.
	for i := 0; ; i++ {
		before, _ := leader.HeartbeatStats()
		round()
		st, _ := leader.HeartbeatStats()
		if st.Beats-before.Beats != 3 || st.Failed != 0 {
			t.Fatalf("stats %+v after %+v, want three more heartbeats and no failure", st, before)
		}
		if st.Batches-before.Batches == 1 {
			break
		}
		if i == 9 {
			t.Fatalf("10 rounds of three heartbeats at once, none in one batch: %+v", st)
		}
	}

	// A group stopped on the follower gets no more heartbeats.
	follower.beats.mu.Lock()
	nt := follower.beats.groups[1]
	follower.beats.mu.Unlock()
	follower.beats.forget(1, nt)
	ans := follower.beats.serve(context.Background(), &messages.RaftHeartbeats{Beats: []*messages.RaftHeartbeat{{Stream: 1, Term: 5}}})
	if len(ans.Answers) != 1 || ans.Answers[0].Error == "" {
		t.Errorf("a forgotten group's heartbeat was answered: %v", ans)
	}
}

// TestHeartbeatBatchNotHeldUp: a group that never answers (a Raft shutting
// down) gets an error within beatAnswerWait, and the others of the batch
// their answers, not the batch's timeout later.
func TestHeartbeatBatchNotHeldUp(t *testing.T) {
	rt := &Runtime{Name: "n2"}
	for stream, answers := range map[uint32]bool{1: true, 2: false} {
		nt, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nt.Close() })
		rt.raftTransport(stream, nt).SetHeartbeatHandler(func(rpc raft.RPC) {
			if answers {
				rpc.Respond(&raft.AppendEntriesResponse{Term: 5, Success: true}, nil)
			}
		})
	}
	// The request's own deadline, far beyond the wait: the batch must
	// not run into it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	ans := rt.beats.serve(ctx, &messages.RaftHeartbeats{Beats: []*messages.RaftHeartbeat{{Stream: 2, Term: 5}, {Stream: 1, Term: 5}}})
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the batch took %v, its groups' answers are waited for %v", took, beatAnswerWait)
	}
	if len(ans.Answers) != 2 || ans.Answers[0].Error == "" || ans.Answers[1].Error != "" || !ans.Answers[1].Success {
		t.Errorf("answers %v: want an error for the silent group, success for the other", ans.Answers)
	}
}

// TestHeartbeatGivesUpWhenItsGroupStops: a group's batched heartbeat to a
// peer that does not answer (cut off) returns as soon as the group's
// transport is forgotten (closeGroup), not at the batch's timeout:
// hashicorp/raft's Shutdown waits for its heartbeat goroutine.
func TestHeartbeatGivesUpWhenItsGroupStops(t *testing.T) {
	asked := make(chan struct{}, 1)
	silent, _ := listenBeats(t, func(ctx context.Context, target string, msg proto.Message) (proto.Message, error) {
		asked <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	rt := &Runtime{Name: "n1"}
	m, r := listenBeats(t, rt.beats.handler)
	rt.setMux(m, nil, r)
	nt, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nt.Close()
	bt := rt.raftTransport(1, nt).(raft.HeartbeatBatcher)
	done := make(chan error, 1)
	go func() {
		var resp raft.AppendEntriesResponse
		done <- bt.BatchedHeartbeat("n9", raft.ServerAddress(silent.Addr().String()), &raft.AppendEntriesRequest{Term: 2}, &resp)
	}()
	testwait.Recv(t, asked, 5*time.Second, "the batch at the silent peer")
	rt.beats.forget(1, nt)
	err = testwait.Recv(t, done, 2*time.Second, fmt.Sprintf("end of the heartbeat after its group stopped (the batch's timeout is %v)", batchTimeout))
	if !errors.Is(err, raft.ErrTransportShutdown) {
		t.Fatalf("heartbeat of a stopped group: %v, want ErrTransportShutdown", err)
	}
}
