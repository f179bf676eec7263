package server

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// config answers CONFIG GET, SET, RESETSTAT, REWRITE and HELP.
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
		return s.configGet(args[2:])
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
		return kv.HelpReply("CONFIG",
			"GET <pattern>",
			"    Return parameters matching the glob-like <pattern> and their values.",
			"SET <directive> <value>",
			"    Set the configuration <directive> to <value>.",
			"RESETSTAT",
			"    Reset statistics reported by the INFO command.",
			"REWRITE",
			"    Rewrite the configuration file.",
		)
	}
	return errorf(fmt.Sprintf("ERR unknown subcommand '%s'. Try CONFIG HELP.", args[1]))
}

// Redis 7.0's parameters (config_redis.go, from genconfig) are all
// answered by CONFIG GET: with the node's own value where the node has the
// setting (its port, address, data dir, limits, slow log, ACL...), with
// the value that describes what coppice does where Redis's setting picks
// a behaviour coppice has only one of (appendonly yes, appendfsync
// always, save "", maxmemory 0, maxmemory-policy noeviction: it never
// evicts), and with Redis's default for the rest, which tune mechanisms
// coppice does not have (encodings, the allocator, RDB and AOF files,
// Redis's replication and cluster bus).
//
// CONFIG SET checks every value as Redis does (its kind: yes or no, an
// integer within bounds, a memory value, one of a list), all before any
// is applied. A parameter the node acts on changes; any other may be "set"
// only to the value it already has, which changes nothing (a start-up
// script that sets maxmemory-policy noeviction works), and another value is
// refused with the reason, nothing changed.

type configKind int

const (
	configString configKind = iota
	configBool
	configInt
	configMemory
	configMemoryPercent // a memory value, or a percentage ("10%")
	configEnum
	configSpecial // read Redis's own way (save, bind...): only the current value is taken
	configImmutable
	configProtected
)

// redisConfig is one of Redis's parameters: its default, the kind of
// value it takes, an integer's bounds, an enum's values (multi: several,
// space-separated, as the shutdown-on-* flags).
type redisConfig struct {
	name     string
	kind     configKind
	def      string
	min, max int64
	values   []string
	multi    bool
}

// configParam is a parameter as this node has it: get reads its value
// (nil: the fixed value), set applies a checked value (nil: the node does
// not act on it: fixedReason says why).
type configParam struct {
	*redisConfig
	value string
	get   func() string
	set   func(v string) (apply func() error, why string)
}

func (p *configParam) current() string {
	if p.get != nil {
		return p.get()
	}
	return p.value
}

