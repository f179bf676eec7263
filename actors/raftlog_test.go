package actors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/gosource"
	"github.com/coppice-kv/coppice/transport"
	"github.com/hashicorp/raft"
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

	got := jsonLines(t, &buf, func(m map[string]any) string {
		peer := m["peer"]
		if peer == nil {
			peer = m["target"]
		}
		return fmt.Sprintf("%s %s %v %v %v", m["level"], m["msg"], peer, m["error"], m["repeated"])
	})
	sameLines(t, got, []string{
		"ERROR failed to appendEntries to n3 connection refused <nil>",
		"ERROR failed to appendEntries to n2 connection refused <nil>",
		"WARN failed to heartbeat to n3 <nil> <nil>",
		"DEBUG failed to appendEntries to n3 <nil> <nil>",
		"ERROR failed to make requestVote RPC n3 connection refused <nil>",
		"ERROR failed to take snapshot <nil> disk full <nil>",
		"ERROR failed to take snapshot <nil> disk full <nil>",
		"ERROR failed to appendEntries to n3 no such stream 4",
	})
}

// jsonLines is each JSON line of buf, as line makes it.
func jsonLines(t *testing.T, buf *bytes.Buffer, line func(map[string]any) string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, line(m))
	}
	return out
}

// sameLines fails unless got is want.
func sameLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRaftLoggerPeerTroubleIsAWarning: raft's errors about a peer it
// cannot reach (refused, timed out, reset, ended) or that has moved to a
// newer term pass as warnings, and those of a connection this node closed
// at debug level (not at info); its errors about this node's own trouble,
// or a peer's answer that is not a network failure, stay errors.
func TestRaftLoggerPeerTroubleIsAWarning(t *testing.T) {
	var buf bytes.Buffer
	log := raftLogger(slog.New(slog.NewJSONHandler(&buf, nil)), "raft-1", nil)
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	log.Error("failed to appendEntries to", "peer", "n3", "error", refused)
	log.Error("failed to heartbeat to", "peer", "127.0.0.1:7381", "backoff time", time.Second, "error", fmt.Errorf("read: %w", os.ErrDeadlineExceeded))
	log.Error("failed to make requestVote RPC", "target", "n2", "error", io.EOF, "term", 4)
	log.With("peer", "n2").Error("failed to pipeline appendEntries", "error", transport.ErrClosed)
	log.Error("failed to appendEntries to", "peer", "n2", "error", &net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed})
	log.Error("failed to heartbeat to", "peer", "n2", "error", raft.ErrTransportShutdown)
	// raft's codec keeps only the text of the error it wraps.
	log.Error("failed to make requestVote RPC", "target", "n2", "error", errors.New("msgpack decode error [pos 64]: read tcp 10.0.0.1:45766->10.0.0.2:7380: use of closed network connection"))
	log.Error("failed to heartbeat to", "peer", "n3", "error", fmt.Errorf("%w: requests waited 1s and more in silence", transport.ErrConnLost))
	log.Error("failed to appendEntries to", "peer", "n2", "error", errors.New("msgpack decode error [pos 64]: read tcp 10.0.0.1:45766->10.0.0.2:7380: read: connection reset by peer"))
	log.Error("failed to appendEntries to", "peer", "n2", "error", fmt.Errorf("%w: node %q at 10.0.0.2:7380 serves no stream 4", transport.ErrUnknownPeer, "n2"))
	log.Error("failed to heartbeat to", "peer", "n2", "error", fmt.Errorf("raft heartbeat to n2: %w: no Raft group on stream 4 on this node", errNoGroupThere))
	// The transport's serving side, a connection a peer opened.
	log.Error("failed to flush response", "error", &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)})
	log.Error("failed to decode incoming command", "error", &net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed})
	log.Error("failed to decode incoming command", "error", errors.New("unknown rpc type 9"))
	log.Error("peer has newer term, stopping replication", "peer", "n2")
	log.Error("failed to appendEntries to", "peer", "n3", "error", raft.ErrWrongPeer)
	log.Error("failed to get log", "index", 7, "error", refused) // no peer: this node's own
	log.Error("failed to persist vote", "error", errors.New("disk full"))

	got := jsonLines(t, &buf, func(m map[string]any) string { return fmt.Sprintf("%s %s", m["level"], m["msg"]) })
	sameLines(t, got, []string{
		"WARN failed to appendEntries to",
		"WARN failed to heartbeat to",
		"WARN failed to make requestVote RPC",
		"WARN failed to heartbeat to",
		"WARN failed to appendEntries to",
		"WARN failed to appendEntries to",
		"WARN failed to heartbeat to",
		"WARN failed to flush response",
		"ERROR failed to decode incoming command",
		"WARN peer has newer term, stopping replication",
		"ERROR failed to appendEntries to",
		"ERROR failed to get log",
		"ERROR failed to persist vote",
	})
}

// How a replica catches up (a follower behind its leader's append, the
// leader sending from further back), a group waiting to be added, a
// server with no vote standing for no election and a pre-vote refused
// for a leader heard from are info lines; a previous
// entry missing from inside a follower's log, a vote refused so, or a
// missed heartbeat, are warnings still.
func TestRaftLoggerRoutineIsInfo(t *testing.T) {
	var buf bytes.Buffer
	log := raftLogger(slog.New(slog.NewJSONHandler(&buf, nil)), "raft-1", nil)
	notFound := errors.New("log not found")
	log.Warn("failed to get previous log", "previous-index", uint64(5), "last-index", uint64(0), "error", notFound)
	log.Warn("failed to get previous log", "previous-index", uint64(5), "last-index", uint64(9), "error", notFound)
	log.Warn("failed to get previous log", "previous-index", "5", "last-index", uint64(0), "error", notFound)
	log.With("peer", "{Suffrage:Voter ID:n3 Address:127.0.0.1:7380}").Warn("appendEntries rejected, sending older logs", "next", 1)
	log.Warn("no known peers, aborting election")
	log.Warn("not part of stable configuration, aborting election")
	log.Warn("heartbeat timeout reached, not part of a stable configuration or a non-voter, not triggering a leader election")
	log.Warn("rejecting pre-vote request since we have a leader", "from", "127.0.0.1:7380", "leader", "127.0.0.1:7381", "leader-id", "n1")
	log.Warn("rejecting vote request since we have a leader", "from", "127.0.0.1:7380", "leader", "127.0.0.1:7381", "leader-id", "n1")
	log.Warn("heartbeat timeout reached, starting election", "last-leader-addr", "", "last-leader-id", "")

	got := jsonLines(t, &buf, func(m map[string]any) string {
		return fmt.Sprintf("%s %s %v", m["level"], m["msg"], m["last-index"])
	})
	sameLines(t, got, []string{
		"WARN failed to get previous log 9",
		"WARN failed to get previous log 0",
		"WARN rejecting vote request since we have a leader <nil>",
		"WARN heartbeat timeout reached, starting election <nil>",
	})
}

// The lines raftLogger's rules name are lines the Raft fork logs: a
// change of its wording (an upstream merge) fails here, not silently in
// the node's log levels.
func TestRaftMessagesAreTheFork(t *testing.T) {
	src := gosource.Text(t, false, "../third_party/hashicorp-raft")
	for _, s := range []string{raftNewerTerm, raftDecodeFailed, raftFlushFailed, raftSendingOlder, raftNoPeers,
		raftPreVoteLeader, raftNoVote, raftNoVoteYet, raftNoPrevious, raftPreviousIndex, raftLastIndex} {
		if !strings.Contains(src, strconv.Quote(s)) {
			t.Errorf("the Raft fork logs no %q", s)
		}
	}
}
