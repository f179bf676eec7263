package main

import (
	"bytes"
	"errors"
	"github.com/coppice-kv/coppice/kv"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// envOf is an environment made of a map.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "node.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	cfg, err := loadConfig(nil, envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Name:              defaultName(),
		DataDir:           "./data",
		Shards:            4,
		ClientAddr:        "127.0.0.1:7379",
		ClusterAddr:       "127.0.0.1:7380",
		GossipAddr:        "127.0.0.1:7946",
		HTTPAddr:          "127.0.0.1:7381",
		TLSAuthClients:    "yes",
		Role:              "voter",
		LogFormat:         "text",
		LogLevel:          slog.LevelInfo,
		StopTimeout:       30 * time.Second,
		RemoveDelay:       time.Minute,
		SyncRetries:       3,
		SyncParallel:      4,
		SnapshotThreshold: 16384, SnapshotInterval: 2 * time.Minute, TrailingLogs: 10240,
		CacheMiB: 64, MemTableMiB: 256, BlockCacheMiB: 32, LogCacheMiB: 64, MaxBulkLen: 512 << 20, MaxWriteMiB: 16, SnapshotYield: true, MinFreeDiskMiB: 256,
		SlowlogSlowerThanUs: 10000, SlowlogMaxLen: 128, ScrubInterval: 24 * time.Hour, ScrubRateMiB: 8,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestEverySettingFromEachSource(t *testing.T) {
	want := Config{
		Name: "n1", DataDir: "/tmp/d", Shards: 8,
		ClientAddr: "0.0.0.0:1", ClusterAddr: "10.0.0.1:2", AdvertiseAddr: "10.0.0.1:2",
		GossipAddr: "[::1]:3", HTTPAddr: ":0",
		Join: []string{"a.example:7946", "10.0.0.2:7946"}, Role: "readonly", RequirePass: "s3cret",
		LogFormat: "json", LogLevel: slog.LevelDebug, StopTimeout: 5 * time.Second, PrintTree: true,
		RemoveDelay: time.Minute, SyncRetries: 3, SyncParallel: 4, TLSAuthClients: "yes",
		SnapshotThreshold: 16384, SnapshotInterval: 2 * time.Minute, TrailingLogs: 10240,
		CacheMiB: 128, Compactions: 2, MemTableMiB: 64, BlockCacheMiB: 16, LogCacheMiB: 8, GCMinHeapMiB: 512, MaxBulkLen: 1 << 20, MaxWriteMiB: 2, SnapshotRateMiB: 64, MinFreeDiskMiB: 1024,
		SlowlogSlowerThanUs: -1, SlowlogMaxLen: 64, HTTPToken: "0123456789abcdef-tok",
		NotifyKeyspaceEvents: kv.ClassKeyevent | kv.ClassExpired, ScrubInterval: time.Hour, ScrubRateMiB: 16,
	}
	args := []string{"--scrub-interval", "1h", "--scrub-rate-mib", "16", "--notify-keyspace-events", "Ex", "--slowlog-log-slower-than", "-1", "--slowlog-max-len", "64", "--http-token", "0123456789abcdef-tok", "--name", "n1", "--data-dir", "/tmp/d", "--shards", "8",
		"--client-addr", "0.0.0.0:1", "--cluster-addr", "10.0.0.1:2", "--advertise-addr", "10.0.0.1:2",
		"--gossip-addr", "[::1]:3", "--http-addr", ":0", "--join", "a.example:7946, 10.0.0.2:7946",
		"--role", "readonly", "--requirepass", "s3cret", "--log-format", "json", "--log-level", "debug",
		"--stop-timeout", "5s", "--cache-mib", "128", "--compactions", "2", "--memtable-mib", "64", "--block-cache-mib", "16", "--log-cache-mib", "8", "--gc-min-heap-mib", "512", "--proto-max-bulk-len", "1048576", "--max-write-mib", "2", "--snapshot-rate-mib", "64", "--snapshot-yield=false", "--min-free-disk-mib", "1024", "--print-tree"}
	env := map[string]string{}
	for i := 0; i < len(args); i++ {
		name, v, set := strings.Cut(strings.TrimPrefix(args[i], "--"), "=")
		switch {
		case set:
		case name == "print-tree":
			v = "true"
		default:
			i++
			v = args[i]
		}
		env["COPPICE_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] = v
	}
	file := writeFile(t, `{"name": "n1", "data-dir": "/tmp/d", "shards": 8, "scrub-interval": "1h", "scrub-rate-mib": 16,
		"client-addr": "0.0.0.0:1", "cluster-addr": "10.0.0.1:2", "advertise-addr": "10.0.0.1:2",
		"gossip-addr": "[::1]:3", "http-addr": ":0", "join": ["a.example:7946", "10.0.0.2:7946"],
		"role": "readonly", "requirepass": "s3cret", "log-format": "json", "log-level": "debug",
		"stop-timeout": "5s", "cache-mib": 128, "compactions": 2, "memtable-mib": 64, "block-cache-mib": 16, "log-cache-mib": 8, "gc-min-heap-mib": 512, "proto-max-bulk-len": 1048576, "max-write-mib": 2, "snapshot-rate-mib": 64, "snapshot-yield": false, "min-free-disk-mib": 1024, "print-tree": true,
		"slowlog-log-slower-than": -1, "slowlog-max-len": 64, "http-token": "0123456789abcdef-tok", "notify-keyspace-events": "Ex"}`)

	for _, tc := range []struct {
		source string
		args   []string
		env    map[string]string
	}{
		{"flags", args, nil},
		{"environment", nil, env},
		{"file", []string{"--config", file}, nil},
		{"file named by the environment", nil, map[string]string{"COPPICE_CONFIG": file}},
	} {
		got, err := loadConfig(tc.args, envOf(tc.env), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.source, err)
		}
		w := want
		if strings.HasPrefix(tc.source, "file") {
			w.ConfigFile = file
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.source, got, w)
		}
	}

	// join may also be one comma-separated string in the file.
	got, err := loadConfig([]string{"--config", writeFile(t, `{"join": "a:1,b:2"}`)}, envOf(nil), nil)
	if err != nil || !reflect.DeepEqual(got.Join, []string{"a:1", "b:2"}) {
		t.Errorf("join as a string: %v %v", got.Join, err)
	}
}

