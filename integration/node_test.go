// Package integration starts real cmd/node processes on loopback and drives
// them. Every wait is bounded.
package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/freeport"
	"github.com/coppice-kv/coppice/internal/srcdeps"
	"github.com/redis/go-redis/v9"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// nodeBinary builds cmd/node once per test run.
func nodeBinary(t *testing.T) string {
	t.Helper()
	bin, err := buildNode()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func buildNode() (string, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "coppice-node-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "node")
		// Read the sources the build uses, so go test's cache knows this
		// package's result depends on them.
		if _, err := srcdeps.Hash(".."); err != nil {
			buildErr = err
			return
		}
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/node").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/node: %v\n%s", err, out)
		}
	})
	return binPath, buildErr
}

// node is one cmd/node process.
type node struct {
	t       *testing.T
	name    string
	dataDir string
	client  string
	http    string
	gossip  string
	args    []string
	cmd     *exec.Cmd
	log     *os.File
	exited  chan struct{}
}

func newNode(t *testing.T, name, dataDir string, extra ...string) *node {
	a, err := freeport.Loopback(4)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, name: name, dataDir: dataDir, client: a[0], http: a[1], gossip: a[2]}
	n.args = append([]string{
		"--name", name, "--data-dir", dataDir, "--shards", "4",
		"--client-addr", n.client, "--cluster-addr", a[3],
		"--gossip-addr", n.gossip, "--http-addr", n.http,
	}, extra...)
	return n
}

// start runs the process and waits (bounded) until /readyz says every
// shard has a leader and has applied its log.
func (n *node) start() {
	t := n.t
	t.Helper()
	logPath := n.launch()
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := n.ready(hc)
		if err == nil {
			return
		}
		select {
		case <-n.exited:
			t.Fatalf("%s exited during start: %s", n.name, readFile(logPath))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not serving after 60s: %v\n%s", n.name, err, readFile(logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// launch starts the process and returns its log's path; it does not wait.
func (n *node) launch() string {
	t := n.t
	t.Helper()
	logPath := filepath.Join(t.TempDir(), n.name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	n.log = f
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("COPPICE_TEST_LOGS") != "" {
			t.Logf("log of %s:\n%s", n.name, readFile(logPath))
		}
	})
	n.cmd = exec.Command(nodeBinary(t), n.args...)
	n.cmd.Stdout, n.cmd.Stderr = f, f
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(n.cmd, n.exited)
	t.Cleanup(func() { n.kill() })
	return logPath
}

// ready asks /readyz once.
func (n *node) ready(hc *http.Client) error {
	resp, err := hc.Get("http://" + n.http + "/readyz")
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s: %s", resp.Status, body)
	}
	return nil
}

// kill9 kills the process with SIGKILL and waits for it.
func (n *node) kill9() {
	n.t.Helper()
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		n.t.Fatalf("%s did not die after SIGKILL", n.name)
	}
	n.cmd = nil
}

// stop sends SIGTERM and waits (bounded) for a clean exit.
func (n *node) stop() error {
	if n.cmd == nil {
		return nil
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(60 * time.Second):
		n.kill()
		return fmt.Errorf("%s did not stop within 60s of SIGTERM", n.name)
	}
	st := n.cmd.ProcessState
	n.cmd = nil
	if !st.Success() {
		return fmt.Errorf("%s exited with %v", n.name, st)
	}
	return nil
}

func (n *node) kill() {
	if n.cmd != nil {
		n.cmd.Process.Kill()
		<-n.exited
		n.cmd = nil
	}
}

func (n *node) redis() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: n.client, MaxRetries: -1, DialTimeout: time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, Protocol: 2})
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// TestShutdownStopsTheNode: SHUTDOWN from a client stops the node as
// SIGTERM does: it exits 0, and its data is there when it starts again.
func TestShutdownStopsTheNode(t *testing.T) {
	n := newNode(t, "n1", t.TempDir())
	n.start()
	c := n.redis()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Set(ctx, "k", "kept", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "SHUTDOWN").Err(); err == nil {
		t.Fatal("SHUTDOWN answered: want the connection closed")
	}
	select {
	case <-n.exited:
	case <-time.After(60 * time.Second):
		n.kill()
		t.Fatal("the node did not stop within 60s of SHUTDOWN")
	}
	if st := n.cmd.ProcessState; !st.Success() {
		t.Fatalf("the node exited with %v", st)
	}
	n.cmd = nil
	n.start()
	defer n.stop()
	c2 := n.redis()
	defer c2.Close()
	if v, err := c2.Get(ctx, "k").Result(); err != nil || v != "kept" {
		t.Fatalf("after the restart: %q, %v", v, err)
	}
}
