package actors

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/coppice-kv/coppice/internal/netfail"
	"github.com/coppice-kv/coppice/transport"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// raftLogger hands hashicorp/raft's logs (hclog) to the node's slog
// logger, so they come out in the node's format (text or JSON) with a
// "component" attribute. Raft's info lines (every election step, every
// snapshot) pass only when the node logs at debug; warnings and errors
// always pass (an error about a peer that cannot be reached as a warning,
// peerTrouble), but a line that repeats (the same message about the same
// peer from any of the groups that share rep, or about no peer from the
// same group) passes once per repeatWindow. rep nil: every line passes.
func raftLogger(log *slog.Logger, name string, rep *repeats) hclog.Logger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &slogHCLog{Logger: hclog.NewNullLogger(), log: log.With("component", name), name: name, rep: rep}
}

// repeatWindow is how often a repeated warning or error of the node's Raft
// groups passes: raft logs every failed request to a peer that is down
// (several a second per group; through a rolling restart of 3 nodes with 4
// shards, a thousand lines per node).
const repeatWindow = 10 * time.Second

// repeats passes a line once per window by its key and counts the lines
// left out in between: the node's groups' repeated warnings and errors,
// a join's failures, a foreign node's explanation (its zero value is
// ready, with repeatWindow).
type repeats struct {
	window time.Duration    // repeatWindow when 0
	now    func() time.Time // time.Now when nil
	mu     sync.Mutex
	seen   map[string]*repeated
}

type repeated struct {
	logged time.Time
	left   int // lines left out since
}

// maxRepeatKeys bounds the lines remembered; past it they are forgotten.
const maxRepeatKeys = 1024

// pass tells whether the line keyed key is logged now, and how many like
// it were left out since it last was.
func (r *repeats) pass(key string) (left int, ok bool) {
	now := time.Now()
	if r.now != nil {
		now = r.now()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil || len(r.seen) >= maxRepeatKeys {
		r.seen = map[string]*repeated{}
	}
	p := r.seen[key]
	switch {
	case p == nil:
		r.seen[key] = &repeated{logged: now}
		return 0, true
	case now.Sub(p.logged) < cmp.Or(r.window, repeatWindow):
		p.left++
		return 0, false
	}
	left = p.left
	p.logged, p.left = now, 0
	return left, true
}

// repeatKey is what makes two lines alike: the message and the peer the
// line is about (raft names it "peer", or "target" in its vote requests),
// whichever group logs it (a peer that is down fails every group's
// requests); for a line about no peer, the message and the group (name): a
// group's own trouble is told group by group.
func repeatKey(name, msg string, args []any) string {
	for i := 0; i+1 < len(args); i += 2 {
		if k, _ := args[i].(string); k == "peer" || k == "target" {
			return msg + "\x00peer\x00" + fmt.Sprint(args[i+1])
		}
	}
	return msg + "\x00group\x00" + name
}

// The messages and arguments of raft's lines that peerTrouble and routine
// tell apart, as the Raft fork logs them (TestRaftMessagesAreTheFork's
// checks that it still does).
const (
	raftNewerTerm     = "peer has newer term, stopping replication"
	raftDecodeFailed  = "failed to decode incoming command"
	raftFlushFailed   = "failed to flush response"
	raftSendingOlder  = "appendEntries rejected, sending older logs"
	raftNoPeers       = "no known peers, aborting election"
	raftPreVoteLeader = "rejecting pre-vote request since we have a leader"
	raftNoVote        = "not part of stable configuration, aborting election"
	raftNoVoteYet     = "heartbeat timeout reached, not part of a stable configuration or a non-voter, not triggering a leader election"
	raftNoPrevious    = "failed to get previous log"
	raftPreviousIndex = "previous-index"
	raftLastIndex     = "last-index"
)

// peerTrouble is the level of a line raft logs as an error: a warning
// when it is about a peer that cannot be reached or that moved on, not
// about this node: a request to a peer that failed on the network (a peer
// down, restarting, cut off), a connection a peer opened that broke, or
// replication stopped by a peer's newer term (a new election). Those are
// what every fault of another node makes each of the node's groups log.
// A request that failed because this node closed its connection (the
// group stopping) is not a fault: debug. Any other stays an error: the
// node's own trouble (its disk, its log).
func peerTrouble(msg string, args []any) hclog.Level {
	if msg == raftNewerTerm {
		return hclog.Warn
	}
	// The transport's serving side names no peer: the connection is one
	// a peer opened, and one that breaks is the peer's going.
	peer := msg == raftDecodeFailed || msg == raftFlushFailed
	var err error
	for i := 0; i+1 < len(args); i += 2 {
		switch k, _ := args[i].(string); k {
		case "peer", "target":
			peer = true
		case "error":
			err, _ = args[i+1].(error)
		}
	}
	switch {
	case !peer || err == nil:
		return hclog.Error
	case closedHere(err):
		return hclog.Debug
	case networkError(err):
		return hclog.Warn
	}
	return hclog.Error
}

// routine tells whether a warning of raft's is a step of how Raft works,
// not a fault: an info line. Each group of a node that joins logs these
// once or twice:
//   - a follower's answer to an append past the end of its log (a new,
//     restarted or lagging replica), and its leader's sending from further
//     back on that answer: how a replica catches up. A previous entry
//     missing from inside a follower's log stays a warning;
//   - a group with no configuration yet (its node waits to be added)
//     that has heard from no leader, and one whose server has no vote
//     (a replica's or read-only node's, one being added or removed) and
//     so stands for no election when its leader goes;
//   - a pre-vote refused because this server hears from its leader: a
//     restarted node asks before its leader's first heartbeat reaches
//     it, and pre-vote exists so that such a refusal costs nothing. A
//     vote refused so stays a warning (the candidate raised its term).
func routine(msg string, args []any) bool {
	switch msg {
	case raftSendingOlder, raftNoPeers, raftPreVoteLeader, raftNoVote, raftNoVoteYet:
		return true
	}
	return behindLeader(msg, args)
}

// behindLeader tells whether a warning is a follower's answer to an
// append past the end of its log.
func behindLeader(msg string, args []any) bool {
	if msg != raftNoPrevious {
		return false
	}
	var prev, last uint64
	var found int
	for i := 0; i+1 < len(args); i += 2 {
		switch k, _ := args[i].(string); k {
		case raftPreviousIndex:
			prev, _ = args[i+1].(uint64)
			found++
		case raftLastIndex:
			last, _ = args[i+1].(uint64)
			found++
		}
	}
	return found == 2 && prev > last
}

// closedHere tells whether err is that of a connection or transport this
// node closed. The text is checked too: raft's msgpack codec keeps only
// the text of the read error it wraps.
func closedHere(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, transport.ErrClosed) ||
		errors.Is(err, raft.ErrTransportShutdown) || errors.Is(err, raft.ErrPipelineShutdown) ||
		netfail.Closed(err.Error())
}

