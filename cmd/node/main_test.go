package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testdamage"
)

// TestMain runs the node's main instead of the tests when the test binary
// is started by startNode: the process under test is the real binary.
func TestMain(m *testing.M) {
	if os.Getenv("NODE_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestBadSettingsExit2(t *testing.T) {
	for _, args := range [][]string{{"--log-format", "xml"}, {"--log-level", "loud"}, {"--no-such-flag"}, {"--shards", "0"}} {
		var stderr bytes.Buffer
		if code := run(args, envOf(nil), io.Discard, &stderr); code != 2 {
			t.Errorf("run(%v) = %d, want 2", args, code)
		}
		if !strings.HasPrefix(stderr.String(), "node: ") {
			t.Errorf("run(%v) wrote %q", args, stderr.String())
		}
	}
	var stderr bytes.Buffer
	run(nil, envOf(map[string]string{"COPPICE_CLIENT_ADDR": "foo"}), io.Discard, &stderr)
	if want := `node: COPPICE_CLIENT_ADDR "foo": want host:port`; !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}

func TestHelpExits0(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, envOf(nil), &out, io.Discard); code != 0 {
		t.Errorf("--help exited %d", code)
	}
	if !strings.Contains(out.String(), "COPPICE_DATA_DIR") {
		t.Errorf("--help printed %q", out.String())
	}
}

func TestPrintTree(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--print-tree", "--shards", "2"}, envOf(nil), &out, io.Discard); code != 0 {
		t.Errorf("--print-tree exited %d", code)
	}
	for _, child := range []string{"store", "transport", "shards", "shard-1", "raft-1", "user", "http"} {
		if !strings.Contains(out.String(), child) {
			t.Errorf("the printed tree has no %s:\n%s", child, out.String())
		}
	}
}

// process is the node binary running in a child process.
type process struct {
	cmd    *exec.Cmd
	lines  chan string
	exited chan struct{}
	log    bytes.Buffer // every line, for failure messages
}

func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "NODE_TEST_RUN_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, lines: make(chan string, 1000), exited: make(chan struct{})}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		cmd.Wait() // after the last read from the pipe
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill() // an error if it has exited
		for range p.lines {
		}
	})
	return p
}

// waitLine waits (bounded) for a log line matching re and returns its
// submatches.
func (p *process) waitLine(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("the node exited before logging %q:\n%s", re, p.log.String())
			}
			p.log.WriteString(l + "\n")
			if m := rx.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-timeout:
			t.Fatalf("no log line %q within 30s:\n%s", re, p.log.String())
		}
	}
}

// wait reads the rest of the log until the process exits (bounded) and
// returns its exit code.
func (p *process) wait(t *testing.T) int {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				<-p.exited
				return p.cmd.ProcessState.ExitCode()
			}
			p.log.WriteString(l + "\n")
		case <-timeout:
			t.Fatalf("the node did not exit within 60s:\n%s", p.log.String())
		}
	}
}

func TestSIGTERMStopsInOrderAndExits0(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, "--name", "n1", "--data-dir", filepath.Join(dir, "data"), "--shards", "2",
		"--client-addr", "127.0.0.1:0", "--cluster-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--log-format", "json", "--stop-timeout", "20s", "--compactions", "3")
	addr := p.waitLine(t, `"msg":"http listener","addr":"([^"]+)"`)[1]
	p.waitLine(t, `"msg":"node started"`)

	// The node serves its status over HTTP.
	res, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Node   string `json:"node"`
		Shards []any  `json:"shards"`
	}
	err = json.NewDecoder(res.Body).Decode(&st)
	res.Body.Close()
	if err != nil || st.Node != "n1" || len(st.Shards) != 2 {
		t.Fatalf("status %+v, %v", st, err)
	}
	// --compactions reaches the shards' compaction scheduler.
	res, err = (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || !regexp.MustCompile(`(?m)^coppice_shard_compactions_limit 3$`).Match(metrics) {
		t.Fatalf("no coppice_shard_compactions_limit 3 in /metrics (%v):\n%s", err, metrics)
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitLine(t, `"msg":"stopping"`)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM:\n%s", code, p.log.String())
	}
	if !strings.Contains(p.log.String(), `"msg":"stopped"`) {
		t.Fatalf("no orderly stop in the log:\n%s", p.log.String())
	}
}