// configTable is every parameter, by name, with the node's values and
// setters.
func (s *Server) configTable() map[string]*configParam {
	t := make(map[string]*configParam, len(redisConfigs))
	for i := range redisConfigs {
		rc := &redisConfigs[i]
		t[rc.name] = &configParam{redisConfig: rc, value: rc.def}
	}
	value := func(name, v string) { t[name].value = v }
	getter := func(name string, get func() string) { t[name].get = get }
	intSetter := func(name string, store func(n int64)) {
		t[name].set = func(v string) (func() error, string) {
			n, _ := kv.ParseInt([]byte(v)) // checked against its kind already
			return func() error { store(n); return nil }, ""
		}
	}
	for name, v := range map[string]string{
		"appendonly": "yes", "appendfsync": "always", "save": "", "databases": "1",
		"daemonize": "no", "supervised": "no", "pidfile": "", "logfile": "", "syslog-enabled": "no",
		"maxmemory": "0", "maxmemory-policy": "noeviction", "io-threads": "1",
		"enable-debug-command":      "yes", // its safe subcommands, to every client
		"enable-module-command":     "no",
		"protected-mode":            "no",
		"tcp-keepalive":             "15", // Go's keep-alive period on accepted connections
		"timeout":                   "0",
		"proto-max-bulk-len":        fmt.Sprint(s.cfg.Limits.MaxBulkLen),
		"client-query-buffer-limit": fmt.Sprint(s.cfg.Limits.MaxQueryBuffer),
		"dir":                       s.cfg.DataDir,
		"cluster-enabled":           yesNo(s.cfg.Cluster != nil),
		"port":                      portOf(s.Addr().String()),
		"bind":                      hostOf(s.Addr().String()),
	} {
		value(name, v)
	}
	if s.cfg.TLS != nil {
		// The port serves TLS only: Redis's tls-port, and port 0.
		value("tls-port", t["port"].value)
		value("port", "0")
	}
	getter("maxclients", func() string { return fmt.Sprint(s.maxClients.Load()) })
	intSetter("maxclients", s.maxClients.Store)
	getter("acllog-max-len", func() string { return fmt.Sprint(s.aclLog.maxLen.Load()) })
	intSetter("acllog-max-len", s.aclLog.maxLen.Store)
	getter("requirepass", func() string { return *s.requirePass.Load() })
	t["requirepass"].set = func(v string) (func() error, string) {
		return func() error { return s.setRequirePass(v) }, ""
	}
	getter("notify-keyspace-events", func() string { return s.cfg.Notify.Load().String() })
	t["notify-keyspace-events"].set = func(v string) (func() error, string) {
		classes, ok := kv.ParseClasses(v)
		if !ok {
			return nil, kv.BadEventClass
		}
		return func() error { s.cfg.Notify.Store(classes); return nil }, ""
	}
	getter("slowlog-log-slower-than", func() string {
		return fmt.Sprint(max(time.Duration(s.stats.slow.slowerThan.Load()).Microseconds(), -1))
	})
	intSetter("slowlog-log-slower-than", func(n int64) {
		ns := int64(-1)
		if n >= 0 {
			ns = int64(time.Duration(min(n, math.MaxInt64/1000)) * time.Microsecond)
		}
		s.stats.slow.slowerThan.Store(ns)
	})
	getter("slowlog-max-len", func() string { return fmt.Sprint(s.stats.slow.maxLen.Load()) })
	intSetter("slowlog-max-len", s.stats.slow.maxLen.Store)
	getter("latency-monitor-threshold", func() string { return fmt.Sprint(s.stats.latency.threshold.Load()) })
	intSetter("latency-monitor-threshold", s.stats.latency.threshold.Store)
	getter("latency-tracking", func() string { return yesNo(!s.stats.latencyTrackingOff.Load()) })
	t["latency-tracking"].set = func(v string) (func() error, string) {
		on, _ := parseYesNo(v)
		return func() error { s.stats.latencyTrackingOff.Store(!on); return nil }, ""
	}
	getter("latency-tracking-info-percentiles", func() string { return formatPercentiles(s.stats.percentiles()) })
	t["latency-tracking-info-percentiles"].set = func(v string) (func() error, string) {
		ps, why := parsePercentiles(v)
		if why != "" {
			return nil, why
		}
		return func() error { s.stats.latencyPercentiles.Store(&ps); return nil }, ""
	}
	return t
}

