package actors

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/supervisor"
)

// syncBuffer is a log destination safe for several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A stop that takes long logs the actor it waits for, while it waits.
func TestSlowStopNamesTheActor(t *testing.T) {
	defer func(d time.Duration) { slowStop = d }(slowStop)
	slowStop = 50 * time.Millisecond
	release := make(chan struct{})
	stuck := supervisor.Worker("stuck", func() actor.Actor {
		return actor.ReceiveFunc(func(ctx actor.Context) {
			if _, ok := ctx.Message().(*actor.Stopping); ok {
				<-release
			}
		})
	})
	stuck.Shutdown = supervisor.Infinity
	var out syncBuffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := Start(ctx, Config{User: []supervisor.ChildSpec{stuck}}, log)
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- n.Stop(ctx) }()
	want := "node/user/stuck"
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "stop is slow"); {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("no slow-stop line within 5s; log:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if line := out.String(); !strings.Contains(line, want) {
		t.Fatalf("the slow-stop line does not name %s:\n%s", want, line)
	}
}
