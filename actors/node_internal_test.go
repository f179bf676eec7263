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
	"github.com/coppice-kv/coppice/messages"
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

// protoactor-go's own lines pass at warning level and above only, also
// through the loggers made from it With attributes (as protoactor makes
// its own): its info lines ("[ACTOR] Recovering" for every crash and
// every supervisor.Exit) are what the supervisor events report.
func TestProtoactorLogsWarningsOnly(t *testing.T) {
	var buf testlog.Buffer
	log := protoactorLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	for _, l := range []*slog.Logger{log, log.With("self", "node/syncs/sync-1"), log.WithGroup("g")} {
		l.Info("[ACTOR] Recovering", "reason", "exit")
		l.Debug("a debug line")
		l.Warn("a warning")
	}
	if n := buf.Count("Recovering") + buf.Count("a debug line"); n != 0 {
		t.Errorf("%d of protoactor's info and debug lines logged:\n%s", n, buf.String())
	}
	if n := buf.Count("a warning"); n != 3 {
		t.Errorf("%d of protoactor's 3 warnings logged:\n%s", n, buf.String())
	}
}

// A child's normal exit (a sync that finished) is logged at debug level,
// a crash at warning level, a Go runtime error (a bug) at error level with
// its stack.
func TestChildExitsLoggedByReason(t *testing.T) {
	var buf testlog.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for kind, want := range map[messages.ExitKind]string{
		messages.ExitKind_EXIT_NORMAL: "level=DEBUG",
		messages.ExitKind_EXIT_CRASH:  "level=WARN",
		messages.ExitKind_EXIT_KILLED: "level=WARN",
	} {
		logEvent(log, &messages.SupervisorEvent{Kind: messages.EventKind_CHILD_EXITED, Supervisor: "node/syncs", ChildId: "sync-1",
			Reason: &messages.ExitReason{Kind: kind}})
		line := buf.String()[strings.LastIndex(strings.TrimSuffix(buf.String(), "\n"), "\n")+1:]
		if !strings.HasPrefix(strings.SplitN(line, " ", 2)[1], want) {
			t.Errorf("exit %s logged as %q, want %s", kind, line, want)
		}
	}
	logEvent(log, &messages.SupervisorEvent{Kind: messages.EventKind_CHILD_EXITED, Supervisor: "node/shards", ChildId: "shard-1",
		Reason: &messages.ExitReason{Kind: messages.ExitKind_EXIT_CRASH, Detail: "runtime panic: index out of range", Stack: "goroutine 7 [running]:\nmain.f()"}})
	line := buf.String()[strings.LastIndex(strings.TrimSuffix(buf.String(), "\n"), "\n")+1:]
	if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, `stack="goroutine 7 [running]:\nmain.f()"`) {
		t.Errorf("a runtime panic logged as %q, want level=ERROR and its stack", line)
	}
}
