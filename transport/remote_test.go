package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testcerts"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func listen(t *testing.T, h Handler) (*Mux, *Remote) {
	t.Helper()
	m, err := Listen("127.0.0.1:0", "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRemote(m, h, 2*time.Second)
	t.Cleanup(func() { r.Close(); m.Close() })
	return m, r
}

func echo(ctx context.Context, target string, msg proto.Message) (proto.Message, error) {
	switch m := msg.(type) {
	case *wrapperspb.StringValue:
		if m.Value == "fail" {
			return nil, errors.New("refused")
		}
		if m.Value == "slow" {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return wrapperspb.String(target + ":" + m.Value), nil
	}
	return nil, errors.New("unexpected message")
}

func TestRemoteRequests(t *testing.T) {
	srv, _ := listen(t, echo)
	_, cli := listen(t, echo)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Many requests at once share one connection and each gets its own answer.
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			want := "a/b:" + strings.Repeat("x", i)
			got, err := cli.Request(ctx, srv.Addr().String(), "a/b", wrapperspb.String(strings.Repeat("x", i)))
			if err != nil {
				errs <- err
				return
			}
			if v := got.(*wrapperspb.StringValue).Value; v != want {
				errs <- errors.New("got " + v + ", want " + want)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// A handler's error comes back as a RemoteError naming the target.
	_, err := cli.Request(ctx, srv.Addr().String(), "a/b", wrapperspb.String("fail"))
	var re *RemoteError
	if !errors.As(err, &re) || re.Target != "a/b" || re.Text != "refused" {
		t.Fatalf("got %v, want a RemoteError for a/b: refused", err)
	}

	// The caller's deadline bounds a request the far side does not answer.
	short, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if _, err := cli.Request(short, srv.Addr().String(), "a/b", wrapperspb.String("slow")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow request: got %v, want deadline exceeded", err)
	}
}

func TestRemoteFailsFastWhenPeerGoes(t *testing.T) {
	srv, srvRemote := listen(t, echo)
	_, cli := listen(t, echo)
	addr := srv.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Request(ctx, addr, "x", wrapperspb.String("hi")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := cli.Request(ctx, addr, "x", wrapperspb.String("slow"))
		done <- err
	}()
	// Give the request time to be in flight, then take the server away.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		srvRemote.mu.Lock()
		n := len(srvRemote.served)
		srvRemote.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	srvRemote.Close()
	srv.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrConnLost) {
			t.Fatalf("got %v, want ErrConnLost", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a request to a closed peer did not fail within 3s")
	}
	if _, err := cli.Request(ctx, addr, "x", wrapperspb.String("hi")); err == nil {
		t.Fatal("a request to a closed peer succeeded")
	}
}

func TestRemoteRejectsOversizedFrame(t *testing.T) {
	srv, _ := listen(t, echo)
	c, err := srv.Layer(StreamRemote).Dial(raft.ServerAddress(srv.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], maxFrame+1)
	c.Write(hdr[:])
	// The server drops the connection without allocating the claimed size.
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := bufio.NewReader(c).ReadByte(); err == nil {
		t.Fatal("the server answered an oversized frame")
	} else if strings.Contains(err.Error(), "timeout") {
		t.Fatal("the server kept a connection that announced an oversized frame")
	}
}

// TestDeadPeerHoldsUpNobody: a dial that hangs (a peer that takes the TCP
// connection and never answers the TLS handshake) ends with its caller's
// context, and requests to a live node go on meanwhile; the failed dial
// then answers at once for a while instead of every caller dialing again.
func TestDeadPeerHoldsUpNobody(t *testing.T) {
	ca := testcerts.NewCA(t, "cluster")
	srv, _ := listenTLS(t, NewMutualTLS(ca.KeyPair(t, "srv"), ca.Pool()), nil)
	_, cli := listenTLS(t, NewMutualTLS(ca.KeyPair(t, "cli"), ca.Pool()), nil)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never read
		}
	}()
	dead := silent.Addr().String()

	const deadWait = 1500 * time.Millisecond
	deadDone := make(chan error, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadWait)
		defer cancel()
		_, err := cli.Request(ctx, dead, "a/b", wrapperspb.String("x"))
		deadDone <- err
	}()
	// The dead dial is under way (it holds no lock): a live request
	// completes well before it ends.
	ctx, cancel := context.WithTimeout(context.Background(), deadWait/2)
	defer cancel()
	if got, err := cli.Request(ctx, srv.Addr().String(), "a/b", wrapperspb.String("live")); err != nil || got.(*wrapperspb.StringValue).Value != "a/b:live" {
		t.Fatalf("live request while a dead peer is dialed: %v, %v", got, err)
	}
	select {
	case err := <-deadDone:
		if err == nil {
			t.Fatal("request to a silent peer succeeded")
		}
		if d := time.Since(start); d < deadWait-100*time.Millisecond || d > deadWait+time.Second {
			t.Fatalf("request to a silent peer ended after %v, its context allowed %v", d, deadWait)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request to a silent peer did not end with its context")
	}
	// Right after, the remembered failure answers without a dial.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	t0 := time.Now()
	if _, err := cli.Request(ctx2, dead, "a/b", wrapperspb.String("x")); err == nil {
		t.Fatal("second request to a silent peer succeeded")
	}
	if d := time.Since(t0); d > redialAfter/2 {
		t.Fatalf("second request to a silent peer took %v: it dialed again", d)
	}
}

// TestSilentConnectionIsDropped: a request that times out while nothing
// at all comes back on its connection drops the connection (a peer cut off
// without a reset), so the next request dials afresh; a request that
// times out while other answers arrive leaves the connection alone.
func TestSilentConnectionIsDropped(t *testing.T) {
	srv, _ := listen(t, echo)
	_, cli := listen(t, echo)
	addr := srv.Addr().String()
	conn := func() *remoteConn {
		cli.mu.Lock()
		defer cli.mu.Unlock()
		return cli.conns[addr]
	}
	ask := func(timeout time.Duration, v string) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := cli.Request(ctx, addr, "a/b", wrapperspb.String(v))
		return err
	}
	if err := ask(time.Second, "x"); err != nil {
		t.Fatal(err)
	}
	first := conn()

	// Nothing comes back at all: dropped, and the next request redials.
	if err := ask(staleAfter+200*time.Millisecond, "slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow request: %v, want a deadline", err)
	}
	if !first.dead() {
		t.Fatal("a connection silent for a whole request was kept")
	}
	if err := ask(time.Second, "x"); err != nil {
		t.Fatal(err)
	}
	second := conn()
	if second == nil || second == first {
		t.Fatal("the next request did not dial a new connection")
	}

	// Answers keep arriving while a slow one waits: the connection stays.
	done := make(chan error, 1)
	go func() { done <- ask(staleAfter+300*time.Millisecond, "slow") }()
	deadline := time.Now().Add(staleAfter + 300*time.Millisecond)
	for time.Now().Before(deadline) {
		if err := ask(time.Second, "x"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // pacing the fast requests
	}
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow request: %v, want a deadline", err)
	}
	if conn() != second || second.dead() {
		t.Fatal("a connection that kept answering was dropped")
	}
}
