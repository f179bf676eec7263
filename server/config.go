package server

import (
	"fmt"
	"maps"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// config answers CONFIG GET with the few parameters clients ask for
// (redis-benchmark asks for save and appendonly), and CONFIG SET of the
// one a client may change, notify-keyspace-events (for this node).
func (s *Server) config(args [][]byte) *messages.Reply {
	if len(args) < 2 {
		return arityError("config")
	}
	sub := strings.ToLower(string(args[1]))
	switch sub {
	case "get":
		if len(args) < 3 {
			return errorf("ERR wrong number of arguments for 'config|get' command")
		}
		params := s.configParams()
		var items []*messages.Reply
		for _, pat := range args[2:] {
			for _, name := range sortedKeys(params) {
				if ok, _ := path.Match(strings.ToLower(string(pat)), name); ok {
					items = append(items, bulkString(name), bulkString(params[name]))
				}
			}
		}
		return mapReply(items...)
	case "resetstat":
		if len(args) != 2 {
			return errorf("ERR wrong number of arguments for 'config|resetstat' command")
		}
		s.stats.resetInfo()
		s.stats.resetHistograms()
		return replyOK
	case "set":
		return s.configSet(args[2:])
	case "rewrite":
		// No configuration file: the node's flags configure it.
		if len(args) != 2 {
			return errorf("ERR wrong number of arguments for 'config|rewrite' command")
		}
		return errorf("ERR The server is running without a config file")
	case "help":
		if len(args) != 2 {
			return errorf("ERR wrong number of arguments for 'config|help' command")
		}
		return helpReply([]string{
			"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GET <pattern>",
			"    Return parameters matching the glob-like <pattern> and their values.",
			"SET <directive> <value>",
			"    Set the configuration <directive> to <value>.",
			"RESETSTAT",
			"    Reset statistics reported by the INFO command.",
			"REWRITE",
			"    Rewrite the configuration file.",
			"HELP",
			"    Prints this help.",
		})
	}
	return errorf(fmt.Sprintf("ERR unknown subcommand '%s'. Try CONFIG HELP.", args[1]))
}

// configParams are the parameters CONFIG GET answers, with their values.
func (s *Server) configParams() map[string]string {
	return map[string]string{
		"save": "", "appendonly": "yes", "appendfsync": "always", "databases": "1",
		"maxclients": fmt.Sprint(s.cfg.MaxClients), "port": portOf(s.Addr().String()),
		"proto-max-bulk-len":                fmt.Sprint(s.cfg.Limits.MaxBulkLen),
		"slowlog-log-slower-than":           fmt.Sprint(max(time.Duration(s.stats.slow.slowerThan.Load()).Microseconds(), -1)),
		"slowlog-max-len":                   fmt.Sprint(s.stats.slow.maxLen.Load()),
		"notify-keyspace-events":            s.cfg.Notify.Load().String(),
		"latency-monitor-threshold":         fmt.Sprint(s.stats.latency.threshold.Load()),
		"latency-tracking":                  yesNo(!s.stats.latencyTrackingOff.Load()),
		"latency-tracking-info-percentiles": formatPercentiles(s.stats.percentiles()),
	}
}

// configSet is CONFIG SET name value [name value ...], all or nothing, as
// Redis's: notify-keyspace-events, slowlog-log-slower-than and
// slowlog-max-len may change (on this node); the node's flags set the
// others.
func (s *Server) configSet(pairs [][]byte) *messages.Reply {
	if len(pairs) < 2 || len(pairs)%2 != 0 {
		return errorf("ERR wrong number of arguments for 'config|set' command")
	}
	failed := func(name []byte, why string) *messages.Reply {
		return errorf(fmt.Sprintf("ERR CONFIG SET failed (possibly related to argument '%s') - %s", name, why))
	}
	known := s.configParams()
	var apply []func()
	seen := map[string]bool{}
	for i := 0; i < len(pairs); i += 2 {
		name := strings.ToLower(string(pairs[i]))
		if _, ok := known[name]; !ok {
			return errorf(fmt.Sprintf("ERR Unknown option or number of arguments for CONFIG SET - '%s'", pairs[i]))
		}
		if seen[name] {
			return failed(pairs[i], "duplicate parameter")
		}
		seen[name] = true
		value := string(pairs[i+1])
		switch name {
		case "notify-keyspace-events":
			classes, ok := kv.ParseClasses(value)
			if !ok {
				return failed(pairs[i], kv.BadEventClass)
			}
			apply = append(apply, func() { s.cfg.Notify.Store(classes) })
		case "latency-monitor-threshold":
			n, err := strconv.ParseInt(value, 10, 64)
			switch {
			case err != nil:
				return failed(pairs[i], "argument couldn't be parsed into an integer")
			case n < 0:
				return failed(pairs[i], "argument must be between 0 and 9223372036854775807 inclusive")
			}
			apply = append(apply, func() { s.stats.latency.threshold.Store(n) })
		case "latency-tracking-info-percentiles":
			ps, why := parsePercentiles(value)
			if why != "" {
				return failed(pairs[i], why)
			}
			apply = append(apply, func() { s.stats.latencyPercentiles.Store(&ps) })
		case "latency-tracking":
			on, ok := parseYesNo(value)
			if !ok {
				return failed(pairs[i], "argument must be 'yes' or 'no'")
			}
			apply = append(apply, func() { s.stats.latencyTrackingOff.Store(!on) })
		case "slowlog-log-slower-than", "slowlog-max-len":
			lo := int64(-1)
			if name == "slowlog-max-len" {
				lo = 0
			}
			n, err := strconv.ParseInt(value, 10, 64)
			switch {
			case err != nil:
				return failed(pairs[i], "argument couldn't be parsed into an integer")
			case n < lo:
				return failed(pairs[i], fmt.Sprintf("argument must be between %d and 9223372036854775807 inclusive", lo))
			}
			if name == "slowlog-max-len" {
				apply = append(apply, func() { s.stats.slow.maxLen.Store(n) })
			} else {
				ns := int64(-1)
				if n >= 0 {
					ns = int64(time.Duration(min(n, math.MaxInt64/1000)) * time.Microsecond)
				}
				apply = append(apply, func() { s.stats.slow.slowerThan.Store(ns) })
			}
		default:
			return failed(pairs[i], "not settable on a coppice node: set it with the node's flags")
		}
	}
	for _, f := range apply {
		f()
	}
	return replyOK
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// parseYesNo reads a boolean parameter as Redis does: yes or no, in any
// case.
func parseYesNo(v string) (on, ok bool) {
	switch strings.ToLower(v) {
	case "yes":
		return true, true
	case "no":
		return false, true
	}
	return false, false
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// sortedKeys is m's keys in order.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
