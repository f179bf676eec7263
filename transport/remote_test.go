package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

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
