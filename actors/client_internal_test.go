package actors

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
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
		wantNotApplied bool
	}{
		{"write", &messages.Forward{Write: true, Command: &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), []byte("v")}}}, false},
		{"read", &messages.Forward{Command: &messages.Command{Args: [][]byte{[]byte("GET"), []byte("k")}}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			done := make(chan *messages.ForwardReply, 1)
			go func() { done <- b.runForwarded(ctx, tc.fwd) }()
			select {
			case r := <-done:
				if e := r.GetReply().GetError(); !strings.HasPrefix(e, "TRYAGAIN ") || !strings.Contains(e, "request ended") {
					t.Errorf("reply %q, want TRYAGAIN naming the request's end", e)
				}
				if r.NotApplied != tc.wantNotApplied {
					t.Errorf("NotApplied %v, want %v", r.NotApplied, tc.wantNotApplied)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("still waiting 5 s after its request ended")
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
