package actors

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// TestRaftLoggerFollowsTheNodeLog: raft's lines come out through the
// node's slog handler (JSON here) with their component; raft's info lines
// only when the node logs at debug.
func TestRaftLoggerFollowsTheNodeLog(t *testing.T) {
	var buf bytes.Buffer
	node := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l := raftLogger(node, "raft-3").With("peer", "n2")
	l.Info("entering follower state")
	l.Warn("heartbeat timeout reached", "last-leader-id", "n1")
	l.Named("snapshot").Error("failed to take snapshot", "error", "boom")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want the warning and the error only at info level, got %d lines:\n%s", len(lines), buf.String())
	}
	var warn, errl map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &warn); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &errl); err != nil {
		t.Fatal(err)
	}
	if warn["level"] != "WARN" || warn["component"] != "raft-3" || warn["peer"] != "n2" || warn["last-leader-id"] != "n1" {
		t.Fatalf("warning line: %v", warn)
	}
	if errl["level"] != "ERROR" || errl["subsystem"] != "raft-3.snapshot" || errl["error"] != "boom" {
		t.Fatalf("error line: %v", errl)
	}

	buf.Reset()
	debug := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	raftLogger(debug, "raft-0").Info("entering follower state")
	if !strings.Contains(buf.String(), `"msg":"entering follower state"`) {
		t.Fatalf("at debug level raft's info line is missing: %q", buf.String())
	}
	if raftLogger(nil, "raft-0").IsWarn() {
		t.Fatal("a nil node logger discards")
	}
}