// --bootstrap-expect (with --join and the voter role, which
// TestEverySettingFromEachSource cannot give it: its role is readonly).
func TestBootstrapExpectFromEachSource(t *testing.T) {
	file := writeFile(t, `{"join": "h:7946", "bootstrap-expect": 5}`)
	for _, tc := range []struct {
		source string
		args   []string
		env    map[string]string
	}{
		{"flags", []string{"--join", "h:7946", "--bootstrap-expect", "5"}, nil},
		{"environment", nil, map[string]string{"COPPICE_JOIN": "h:7946", "COPPICE_BOOTSTRAP_EXPECT": "5"}},
		{"file", []string{"--config", file}, nil},
	} {
		got, err := loadConfig(tc.args, envOf(tc.env), nil)
		if err != nil || got.BootstrapExpect != 5 {
			t.Errorf("%s: bootstrap expect %d, %v", tc.source, got.BootstrapExpect, err)
		}
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, `{"shards": 8, "role": "replica", "log-level": "warn"}`)
	env := map[string]string{"COPPICE_SHARDS": "16", "COPPICE_ROLE": "readonly", "COPPICE_CONFIG": file}
	for _, tc := range []struct {
		name   string
		args   []string
		env    map[string]string
		shards int
		role   string
	}{
		{"flag over env over file", []string{"--shards", "32"}, env, 32, "readonly"},
		{"env over file", nil, env, 16, "readonly"},
		{"file over default", []string{"--config", file}, nil, 8, "replica"},
		{"default", nil, nil, 4, "voter"},
		{"empty env is unset", nil, map[string]string{"COPPICE_SHARDS": "", "COPPICE_CONFIG": file}, 8, "replica"},
		{"--config over COPPICE_CONFIG", []string{"--config", writeFile(t, `{"shards": 2}`)}, map[string]string{"COPPICE_CONFIG": file}, 2, "voter"},
		{"last flag wins", []string{"--shards", "3", "--shards", "5"}, nil, 5, "voter"},
	} {
		cfg, err := loadConfig(tc.args, envOf(tc.env), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if cfg.Shards != tc.shards || cfg.Role != tc.role {
			t.Errorf("%s: shards %d role %s, want %d %s", tc.name, cfg.Shards, cfg.Role, tc.shards, tc.role)
		}
	}
}

// badValues are, per setting, values every source must refuse, with what
// the error says is wanted.
var badValues = []struct {
	name, value, want string
}{
	{"name", "", "want 1-63 of [A-Za-z0-9._-]"},
	{"name", "-n1", "want 1-63"},
	{"name", "n 1", "want 1-63"},
	{"name", strings.Repeat("n", 64), "want 1-63"},
	{"data-dir", "", "want a directory"},
	{"shards", "0", "want 1..1024"},
	{"shards", "1025", "want 1..1024"},
	{"shards", "-1", "want 1..1024"},
	{"shards", "four", "want 1..1024"},
	{"remove-delay", "0s", "want a positive duration such as 60s"},
	{"remove-delay", "soon", "want a positive duration such as 60s"},
	{"sync-retries", "0", "want 1..100"},
	{"sync-retries", "101", "want 1..100"},
	{"sync-parallel", "0", "want 1..64"},
	{"gossip-key", "not base64!", "want base64 of 16, 24 or 32 bytes"},
	{"gossip-key", "c2hvcnQ=", "want base64 of 16, 24 or 32 bytes"},
	{"gossip-fast", "maybe", "want true or false"},
	{"pprof", "sometimes", "want true or false"},
	{"snapshot-yield", "often", "want true or false"},
	{"snapshot-threshold", "0", "want 1..1000000000"},
	{"trailing-logs", "-3", "want 1..1000000000"},
	{"cache-mib", "-1", "want 0..65536"},
	{"snapshot-rate-mib", "-1", "want 0..100000"},
	{"scrub-interval", "500ms", "want 0 or a duration from 1s to 8760h, such as 24h"},
	{"scrub-interval", "-1s", "want 0 or a duration from 1s to 8760h, such as 24h"},
	{"scrub-interval", "daily", "want 0 or a duration from 1s to 8760h, such as 24h"},
	{"scrub-interval", "8761h", "want 0 or a duration from 1s to 8760h, such as 24h"},
	{"scrub-rate-mib", "-1", "want 0..100000"},
	{"scrub-rate-mib", "100001", "want 0..100000"},
	{"compactions", "-1", "want 0..1024"},
	{"compactions", "1025", "want 0..1024"},
	{"memtable-mib", "0", "want 1..65536"},
	{"memtable-mib", "65537", "want 1..65536"},
	{"block-cache-mib", "0", "want 1..65536"},
	{"log-cache-mib", "70000", "want 1..65536"},
	{"gc-min-heap-mib", "-1", "want 0..65536"},
	{"gc-min-heap-mib", "65537", "want 0..65536"},
	{"snapshot-rate-mib", "100001", "want 0..100000"},
	{"cache-mib", "65537", "want 0..65536"},
	{"proto-max-bulk-len", "1048575", "want 1048576..536870912"},
	{"proto-max-bulk-len", "536870913", "want 1048576..536870912"},
	{"max-write-mib", "0", "want 1..512"},
	{"max-write-mib", "513", "want 1..512"},
	{"min-free-disk-mib", "-1", "want 0..1000000000"},
	{"min-free-disk-mib", "1000000001", "want 0..1000000000"},
	{"slowlog-log-slower-than", "-2", "want -1..1000000000"},
	{"slowlog-log-slower-than", "1.5", "want -1..1000000000"},
	{"slowlog-max-len", "1000001", "want 0..1000000"},
	{"snapshot-interval", "1ms", "want a duration of at least 10ms such as 2m"},
	{"client-addr", "foo", "want host:port"},
	{"client-addr", "127.0.0.1", "want host:port"},
	{"client-addr", "127.0.0.1:65536", "want host:port with a port 0..65535"},
	{"client-addr", "127.0.0.1:-1", "want host:port"},
	{"client-addr", "127.0.0.1:http", "want host:port"},
	{"cluster-addr", "1.2.3.4:", "want host:port"},
	{"gossip-addr", "::1:7946", "want host:port"},
	{"http-addr", "", "want host:port"},
	{"advertise-addr", "0.0.0.0:7380", "want host:port with a host others can dial"},
	{"advertise-addr", "h:0", "want host:port with a host others can dial and a port 1..65535"},
	{"join", "h1:7946,h2", `"h2": want host:port`},
	{"join", "h1:7946,,h2:7946", `"": want host:port`},
	{"join", ":7946", `":7946": want host:port with a host others can dial`},
	{"role", "leader", "want voter, replica, readonly"},
	{"bootstrap-expect", "1", "want 0 (none) or 2..1000: a node that founds alone is started without --join"},
	{"bootstrap-expect", "1001", "want 0 (none) or 2..1000"},
	{"log-format", "xml", "want text or json"},
	{"log-level", "loud", "want debug, info, warn or error"},
	{"stop-timeout", "0s", "want a positive duration"},
	{"stop-timeout", "30", "want a positive duration"},
	{"stop-timeout", "-5s", "want a positive duration"},
	{"print-tree", "maybe", "want true or false"},
	{"tls-auth-clients", "maybe", "want yes, optional or no"},
	{"http-token", "short-token", "want 16 to 4096 characters, got 11"},
	{"http-token", strings.Repeat("t", 4097), "want 16 to 4096 characters, got 4097"},
	{"http-token", "0123456789abcdef ghi", `want only A-Z a-z 0-9 - . _ ~ + / =, got ' '`},
	{"http-token", "0123456789abcdef:x", `want only A-Z a-z 0-9 - . _ ~ + / =, got ':'`},
	{"http-read-token", "short", "want 16 to 4096 characters, got 5"},
}

func TestBadValuesNameTheirSource(t *testing.T) {
	for _, bv := range badValues {
		envName := "COPPICE_" + strings.ToUpper(strings.ReplaceAll(bv.name, "-", "_"))
		shown := quote(bv.value)
		for _, o := range options {
			if o.name == bv.name && o.secret {
				shown = "(a secret, not shown)"
				_, err := loadConfig([]string{"--" + bv.name + "=" + bv.value}, envOf(nil), nil)
				if err != nil && strings.Contains(err.Error(), bv.value) {
					t.Errorf("--%s: the error shows the secret: %v", bv.name, err)
				}
			}
		}
		// Flag.
		flagArg := "--" + bv.name + "=" + bv.value
		_, err := loadConfig([]string{flagArg}, envOf(nil), nil)
		checkErr(t, flagArg, err, "--"+bv.name+" "+shown+": "+bv.want)
		// Environment (an empty variable is unset: skip those).
		if bv.value != "" {
			_, err = loadConfig(nil, envOf(map[string]string{envName: bv.value}), nil)
			checkErr(t, envName+"="+bv.value, err, envName+" "+shown+": "+bv.want)
		}
		// File, as a JSON string (a number for shards).
		val := `"` + bv.value + `"`
		if (bv.name == "shards" && bv.value != "four") || bv.name == "sync-retries" || bv.name == "sync-parallel" || bv.name == "snapshot-threshold" || bv.name == "trailing-logs" || bv.name == "cache-mib" || bv.name == "compactions" || bv.name == "memtable-mib" || bv.name == "block-cache-mib" || bv.name == "log-cache-mib" || bv.name == "gc-min-heap-mib" || bv.name == "snapshot-rate-mib" || bv.name == "scrub-rate-mib" || bv.name == "proto-max-bulk-len" || bv.name == "max-write-mib" || bv.name == "min-free-disk-mib" || bv.name == "bootstrap-expect" ||
			strings.HasPrefix(bv.name, "slowlog-") {
			val = bv.value
		}
		if bv.name == "print-tree" || bv.name == "gossip-fast" || bv.name == "pprof" || bv.name == "snapshot-yield" {
			continue // a JSON boolean cannot be "maybe": see TestBadConfigFiles
		}
		p := writeFile(t, `{"`+bv.name+`": `+val+`}`)
		_, err = loadConfig([]string{"--config", p}, envOf(nil), nil)
		if bv.name == "shards" && bv.value == "four" {
			checkErr(t, "file "+val, err, p+": shards \"four\": want a JSON number")
			continue
		}
		checkErr(t, "file "+val, err, p+": "+bv.name+" "+shown+": "+bv.want)
	}
}

func TestBadConfigFiles(t *testing.T) {
	for _, tc := range []struct{ content, want string }{
		{`{"shard": 4}`, `unknown key "shard"; known: name, data-dir, shards`},
		{`{"config": "x.json"}`, `unknown key "config"`},
		{`{"shards": "4"}`, `shards "4": want a JSON number`},
		{`{"shards": 4.5}`, `shards 4.5: want 1..1024`},
		{`{"print-tree": "yes"}`, `print-tree "yes": want true or false`},
		{`{"join": 7946}`, `join 7946: want an array of strings or a comma-separated string`},
		{`{"name": 1}`, `name 1: want a JSON string`},
		{`{"stop-timeout": 30}`, `stop-timeout 30: want a JSON string`},
		{`[1, 2]`, `want a JSON object`},
		{`{"shards": 4`, `want a JSON object`},
		{`{} {}`, `want one JSON object`},
		{`shards: 4`, `want a JSON object`},
	} {
		p := writeFile(t, tc.content)
		_, err := loadConfig([]string{"--config", p}, envOf(nil), nil)
		checkErr(t, tc.content, err, tc.want)
		if err != nil && !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not name the file", tc.content, err)
		}
	}
	_, err := loadConfig([]string{"--config", filepath.Join(t.TempDir(), "missing.json")}, envOf(nil), nil)
	checkErr(t, "missing file", err, "missing.json: no such file")
}

