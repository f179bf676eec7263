package actors

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/transport"
	"google.golang.org/protobuf/proto"
)

// A write's answer is waited for longer the more bytes it carries: a
// value of hundreds of MB takes seconds to log and apply.
func TestBytesTime(t *testing.T) {
	small := &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), []byte("v")}}
	big := &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), make([]byte, 512<<20)}}
	if d := bytesTime(small); d > time.Millisecond {
		t.Errorf("a 5-byte write gets %v more", d)
	}
	if d := bytesTime(big); d < 2*time.Minute || d > 3*time.Minute {
		t.Errorf("a 512 MB write gets %v more, want about two minutes", d)
	}
}

// A command a peer forwarded stops waiting when the peer's request ends
// (the peer gave up, or the connection is closing: Remote.Close waits for
// its handlers), not after the shard's own timeouts (15 s for a write).
// Here the shard never answers; the request ends after 100 ms.
func TestForwardedCommandEndsWithItsRequest(t *testing.T) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return protoactorLogger(nil) // quiet: the shard is a dead letter
	}))
	defer sys.Shutdown()
	b := newBackend(&Runtime{Name: "n1", Shards: 1}, sys)
	b.local = true
	for _, tc := range []struct {
		name           string
		fwd            *messages.Forward
		wantPrefix     string // a write's outcome is unknown; a read's is not
		wantNotApplied bool
	}{
		{"write", &messages.Forward{Write: true, Command: &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), []byte("v")}}}, "AMBIGUOUS ", false},
		{"read", &messages.Forward{Command: &messages.Command{Args: [][]byte{[]byte("GET"), []byte("k")}}}, "TRYAGAIN ", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			done := make(chan *messages.ForwardReply, 1)
			go func() { done <- b.runForwarded(ctx, tc.fwd) }()
			r := testwait.Recv(t, done, 5*time.Second, "answer after its request ended")
			if e := r.GetReply().GetError(); !strings.HasPrefix(e, tc.wantPrefix) || !strings.Contains(e, "request ended") {
				t.Errorf("reply %q, want %snaming the request's end", e, tc.wantPrefix)
			}
			if r.NotApplied != tc.wantNotApplied {
				t.Errorf("NotApplied %v, want %v", r.NotApplied, tc.wantNotApplied)
			}
		})
	}
}

// A forwarded command's context (cancelOnly of the transport handler's)
// ends when the peer's connection goes, not at the handler's deadline: the
// command has its own timeouts, longer for a large write.
func TestCancelOnly(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	ctx, stop := cancelOnly(parent)
	<-parent.Done()
	select {
	case <-ctx.Done():
		t.Fatalf("ended with its parent's deadline: %v", context.Cause(ctx))
	case <-time.After(50 * time.Millisecond):
	}
	stop()
	if ctx.Err() == nil {
		t.Fatal("stop did not end it")
	}

	parent2, cancel2 := context.WithCancelCause(context.Background())
	ctx2, stop2 := cancelOnly(parent2)
	defer stop2()
	gone := errors.New("peer gone")
	cancel2(gone)
	select {
	case <-ctx2.Done():
		if !errors.Is(context.Cause(ctx2), gone) {
			t.Fatalf("ended with %v, want its parent's cause", context.Cause(ctx2))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("its parent's cancel did not end it within 2s")
	}
}

// The client port's commands stop waiting when the port closes (the node
// stops), not after the shard's own timeouts (15 s for a write, which a
// shard without quorum takes in full): their connections are closed, and
// the stop waits for them. Here the shard never answers.
func TestClientCommandsEndWhenThePortCloses(t *testing.T) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return protoactorLogger(nil) // quiet: the shard is a dead letter
	}))
	defer sys.Shutdown()
	b := newBackend(&Runtime{Name: "n1", Shards: 1}, sys)
	var closePort context.CancelCauseFunc
	b.ctx, closePort = context.WithCancelCause(context.Background())
	set := &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), []byte("v")}}
	get := &messages.Command{Args: [][]byte{[]byte("GET"), []byte("k")}}
	replies := make(chan *messages.Reply, 2)
	go func() { replies <- b.Propose(0, set).Wait() }()
	go func() { replies <- b.Read(0, get).Wait() }()
	select {
	case r := <-replies:
		t.Fatalf("answered before the port closed: %v", r)
	case <-time.After(100 * time.Millisecond):
	}
	closePort(errPortClosed)
	for range 2 {
		r := testwait.Recv(t, replies, 5*time.Second, "answer after the port closed")
		if e := r.GetError(); !strings.Contains(e, errPortClosed.Error()) {
			t.Errorf("reply %q, want one naming %q", e, errPortClosed)
		}
	}
}

// A node not in a shard's group (removed from the cluster, or not added
// back yet), with no leader to forward to, says so, not "no leader known".
func TestForwardFromANonMember(t *testing.T) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return protoactorLogger(nil) }))
	defer sys.Shutdown()
	rt := &Runtime{Name: "n3", Shards: 2}
	rt.setLead(0, shardLead{outside: true})
	rt.setLead(1, shardLead{})
	b := newBackend(rt, sys)
	get := &messages.Forward{Command: &messages.Command{Args: [][]byte{[]byte("GET"), []byte("k")}}}
	r, retry, _ := b.forward(0, "", "", get)
	if e := r.GetError(); !strings.HasPrefix(e, "TRYAGAIN shard 0") || !strings.Contains(e, errNotMember) || !retry {
		t.Errorf("shard 0, not a member: %q, retry %v; want TRYAGAIN naming %q", e, retry, errNotMember)
	}
	r, _, _ = b.forward(1, "", "", get)
	if e := r.GetError(); !strings.HasSuffix(e, "no leader known") {
		t.Errorf("shard 1, a member with no leader: %q, want no leader known", e)
	}
}

