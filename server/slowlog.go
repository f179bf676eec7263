package server

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// The slow log: commands that took longer than a threshold; a key-value
// command from the moment the port read it to its reply (so a write's
// Raft round, and its wait through a leader change, are in it), a command
// the node serves (DEBUG SLEEP, CONFIG...) over its run, unless Redis
// flags it skip_slowlog (EXEC) or refuses it for its arity. SLOWLOG GET, LEN and
// RESET read it as Redis's do; its entries are Redis's, with arguments cut
// as Redis cuts them.
const (
	// DefaultSlowlogSlowerThan is Redis's slowlog-log-slower-than: 10 ms.
	DefaultSlowlogSlowerThan = 10 * time.Millisecond
	// DefaultSlowlogMaxLen is Redis's slowlog-max-len.
	DefaultSlowlogMaxLen = 128

	slowlogMaxArgs     = 32  // arguments kept; the last says how many more
	slowlogMaxArgBytes = 128 // bytes kept of an argument
)

type slowEntry struct {
	id   int64
	at   time.Time
	took time.Duration
	args [][]byte
	addr string
	name string
}

type slowlog struct {
	mu      sync.Mutex
	nextID  int64
	entries []slowEntry // newest last, at most maxLen

	// slowerThan (negative: log nothing) and maxLen are
	// slowlog-log-slower-than and slowlog-max-len: from the port's
	// configuration when it first opens, from CONFIG SET since (the log
	// outlives the port's restarts, and so do they).
	slowerThan, maxLen atomic.Int64
	configured         atomic.Bool
}

// configure takes cfg's thresholds unless the log has some already.
func (l *slowlog) configure(cfg Config) {
	if l.configured.CompareAndSwap(false, true) {
		l.slowerThan.Store(int64(cfg.SlowlogSlowerThan))
		l.maxLen.Store(int64(cfg.SlowlogMaxLen))
	}
}

// slow reports whether a command that took took goes into the log.
func (l *slowlog) slow(took time.Duration) bool {
	limit := l.slowerThan.Load()
	return l.maxLen.Load() > 0 && limit >= 0 && int64(took) >= limit
}

// add records a command that took took (over the threshold: the caller
// checks); the log keeps the newest maxLen.
func (l *slowlog) add(took time.Duration, args [][]byte, addr, name string) {
	maxLen := int(min(l.maxLen.Load(), math.MaxInt32))
	kept := make([][]byte, 0, min(len(args), slowlogMaxArgs))
	redact := redacted(args)
	for i, a := range args {
		if i == slowlogMaxArgs-1 && len(args) > slowlogMaxArgs {
			kept = append(kept, fmt.Appendf(nil, "... (%d more arguments)", len(args)-i))
			break
		}
		if redact(i) {
			kept = append(kept, []byte("(redacted)"))
			continue
		}
		if len(a) > slowlogMaxArgBytes {
			kept = append(kept, fmt.Appendf(append([]byte(nil), a[:slowlogMaxArgBytes]...), "... (%d more bytes)", len(a)-slowlogMaxArgBytes))
			continue
		}
		kept = append(kept, append([]byte(nil), a...))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, slowEntry{id: l.nextID, at: time.Now(), took: took, args: kept, addr: addr, name: name})
	l.nextID++
	if over := len(l.entries) - maxLen; over > 0 {
		l.entries = append(l.entries[:0], l.entries[over:]...)
	}
}

// slowlogCmd answers SLOWLOG GET [count], LEN, RESET and HELP.
func (s *Server) slowlogCmd(args [][]byte) *messages.Reply {
	l := &s.stats.slow
	sub := ""
	if len(args) >= 2 {
		sub = strings.ToLower(string(args[1]))
	}
	switch {
	case sub == "get" && len(args) <= 3:
		count := 10
		if len(args) == 3 {
			n, err := strconv.ParseInt(string(args[2]), 10, 64)
			if err != nil || n < -1 {
				return errorf("ERR count should be greater than or equal to -1")
			}
			count = int(min(n, math.MaxInt32))
			if n == -1 {
				count = math.MaxInt
			}
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		var items []*messages.Reply
		for i := len(l.entries) - 1; i >= 0 && len(items) < count; i-- {
			e := l.entries[i]
			argv := make([]*messages.Reply, len(e.args))
			for j, a := range e.args {
				argv[j] = bulk(a)
			}
			items = append(items, array(integer(e.id), integer(e.at.Unix()), integer(e.took.Microseconds()),
				array(argv...), bulkString(e.addr), bulkString(e.name)))
		}
		return array(items...)
	case sub == "len" && len(args) == 2:
		l.mu.Lock()
		defer l.mu.Unlock()
		return integer(int64(len(l.entries)))
	case sub == "reset" && len(args) == 2:
		l.mu.Lock()
		defer l.mu.Unlock()
		l.entries = nil
		return replyOK
	case sub == "help" && len(args) == 2:
		return kv.HelpReply("SLOWLOG",
			"GET [<count>]",
			"    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
			"    Entries are made of:",
			"    id, timestamp, time in microseconds, arguments array, client IP and port,",
			"    client name",
			"LEN",
			"    Return the length of the slowlog.",
			"RESET",
			"    Reset the slowlog.")
	case sub == "get" || sub == "len" || sub == "reset" || sub == "help":
		return errorf(fmt.Sprintf("ERR wrong number of arguments for 'slowlog|%s' command", sub))
	case len(args) < 2:
		return arityError("slowlog")
	}
	return errorf(fmt.Sprintf("ERR unknown subcommand '%s'. Try SLOWLOG HELP.", args[1]))
}