// fixedReason is why the node does not change a parameter it does not act
// on (CONFIG SET's refusal of another value than the current one).
func fixedReason(name string) string {
	has := func(prefixes ...string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		return false
	}
	switch {
	case has("append", "aof-", "auto-aof-", "rdb", "dbfilename", "save", "no-appendfsync-on-rewrite", "stop-writes-on-bgsave-error"):
		return "every write is in its shard's Raft log, on disk, before it is acknowledged; there is no RDB or AOF file to configure"
	case has("maxmemory", "lfu-", "lazyfree-lazy-eviction"):
		return "coppice keeps its data on disk and never evicts a key (--min-free-disk-mib refuses writes when the disk is low)"
	case has("repl", "replica", "slave", "min-replicas-", "min-slaves-", "masterauth", "masteruser"):
		return "replication is each shard's Raft group's"
	case has("cluster-"):
		return "the cluster is coppice's own (gossip and Raft), configured by the node's flags"
	case has("tls-"):
		return "TLS is configured by the node's flags"
	case has("hash-max-", "zset-max-", "list-max-", "set-max-", "list-compress-depth", "stream-node-max-", "hll-sparse-max-bytes"):
		return "values are stored as Pebble records, not in Redis's encodings"
	case has("activedefrag", "active-defrag-", "jemalloc-", "activerehashing", "dynamic-hz", "hz", "active-expire-effort", "io-threads", "oom-score-", "disable-thp"):
		return "it tunes Redis's allocator and event loop, which coppice does not have"
	case has("shutdown-"):
		return "the node stops in order on SIGTERM and SIGINT, every write already on disk"
	case has("port", "bind", "unixsocket", "dir", "proto-max-bulk-len", "client-query-buffer-limit", "databases"):
		return "it is set by the node's flags"
	}
	return "coppice does not have this setting"
}

// configGet is CONFIG GET pattern [pattern ...]: each parameter matched,
// once, in name order. A pattern with no glob character names its
// parameter in any case, and the reply names it as the pattern does, as
// Redis's.
func (s *Server) configGet(patterns [][]byte) *messages.Reply {
	t := s.configTable()
	named := map[string]string{} // parameter: the name it is answered by
	for _, pat := range patterns {
		lower := bytes.ToLower(pat)
		if !bytes.ContainsAny(pat, "[*?") {
			if _, ok := t[string(lower)]; ok && named[string(lower)] == "" {
				named[string(lower)] = string(pat)
			}
			continue
		}
		for name := range t {
			if named[name] == "" && kv.MatchGlob(lower, []byte(name)) {
				named[name] = name
			}
		}
	}
	var items []*messages.Reply
	for _, name := range sortedKeys(named) {
		items = append(items, bulkString(named[name]), bulkString(t[name].current()))
	}
	return mapReply(items...)
}

// configSet is CONFIG SET name value [name value ...], all or nothing, as
// Redis's: every name is looked up (the first unknown, immutable or
// repeated one refuses the lot), then every value checked, then all
// applied.
func (s *Server) configSet(pairs [][]byte) *messages.Reply {
	switch {
	case len(pairs) < 2:
		return errorf("ERR wrong number of arguments for 'config|set' command")
	case len(pairs)%2 != 0:
		return errorf("ERR syntax error")
	}
	failed := func(name []byte, why string) *messages.Reply {
		return errorf(fmt.Sprintf("ERR CONFIG SET failed (possibly related to argument '%s') - %s", name, why))
	}
	t := s.configTable()
	params := make([]*configParam, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		p := t[strings.ToLower(string(pairs[i]))]
		switch {
		case p == nil:
			return errorf(fmt.Sprintf("ERR Unknown option or number of arguments for CONFIG SET - '%s'", pairs[i]))
		case p.kind == configImmutable:
			return failed(pairs[i], "can't set immutable config")
		case p.kind == configProtected:
			return failed(pairs[i], "can't set protected config")
		case slices.Contains(params, p):
			return failed(pairs[i], "duplicate parameter")
		}
		params = append(params, p)
	}
	var apply []func() error
	for i, p := range params {
		name, v := pairs[2*i], string(pairs[2*i+1])
		norm, why := p.check(v)
		if why != "" {
			return failed(name, why)
		}
		if p.set != nil {
			f, why := p.set(v)
			if why != "" {
				return failed(name, why)
			}
			apply = append(apply, f)
			continue
		}
		if cur, _ := p.check(p.current()); norm != cur {
			return failed(name, "not changeable on coppice, where it is "+strconv.Quote(p.current())+": "+fixedReason(p.name))
		}
	}
	for _, f := range apply {
		if err := f(); err != nil {
			return errorf(err.Error())
		}
	}
	return replyOK
}