// A store that fails while the node runs stops the node, which says why
// once and exits 1 after an orderly stop, instead of serving on while
// Pebble retries a failed flush in a busy loop (a line of log per try) and
// a stop waits for that flush for good, or ending in hashicorp/raft's
// panic when it cannot save a term.
//   - A shard's Pebble directory removed: the flush of its next snapshot
//     fails.
//   - The Raft log's directory removed: the journal's next file (64 MiB
//     in) cannot be made.
func TestStoreFailureStopsTheNodeAndExits1(t *testing.T) {
	for _, tc := range []struct {
		name, remove, err string
		value, writes     int // bytes per value, writes per writer
		flags             []string
	}{
		{"shard", "shards/0/kv", "shard 0", 1, 200, []string{"--snapshot-threshold", "4", "--snapshot-interval", "100ms"}},
		{"raft log", "raftlog", "raft log", 64 << 10, 200, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			p := startProcess(t, append([]string{"--name", "n1", "--data-dir", data, "--shards", "1",
				"--client-addr", "127.0.0.1:0", "--cluster-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
				"--log-format", "json", "--stop-timeout", "20s"}, tc.flags...)...)
			client := p.waitLine(t, `"msg":"client port","addr":"([^"]+)"`)[1]
			p.waitLine(t, `"msg":"node started"`)
			value := strings.Repeat("v", tc.value)
			// set writes keys from, from+1... on its own connection, n of
			// them or until one fails.
			set := func(from, n int) error {
				conn, err := net.DialTimeout("tcp", client, 10*time.Second)
				if err != nil {
					return err
				}
				defer conn.Close()
				r := bufio.NewReader(conn)
				for i := from; i < from+n; i++ {
					conn.SetDeadline(time.Now().Add(10 * time.Second))
					k := strconv.Itoa(i)
					if _, err := fmt.Fprintf(conn, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(k), k, len(value), value); err != nil {
						return err
					}
					line, err := r.ReadString('\n')
					if err == nil && line != "+OK\r\n" {
						err = fmt.Errorf("SET %s: %q", k, line)
					}
					if err != nil {
						return err
					}
				}
				return nil
			}
			// A write held in memory, then the directory goes.
			if err := set(0, 1); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(filepath.Join(data, tc.remove)); err != nil {
				t.Fatal(err)
			}
			// Writes until the node stops taking them, from several
			// clients at once: entries queue behind the one being written.
			const writers = 8
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					set(1+w*tc.writes, tc.writes)
				}()
			}
			wg.Wait()
			p.waitLine(t, `"level":"ERROR","msg":"a store failed; the node stops".*"err":"storage: store failed: `+tc.err)
			if code := p.wait(t); code != 1 {
				t.Fatalf("exit code %d, want 1:\n%s", code, p.log.String())
			}
			log := p.log.String()
			if !strings.Contains(log, `"msg":"stopped: a store failed"`) {
				t.Fatalf("no orderly stop for the store's failure:\n%s", log)
			}
			// Pebble's retries are counted, not logged one by one.
			if n := strings.Count(log, "\n"); n > 200 {
				t.Fatalf("%d lines of log:\n%s", n, log)
			}
		})
	}
}

// A node whose data dir has less free space than --min-free-disk-mib
// (here a floor above any disk) says so, and refuses writes that free
// nothing, naming itself; reads and DEL still run.
func TestLowDiskRefusesWrites(t *testing.T) {
	p := startProcess(t, "--name", "n1", "--data-dir", filepath.Join(t.TempDir(), "data"), "--shards", "1",
		"--client-addr", "127.0.0.1:0", "--cluster-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--log-format", "json", "--min-free-disk-mib", "1000000000")
	client := p.waitLine(t, `"msg":"client port","addr":"([^"]+)"`)[1]
	p.waitLine(t, `"level":"WARN","msg":"disk space low: the cluster refuses writes`)
	p.waitLine(t, `"msg":"node started"`)
	conn, err := net.DialTimeout("tcp", client, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	for _, c := range []struct{ cmd, want string }{
		{"SET k v", "-ERR disk space low on n1 (under its --min-free-disk-mib): writes are refused"},
		// Refused though it would change nothing: the refusal does not
		// hang on the data.
		{"SET k v XX", "-ERR disk space low on n1 (under its --min-free-disk-mib): writes are refused"},
		{"GET k", "$-1"},
		{"DEL k", ":0"},
	} {
		if _, err := fmt.Fprintf(conn, "%s\r\n", c.cmd); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, c.want) {
			t.Fatalf("%s: %q, %v; want %q", c.cmd, line, err, c.want)
		}
	}
}