func TestSettingsThatDoNotGoTogether(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--client-addr", "127.0.0.1:7380"}, nil,
			`--client-addr "127.0.0.1:7380" and default cluster-addr "127.0.0.1:7380": want different ports`},
		{[]string{"--http-addr", ":7946"}, nil,
			`default gossip-addr "127.0.0.1:7946" and --http-addr ":7946": want different ports`},
		{nil, map[string]string{"COPPICE_CLUSTER_ADDR": "0.0.0.0:7380"},
			`COPPICE_CLUSTER_ADDR "0.0.0.0:7380" listens on every interface: set --advertise-addr`},
		{[]string{"--cluster-addr", ":7380"}, nil, `--cluster-addr ":7380" listens on every interface`},
		{[]string{"--bootstrap-expect", "3"}, nil, `--bootstrap-expect 3: want --join with it`},
		{nil, map[string]string{"COPPICE_BOOTSTRAP_EXPECT": "3"}, `COPPICE_BOOTSTRAP_EXPECT 3: want --join with it`},
		{[]string{"--bootstrap-expect", "3", "--join", "h:7946", "--role", "readonly"}, nil, `--bootstrap-expect 3: want --role voter with it, not readonly`},
		{[]string{"extra"}, nil, `unexpected argument "extra"`},
		{[]string{"--no-such-flag"}, nil, `flag provided but not defined: -no-such-flag`},
	} {
		_, err := loadConfig(tc.args, envOf(tc.env), nil)
		checkErr(t, strings.Join(tc.args, " "), err, tc.want)
	}
	// Port 0 never collides; an advertised address makes every interface fine.
	if _, err := loadConfig([]string{"--client-addr", ":0", "--http-addr", ":0", "--cluster-addr", "0.0.0.0:7380", "--advertise-addr", "10.1.1.1:7380"}, envOf(nil), nil); err != nil {
		t.Fatal(err)
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	_, err := loadConfig([]string{"--help"}, envOf(nil), &out)
	if !errors.Is(err, errHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, o := range options {
		if !strings.Contains(out.String(), "--"+o.name) || !strings.Contains(out.String(), o.env()) {
			t.Errorf("usage does not list --%s and %s:\n%s", o.name, o.env(), out.String())
		}
	}
	if !strings.Contains(out.String(), "flag > environment > file > default") {
		t.Errorf("usage does not state the precedence")
	}
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{
		"host-1.example.com":     "host-1.example.com",
		"my host":                "my-host",
		"_x":                     "x",
		"":                       "node",
		"---":                    "node",
		"héllo":                  "h--llo",
		strings.Repeat("a", 100): strings.Repeat("a", 63),
	} {
		if got := sanitizeName(in); got != want {
			t.Errorf("sanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func checkErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %q", what, want)
		return
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%s:\n got %q\nwant it to contain %q", what, err, want)
	}
}

// --http-read-token comes with --http-token, and is another token; errors
// about it do not show it.
func TestHTTPReadTokenSettings(t *testing.T) {
	const a, b = "0123456789abcdef-aaa", "0123456789abcdef-bbb"
	cfg, err := loadConfig([]string{"--http-token", a}, envOf(map[string]string{"COPPICE_HTTP_READ_TOKEN": b}), nil)
	if err != nil || cfg.HTTPToken != a || cfg.HTTPReadToken != b {
		t.Fatalf("both tokens: %v %q %q", err, cfg.HTTPToken, cfg.HTTPReadToken)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--http-read-token", b}, "--http-read-token (a secret, not shown): want --http-token with it"},
		{[]string{"--http-token", a, "--http-read-token", a}, "--http-read-token (a secret, not shown): want another token than --http-token"},
	} {
		_, err := loadConfig(tc.args, envOf(nil), nil)
		checkErr(t, strings.Join(tc.args, " "), err, tc.want)
		if err != nil && strings.Contains(err.Error(), "0123456789abcdef") {
			t.Errorf("%s: the error shows a token: %v", tc.args, err)
		}
	}
}
