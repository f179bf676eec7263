package actors

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/internal/testlog"
	"github.com/coppice-kv/coppice/supervisor"
)

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
	var out testlog.Buffer
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