// check reads v as Redis reads a value of p's kind: why is Redis's reason
// to refuse it, else norm is the value in a form two equal values share.
func (p *redisConfig) check(v string) (norm, why string) {
	switch p.kind {
	case configBool:
		on, ok := parseYesNo(v)
		if !ok {
			return "", "argument must be 'yes' or 'no'"
		}
		return yesNo(on), ""
	case configInt:
		n, ok := kv.ParseInt([]byte(v))
		if !ok {
			return "", "argument couldn't be parsed into an integer"
		}
		if n < p.min || n > p.max {
			return "", fmt.Sprintf("argument must be between %d and %d inclusive", p.min, p.max)
		}
		return strconv.FormatInt(n, 10), ""
	case configMemory, configMemoryPercent:
		if p.kind == configMemoryPercent {
			if pct, ok := strings.CutSuffix(v, "%"); ok {
				if n, ok := kv.ParseInt([]byte(pct)); ok && n >= 0 {
					return pct + "%", ""
				}
				return "", "argument must be a memory or percent value"
			}
		}
		n, ok := memValue(v)
		if !ok {
			if p.kind == configMemoryPercent {
				return "", "argument must be a memory or percent value"
			}
			return "", "argument must be a memory value"
		}
		if n < p.min || n > p.max {
			return "", fmt.Sprintf("argument must be between %d and %d inclusive", p.min, p.max)
		}
		return strconv.FormatInt(n, 10), ""
	case configEnum:
		words := []string{v}
		if p.multi {
			words = strings.Fields(v)
		}
		var got []string
		for _, w := range words {
			i := slices.IndexFunc(p.values, func(e string) bool { return strings.EqualFold(e, w) })
			if i < 0 {
				return "", "argument(s) must be one of the following: " + strings.Join(p.values, ", ")
			}
			got = append(got, p.values[i])
		}
		if len(got) == 0 {
			return "", "argument(s) must be one of the following: " + strings.Join(p.values, ", ")
		}
		slices.Sort(got)
		return strings.Join(slices.Compact(got), " "), ""
	}
	return v, ""
}

// memValue reads a memory value as Redis's memtoull: digits, then
// nothing or b, k, kb, m, mb, g, gb in any case (k is 1000, kb 1024);
// no sign. A value past int64 is refused, as Redis refuses one that turns
// negative.
func memValue(v string) (int64, bool) {
	i := 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	units := map[string]uint64{"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000 * 1000, "mb": 1 << 20, "g": 1000 * 1000 * 1000, "gb": 1 << 30}
	mul, ok := units[strings.ToLower(v[i:])]
	if !ok {
		return 0, false
	}
	n := uint64(0)
	if i > 0 { // Redis reads no digits as 0
		var err error
		if n, err = strconv.ParseUint(v[:i], 10, 64); err != nil {
			return 0, false
		}
	}
	if n > math.MaxInt64/mul {
		return 0, false
	}
	return int64(n * mul), true
}

// setRequirePass is CONFIG SET requirepass, as Redis's: the default
// user's passwords are reset to this one (none: nopass), for the whole
// cluster, as ACL SETUSER default would.
func (s *Server) setRequirePass(v string) error {
	ops := []string{"resetpass", "nopass"}
	if v != "" {
		ops = []string{"resetpass", ">" + v}
	}
	if err := s.updateACL(func(us *kv.ACLUsers) (*kv.ACLUsers, error) { return us.SetUser("default", ops) }); err != nil {
		return err
	}
	s.requirePass.Store(&v)
	return nil
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

// hostOf is addr's host as Redis's bind names it: every address
// ("* -::*") for none or a wildcard.
func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil || h == "" || h == "::" || h == "0.0.0.0" {
		return "* -::*"
	}
	return h
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// sortedKeys is m's keys in order.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
