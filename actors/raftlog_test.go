package actors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRaftLoggerFollowsTheNodeLog: raft's lines come out through the
// node's slog handler (JSON here) with their component; raft's info lines
// only when the node logs at debug.
func TestRaftLoggerFollowsTheNodeLog(t *testing.T) {
	var buf bytes.Buffer
	node := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l := raftLogger(node, "raft-3", nil).With("peer", "n2")
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
	raftLogger(debug, "raft-0", nil).Info("entering follower state")
	if !strings.Contains(buf.String(), `"msg":"entering follower state"`) {
		t.Fatalf("at debug level raft's info line is missing: %q", buf.String())
	}
	if raftLogger(nil, "raft-0", nil).IsWarn() {
		t.Fatal("a nil node logger discards")
	}
}

// TestRaftLoggerCollapsesRepeats: a warning or error that repeats about the
// same peer, from any group of the node, passes once per repeatWindow, the
// next one saying how many were left out; another peer's, another
// message's and debug lines pass; a line about no peer repeats per group.
func TestRaftLoggerCollapsesRepeats(t *testing.T) {
	var buf bytes.Buffer
	node := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	now := time.Unix(1000, 0)
	rep := &repeats{now: func() time.Time { return now }}
	log := raftLogger(node, "raft-1", rep).With("term", 3)
	other := raftLogger(node, "raft-2", rep) // another group of the node
	for range 4 {
		log.Error("failed to appendEntries to", "peer", "n3", "error", "connection refused")
	}
	other.Error("failed to appendEntries to", "peer", "n3", "error", "connection refused")
	log.Error("failed to appendEntries to", "peer", "n2", "error", "connection refused")
	log.Warn("failed to heartbeat to", "peer", "n3")
	log.Debug("failed to appendEntries to", "peer", "n3")
	// A vote request names its peer "target", with the term.
	log.Error("failed to make requestVote RPC", "target", "n3", "error", "connection refused", "term", 4)
	other.Error("failed to make requestVote RPC", "target", "n3", "error", "connection refused", "term", 5)
	// About no peer: each group's own.
	log.Error("failed to take snapshot", "error", "disk full")
	log.Error("failed to take snapshot", "error", "disk full")
	other.Error("failed to take snapshot", "error", "disk full")
	now = now.Add(repeatWindow)
	log.Error("failed to appendEntries to", "peer", "n3", "error", "no such stream")
	log.Error("failed to appendEntries to", "peer", "n3", "error", "no such stream")

	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		peer := m["peer"]
		if peer == nil {
			peer = m["target"]
		}
		got = append(got, fmt.Sprintf("%s %s %v %v %v", m["level"], m["msg"], peer, m["error"], m["repeated"]))
	}
	want := []string{
		"ERROR failed to appendEntries to n3 connection refused <nil>",
		"ERROR failed to appendEntries to n2 connection refused <nil>",
		"WARN failed to heartbeat to n3 <nil> <nil>",
		"DEBUG failed to appendEntries to n3 <nil> <nil>",
		"ERROR failed to make requestVote RPC n3 connection refused <nil>",
		"ERROR failed to take snapshot <nil> disk full <nil>",
		"ERROR failed to take snapshot <nil> disk full <nil>",
		"ERROR failed to appendEntries to n3 no such stream 4",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