// networkError tells whether err is a failure of a connection or a dial:
// refused, reset, timed out, ended early (by type, or by text where raft's
// codec keeps only that); the node's batched heartbeats' connection lost;
// or a peer that does not serve the group yet (restarting, or not added
// back), whose refusal is the peer's state, not this node's trouble.
func networkError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, transport.ErrConnLost) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, transport.ErrUnknownPeer) || errors.Is(err, errNoGroupThere) ||
		netfail.Text(err.Error())
}

// slogHCLog implements hclog.Logger on slog. The embedded null logger
// answers what raft does not use (StandardLogger, SetLevel).
type slogHCLog struct {
	hclog.Logger
	log     *slog.Logger
	name    string
	implied []any
	rep     *repeats // the node's, shared by every group's logger
}

func (l *slogHCLog) level(lv hclog.Level) (slog.Level, bool) {
	var s slog.Level
	switch {
	case lv >= hclog.Error:
		s = slog.LevelError
	case lv == hclog.Warn:
		s = slog.LevelWarn
	case lv == hclog.Info:
		s = slog.LevelInfo
	default:
		s = slog.LevelDebug
	}
	if lv < hclog.Warn && !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return s, false
	}
	return s, l.log.Enabled(context.Background(), s)
}

func (l *slogHCLog) Log(lv hclog.Level, msg string, args ...any) {
	var all []any
	if lv >= hclog.Error {
		all = append(l.implied[:len(l.implied):len(l.implied)], args...)
		lv = peerTrouble(msg, all)
	} else if lv == hclog.Warn && routine(msg, args) {
		lv = hclog.Info
	}
	s, ok := l.level(lv)
	if !ok {
		return // before any other line's arguments are gathered
	}
	if all == nil {
		all = append(l.implied[:len(l.implied):len(l.implied)], args...)
	}
	if s >= slog.LevelWarn && l.rep != nil {
		left, pass := l.rep.pass(repeatKey(l.name, msg, all))
		if !pass {
			return
		}
		if left > 0 {
			all = append(all, "repeated", left)
		}
	}
	l.log.Log(context.Background(), s, msg, all...)
}

func (l *slogHCLog) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *slogHCLog) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *slogHCLog) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *slogHCLog) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *slogHCLog) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *slogHCLog) IsTrace() bool { _, ok := l.level(hclog.Trace); return ok }
func (l *slogHCLog) IsDebug() bool { _, ok := l.level(hclog.Debug); return ok }
func (l *slogHCLog) IsInfo() bool  { _, ok := l.level(hclog.Info); return ok }
func (l *slogHCLog) IsWarn() bool  { _, ok := l.level(hclog.Warn); return ok }
func (l *slogHCLog) IsError() bool { _, ok := l.level(hclog.Error); return ok }

func (l *slogHCLog) ImpliedArgs() []any { return l.implied }
func (l *slogHCLog) Name() string       { return l.name }

func (l *slogHCLog) With(args ...any) hclog.Logger {
	c := *l
	c.implied = append(l.implied[:len(l.implied):len(l.implied)], args...)
	return &c
}

func (l *slogHCLog) Named(name string) hclog.Logger {
	c := *l
	if l.name != "" {
		name = l.name + "." + name
	}
	c.name, c.log = name, l.log.With("subsystem", name)
	return &c
}

func (l *slogHCLog) ResetNamed(name string) hclog.Logger {
	c := *l
	c.name, c.log = name, l.log.With("subsystem", name)
	return &c
}
