package server

// MONITOR, as Redis 7.0's: every command this node's clients run, as a
// status line to each monitoring connection ("+<time> [0 <addr>] "cmd"
// "arg" ..."), but the ones Redis leaves out (unknown, wrong arity, admin
// commands), with AUTH's and HELLO's secrets redacted; a transaction's
// commands at its EXEC, before it. A node's monitor sees that node's
// clients (as a Redis Cluster node's does its own), a script as its EVAL
// (or FCALL), then its calls as the client "lua", as Redis shows them:
// they run inside the script's shard, and come back with its reply
// (messages.ScriptTrace).

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coppice-kv/coppice/kv"
)

// monitors are the connections in MONITOR mode.
type monitors struct {
	n     atomic.Int32
	mu    sync.Mutex
	conns map[*conn]struct{}
}

// monitor: MONITOR turns the connection into a monitor.
func (c *conn) monitor() {
	c.openOutbox()
	m := &c.s.monitors
	m.mu.Lock()
	if m.conns == nil {
		m.conns = map[*conn]struct{}{}
	}
	if _, ok := m.conns[c]; !ok {
		m.conns[c] = struct{}{}
		m.n.Add(1)
	}
	m.mu.Unlock()
	c.monitoring.Store(true)
	c.reply(replyOK)
}

// unmonitor takes the connection off the monitors (RESET, or as it goes).
func (c *conn) unmonitor() {
	if !c.monitoring.Load() {
		return
	}
	m := &c.s.monitors
	m.mu.Lock()
	if _, ok := m.conns[c]; ok {
		delete(m.conns, c)
		m.n.Add(-1)
	}
	m.mu.Unlock()
	c.monitoring.Store(false)
}

// feedMonitors shows a command the connection runs to the monitors.
func (c *conn) feedMonitors(args [][]byte) {
	if c.s.monitors.n.Load() == 0 {
		return // no monitor: no address to format
	}
	c.s.feedMonitors(c.nc.RemoteAddr().String(), args)
}

// feedMonitors shows the monitors a command run by the client at addr
// ("lua" for a script's call, as Redis names it).
func (s *Server) feedMonitors(addr string, args [][]byte) {
	m := &s.monitors
	if m.n.Load() == 0 || !monitored(args) {
		return
	}
	now := time.Now()
	var b strings.Builder
	fmt.Fprintf(&b, "%d.%06d [0 %s]", now.Unix(), now.Nanosecond()/1000, addr)
	redact := redacted(args)
	for i, a := range args {
		b.WriteByte(' ')
		if redact(i) {
			b.WriteString(`"(redacted)"`)
			continue
		}
		b.WriteString(quoteRepr(a))
	}
	line := status(b.String())
	size := int64(b.Len() + 8)
	m.mu.Lock()
	defer m.mu.Unlock()
	for mc := range m.conns {
		if !mc.box.add(line, size) && mc.box.kill() {
			mc.nc.Close() // a monitor that does not read
		}
	}
}

// monitored reports whether Redis shows args to its monitors: a known
// command with its arity, not an admin one (nor an admin subcommand).
func monitored(args [][]byte) bool {
	spec, ok := kv.Lookup(args[0])
	if !ok || kv.CheckArity(args) != nil || spec.Has("admin") {
		return false
	}
	if len(args) > 1 {
		if sub := spec.Sub(args[1]); sub != nil {
			return !sub.Has("admin")
		}
	}
	return true
}

// redacted tells which arguments of args the monitors and the slow log
// see as "(redacted)", as Redis's redactClientCommandArgument: AUTH's,
// HELLO's AUTH username and password, every argument of ACL SETUSER after
// the subcommand, MIGRATE's AUTH and AUTH2 credentials, and the values of
// CONFIG SET's secret parameters.
func redacted(args [][]byte) func(i int) bool {
	if len(args) == 0 {
		return func(int) bool { return false }
	}
	switch strings.ToLower(string(args[0])) {
	case "auth":
		return func(i int) bool { return i > 0 }
	case "hello":
		for i := 2; i+2 < len(args); i++ {
			if strings.EqualFold(string(args[i]), "auth") {
				return func(j int) bool { return j == i+1 || j == i+2 }
			}
		}
	case "acl":
		if len(args) > 2 && strings.EqualFold(string(args[1]), "setuser") {
			return func(i int) bool { return i >= 2 }
		}
	case "migrate":
		// Its options in order, as MIGRATE reads them, up to KEYS.
		secret := map[int]bool{}
		for j := 6; j < len(args); j++ {
			switch strings.ToLower(string(args[j])) {
			case "auth":
				secret[j+1] = true
				j++
			case "auth2":
				secret[j+1], secret[j+2] = true, true
				j += 2
			case "keys":
				j = len(args)
			}
		}
		return func(j int) bool { return secret[j] }
	case "config":
		if len(args) > 3 && strings.EqualFold(string(args[1]), "set") {
			return func(j int) bool { return j > 2 && j%2 == 1 && secretConfigs[strings.ToLower(string(args[j-1]))] }
		}
	}
	return func(int) bool { return false }
}

// secretConfigs are Redis's SENSITIVE_CONFIG parameters.
var secretConfigs = map[string]bool{"requirepass": true, "masterauth": true, "tls-key-file-pass": true, "tls-client-key-file-pass": true}

// quoteRepr is Redis's sdscatrepr: a string in double quotes, with \\,
// \", \n, \r, \t, \a, \b escaped and other bytes outside printable ASCII
// as \xhh.
func quoteRepr(s []byte) string {
	b := []byte{'"'}
	for _, ch := range s {
		switch ch {
		case '\\', '"':
			b = append(b, '\\', ch)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\a':
			b = append(b, '\\', 'a')
		case '\b':
			b = append(b, '\\', 'b')
		default:
			if ch >= 0x20 && ch < 0x7f {
				b = append(b, ch)
			} else {
				b = append(b, `\x`...)
				b = strconv.AppendUint(b, uint64(ch>>4), 16)
				b = strconv.AppendUint(b, uint64(ch&15), 16)
			}
		}
	}
	return string(append(b, '"'))
}
