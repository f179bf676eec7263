// Package redistest starts a real redis-server for the tests that compare
// coppice's answers with Redis's. They skip when redis-server is not on
// PATH, but fail when COPPICE_REQUIRE_REDIS is set (CI, which installs it).
package redistest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Start starts a redis-server for the test's life, with no persistence,
// listening on a unix socket only, with extra arguments after the
// defaults; it returns the socket's path.
func Start(t testing.TB, extra ...string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("COPPICE_REQUIRE_REDIS") != "" {
			t.Fatal("redis-server is not on PATH, and COPPICE_REQUIRE_REDIS is set")
		}
		t.Skip("redis-server is not on PATH: install it (apt-get install -y redis-server) to compare with Redis")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	args := append([]string{"--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no"}, extra...)
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not start: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