// A standalone node's shard whose table holds a block that no longer
// matches its checksum (bit rot, a bad disk) cannot be rebuilt from its
// group (no other member holds the data): the node stops in order and
// exits 1, saying what is damaged and what to do, whether the damage is
// met as it starts or by a read after; Pebble's default ended the process
// with its own stack dump, and a start met by it exited 0. In a cluster
// the shard is rebuilt (damaged_shard.txtar).
func TestCorruptStoreExits1(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	args := []string{"--name", "n1", "--data-dir", data, "--shards", "1",
		"--client-addr", "127.0.0.1:0", "--cluster-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json"}
	p := startProcess(t, args...)
	client := p.waitLine(t, `"msg":"client port","addr":"([^"]+)"`)[1]
	p.waitLine(t, `"msg":"node started"`)
	var cmds strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&cmds, "SET key%05d %s\r\n", i, strings.Repeat("v", 100))
	}
	cmds.WriteString("SAVE\r\n") // the keys go to a table
	if got := roundTrip(t, client, cmds.String(), 3001); !strings.HasSuffix(got, "+OK\r\n") {
		t.Fatalf("writes: %q", got[max(0, len(got)-200):])
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM:\n%s", code, p.log.String())
	}
	kvDir := filepath.Join(data, "shards", "0", "kv")
	if n, err := testdamage.FlipTables(kvDir, func(size int) int { return size / 2 }); err != nil || n == 0 {
		t.Fatalf("damaged %d table(s) (%v): no table written", n, err)
	}

	// Started again: the damage is met at the start, or by a KEYS, which
	// reads every key, once it has started (DBSIZE reads the shard's
	// counts).
	p = startProcess(t, args...)
	clientPort := regexp.MustCompile(`"msg":"client port","addr":"([^"]+)"`)
	timeout := time.After(30 * time.Second)
	for over := false; !over; {
		select {
		case l, ok := <-p.lines:
			if !ok {
				over = true // it exited as it started: wait tells how
				break
			}
			p.log.WriteString(l + "\n")
			if m := clientPort.FindStringSubmatch(l); m != nil {
				client = m[1]
			}
			if strings.Contains(l, `"msg":"node started"`) {
				over = true
				if conn, err := net.DialTimeout("tcp", client, 10*time.Second); err == nil {
					conn.SetDeadline(time.Now().Add(10 * time.Second))
					fmt.Fprintf(conn, "KEYS *\r\n")
					// An error reply, or the connection closed as the
					// node stops: anything but the keys.
					if line, _ := bufio.NewReader(conn).ReadString('\n'); strings.HasPrefix(line, "*") {
						t.Errorf("KEYS over a damaged table answered %q", line)
					}
					conn.Close()
				}
			}
		case <-timeout:
			t.Fatalf("neither started nor exited within 30s:\n%s", p.log.String())
		}
	}
	if code := p.wait(t); code != 1 {
		t.Fatalf("exit code %d, want 1:\n%s", code, p.log.String())
	}
	log := p.log.String()
	for _, want := range []string{"storage: on-disk corruption in " + kvDir + "/", "checksum mismatch", "empty the node's data dir and start it again with --join",
		"shard 0 cannot be rebuilt from its group: no other voter of its group holds the data"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}
}

// roundTrip sends cmds to the client port at addr and reads n reply lines
// (bounded), returned together.
func roundTrip(t *testing.T, addr, cmds string, n int) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(conn, cmds); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	var out strings.Builder
	for range n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", out.String(), err)
		}
		out.WriteString(line)
	}
	return out.String()
}

func TestFailedStartExits1(t *testing.T) {
	// The data dir is a file: the store worker cannot start.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The HTTP port is taken: the http worker cannot start.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		dataDir, httpAddr, why string
	}{
		{file, "127.0.0.1:0", "not a directory"},
		{filepath.Join(t.TempDir(), "data"), busy.Addr().String(), "address already in use"},
	} {
		p := startProcess(t, "--name", "n1", "--data-dir", tc.dataDir, "--shards", "1",
			"--client-addr", "127.0.0.1:0", "--cluster-addr", "127.0.0.1:0", "--http-addr", tc.httpAddr)
		if code := p.wait(t); code != 1 {
			t.Fatalf("exit code %d, want 1:\n%s", code, p.log.String())
		}
		if log := p.log.String(); !strings.Contains(log, "node failed to start") || !strings.Contains(log, tc.why) {
			t.Fatalf("the failure (%s) is not logged:\n%s", tc.why, log)
		}
	}
}

// The node runs Go code on one thread more than the runtime's choice,
// unless GOMAXPROCS says otherwise.
func TestExtraProc(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	extraProc(func(string) string { return "" })
	if got := runtime.GOMAXPROCS(0); got != before+1 {
		t.Fatalf("GOMAXPROCS %d, want %d", got, before+1)
	}
	runtime.GOMAXPROCS(before)
	extraProc(func(k string) string {
		if k == "GOMAXPROCS" {
			return "1"
		}
		return ""
	})
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Fatalf("GOMAXPROCS set by the user: changed to %d", got)
	}
}

// The collector's floor is off by default (--gc-min-heap-mib 0), on when
// asked for, and off when GOGC is set.
func TestGCFloor(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	noEnv := func(string) string { return "" }
	if f := gcFloor(Config{}, noEnv); f != nil {
		f.Stop()
		t.Fatal("a floor by default")
	}
	if f := gcFloor(Config{GCMinHeapMiB: 256}, func(k string) string {
		if k == "GOGC" {
			return "200"
		}
		return ""
	}); f != nil {
		f.Stop()
		t.Fatal("a floor with GOGC set")
	}
	f := gcFloor(Config{GCMinHeapMiB: 256}, noEnv)
	if f == nil {
		t.Fatal("no floor with --gc-min-heap-mib 256")
	}
	f.Stop()
}