// A command forwarded to a leader that never got it is safe to try again
// (TRYAGAIN, retry); a write whose connection was lost after it went out
// may have been applied (AMBIGUOUS, no retry: Redis Cluster clients retry
// TRYAGAIN on their own); a read is always safe to try again.
func TestForwardFailuresSayWhetherApplied(t *testing.T) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return protoactorLogger(nil) }))
	defer sys.Shutdown()
	mux, err := transport.Listen("127.0.0.1:0", "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mux.Close()
	rt := &Runtime{Name: "n1", Shards: 1}
	rt.remote = transport.NewRemote(mux, func(context.Context, string, proto.Message) (proto.Message, error) {
		return nil, errors.New("n1 serves nothing here")
	}, 2*time.Second)
	defer rt.remote.Close()
	b := newBackend(rt, sys)

	// A leader whose connection goes once it holds the request.
	arrived := make(chan struct{}, 2)
	peerMux, err := transport.Listen("127.0.0.1:0", "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	peer := transport.NewRemote(peerMux, func(ctx context.Context, _ string, _ proto.Message) (proto.Message, error) {
		arrived <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}, 10*time.Second)
	// An address nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()

	set := &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), []byte("v")}}
	get := &messages.Command{Args: [][]byte{[]byte("GET"), []byte("k")}}
	type outcome struct {
		reply *messages.Reply
		retry bool
	}
	forward := func(addr string, fwd *messages.Forward) <-chan outcome {
		out := make(chan outcome, 1)
		go func() {
			r, retry, _ := b.forward(0, "n2", addr, fwd)
			out <- outcome{r, retry}
		}()
		return out
	}
	check := func(name string, got <-chan outcome, wantPrefix string, wantRetry bool) {
		t.Helper()
		o := testwait.Recv(t, got, 10*time.Second, name+": outcome")
		if e := o.reply.GetError(); !strings.HasPrefix(e, wantPrefix) || o.retry != wantRetry {
			t.Errorf("%s: %q, retry %v; want %s..., retry %v", name, e, o.retry, wantPrefix, wantRetry)
		}
	}
	check("write to a dead address", forward(deadAddr, &messages.Forward{Write: true, Command: set}), "TRYAGAIN ", true)
	check("read from a dead address", forward(deadAddr, &messages.Forward{Command: get}), "TRYAGAIN ", true)

	write := forward(peerMux.Addr().String(), &messages.Forward{Write: true, Command: set})
	read := forward(peerMux.Addr().String(), &messages.Forward{Command: get})
	for range 2 {
		testwait.Recv(t, arrived, 5*time.Second, "forwarded command at the leader")
	}
	peer.Close()
	peerMux.Close()
	check("write whose connection was lost", write, "AMBIGUOUS ", false)
	check("read whose connection was lost", read, "TRYAGAIN ", true)
}

// A write or a read sent to a shard whose actor is not there (stopped,
// between two incarnations) is refused at once and tried again, not left
// to its 15 s timeout and an AMBIGUOUS answer: it was never proposed.
func TestCommandToAnAbsentShardActorIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := Start(ctx, Config{}, nil) // a tree: it answers what cannot be delivered
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(ctx)
	b := newBackend(&Runtime{Name: "n1", Shards: 1}, n.System)
	set := &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), []byte("v")}}
	get := &messages.Command{Args: [][]byte{[]byte("GET"), []byte("k")}}
	for _, c := range []struct {
		name string
		p    func() *messages.Reply
	}{
		{"SET", func() *messages.Reply { return b.Propose(0, set).Wait() }},
		{"GET", func() *messages.Reply { return b.Read(0, get).Wait() }},
	} {
		start := time.Now()
		r := c.p()
		took := time.Since(start)
		if e := r.GetError(); !strings.HasPrefix(e, "TRYAGAIN shard 0") {
			t.Fatalf("%s: %v, want TRYAGAIN", c.name, r)
		}
		if took > retryWindow+2*time.Second {
			t.Fatalf("%s: answered after %v, beyond its retries (%v)", c.name, took, retryWindow)
		}
	}
}

// A write committed in its shard's log whose apply failed on the node's
// store (ErrNotApplied) is answered AMBIGUOUS, and not tried again: it is
// applied on the group's other replicas.
func TestNotAppliedWriteIsAmbiguous(t *testing.T) {
	p := &proposal{ctx: context.Background(), shard: 2, ch: make(chan proto.Message, 1),
		cmd: &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), []byte("v")}}}
	p.ch <- &messages.ProposeReply{Error: ErrNotApplied}
	r, retry := p.result()
	if e := r.GetError(); !strings.HasPrefix(e, "AMBIGUOUS shard 2: ") || !strings.Contains(e, "in the shard's log") || retry {
		t.Fatalf("a write not applied here: %q, retry %v; want AMBIGUOUS, no retry", e, retry)
	}
}
