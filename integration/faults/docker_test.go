// Package faults runs coppice nodes as containers (the repo's Dockerfile,
// FROM scratch) on private Docker networks and injects real faults: kill -9,
// SIGSTOP, network partitions (docker network disconnect), lossy and slow
// links (tc netem in the container's network namespace), a full disk, a
// corrupted snapshot stream. Every scenario records a client history and
// checks it with porcupine, checks every acknowledged write is present, and
// checks the shards' checksums agree after healing.
//
// The suite needs a Docker engine, nsenter and tc (and root for them). With
// no Docker engine it skips, and says so; COPPICE_REQUIRE_DOCKER=1 (set by
// .ci/run) turns the skip into a failure. Runs are seeded:
// COPPICE_FAULT_SEED=<n> replays one.
package faults

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/httpjson"
	"github.com/coppice-kv/coppice/internal/srcdeps"
	"github.com/coppice-kv/coppice/internal/testwait"
)

// image is the tag setup builds from the repo's Dockerfile.
const image = "coppice-node:faults"

var (
	setupOnce sync.Once
	setupErr  error
)

// needDocker builds the image once, for the first test that needs it, and
// skips the test (or fails it, under COPPICE_REQUIRE_DOCKER=1, as .ci/run
// sets) when the suite cannot run here. It runs inside a test, not in a
// TestMain, so that go test's cache records the sources setup reads.
func needDocker(t *testing.T) {
	t.Helper()
	require := os.Getenv("COPPICE_REQUIRE_DOCKER") == "1"
	setupOnce.Do(func() {
		if setupErr = setup(); setupErr != nil && !require {
			fmt.Fprintf(os.Stderr, "fault suite SKIPPED: %v\n", setupErr)
		}
	})
	switch {
	case setupErr == nil:
	case require:
		t.Fatalf("fault suite: %v (COPPICE_REQUIRE_DOCKER=1)", setupErr)
	default:
		t.Skip("fault suite skipped: " + setupErr.Error())
	}
}

// setup checks the tools and builds the image: the static binary, then
// the repo's Dockerfile on a context holding only that binary.
func setup() error {
	// Read every source the image is built from: a change to any of them
	// makes go test run the suite again instead of reusing a cached pass.
	if _, err := srcdeps.Hash("../.."); err != nil {
		return err
	}
	if _, err := run(30*time.Second, "docker", "info", "--format", "{{.ServerVersion}}"); err != nil {
		return fmt.Errorf("no Docker engine: %v", err)
	}
	for _, tool := range []string{"nsenter", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (util-linux, iproute2)", tool)
		}
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root: nsenter and tc need it")
	}
	ctx, err := os.MkdirTemp("", "coppice-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(ctx)
	if err := os.MkdirAll(filepath.Join(ctx, "build"), 0o755); err != nil {
		return err
	}
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(ctx, "build", "node"), "../../cmd/node")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/node: %v\n%s", err, out)
	}
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), df, 0o644); err != nil {
		return err
	}
	if _, err := run(5*time.Minute, "docker", "build", "-q", "-t", image, ctx); err != nil {
		return fmt.Errorf("docker build: %v", err)
	}
	return nil
}

// run runs a command with a timeout and returns its trimmed stdout.
func run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// runCombined runs a command with a timeout and returns its stdout and
// stderr interleaved.
func runCombined(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// docker runs a docker command and fails the test when it fails.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(60*time.Second, "docker", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// eventually polls cond every 200ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	testwait.For(t, timeout, 200*time.Millisecond, what, cond)
}

// httpJSON does one HTTP request (3s) and decodes a JSON answer into v
// (if not nil); a non-2xx status is an error carrying the body.
func httpJSON(method, url string, v any) error {
	return httpjson.Do(&http.Client{Timeout: 3 * time.Second}, method, url, v)
}
