package actors

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/internal/testlog"
	"github.com/coppice-kv/coppice/internal/testwait"
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
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // a failed wait below leaves no actor stuck
	testwait.For(t, 5*time.Second, 10*time.Millisecond, "a slow-stop line", func() error {
		if !strings.Contains(out.String(), "stop is slow") {
			return fmt.Errorf("log:\n%s", out.String())
		}
		return nil
	})
	free()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if line := out.String(); !strings.Contains(line, want) {
		t.Fatalf("the slow-stop line does not name %s:\n%s", want, line)
	}
}
