package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/actors"
	"github.com/redis/go-redis/v9"
)

// TestComposeFile brings up the repo's compose.yaml as the README shows
// it (three nodes on volumes, then node4 from the extra profile), on the
// ports it publishes, so the file and the README stay true.
func TestComposeFile(t *testing.T) {
	needDocker(t)
	compose := composeCommand(t)
	project := fmt.Sprintf("cpf%d-compose", os.Getpid()%100000)
	run := func(timeout time.Duration, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		all := append(append(slices.Clone(compose[1:]), "-p", project, "-f", "../../compose.yaml"), args...)
		cmd := exec.CommandContext(ctx, compose[0], all...)
		cmd.Env = append(os.Environ(), "COPPICE_IMAGE="+image)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", compose[0], strings.Join(all, " "), err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", tail(run(time.Minute, "logs", "--no-color"), 60))
		}
		run(2*time.Minute, "--profile", "extra", "down", "-v", "--remove-orphans")
	})
	run(3*time.Minute, "up", "-d", "--no-build")

	node1, node4 := "http://127.0.0.1:7381", "http://127.0.0.1:7411"
	waitVotersAt(t, node1, "node1", "node2", "node3")
	set := redis.NewClient(&redis.Options{Addr: "127.0.0.1:7379"})
	defer set.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := set.Set(ctx, "hello", "world", 0).Err(); err != nil {
		t.Fatalf("SET through node1's published port: %v", err)
	}

	run(3*time.Minute, "--profile", "extra", "up", "-d", "--no-build", "node4")
	waitVotersAt(t, node4, "node1", "node2", "node3", "node4")
	get := redis.NewClient(&redis.Options{Addr: "127.0.0.1:7409"})
	defer get.Close()
	if v, err := get.Get(ctx, "hello").Result(); err != nil || v != "world" {
		t.Fatalf("GET through node4: %q, %v", v, err)
	}

	// node1's volume is lost: it comes back empty with the same settings,
	// finds the others in their cluster and rejoins it (with
	// --bootstrap-expect, not a founder of a second, empty cluster behind
	// the published port).
	run(2*time.Minute, "rm", "-f", "-s", "node1")
	if out, err := exec.Command("docker", "volume", "rm", project+"_node1").CombinedOutput(); err != nil {
		t.Fatalf("docker volume rm %s_node1: %v\n%s", project, err, out)
	}
	run(3*time.Minute, "up", "-d", "--no-build", "node1")
	waitVotersAt(t, node1, "node1", "node2", "node3", "node4")
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if v, err := set.Get(ctx2, "hello").Result(); err != nil || v != "world" {
		t.Fatalf("GET through node1's published port after its volume was lost: %q, %v", v, err)
	}
}

// composeCommand is docker-compose (v1) or docker compose (the plugin).
func composeCommand(t *testing.T) []string {
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}
	}
	if _, err := run(10*time.Second, "docker", "compose", "version"); err == nil {
		return []string{"docker", "compose"}
	}
	if os.Getenv("COPPICE_REQUIRE_DOCKER") == "1" {
		t.Fatal("neither docker-compose nor docker compose is installed")
	}
	t.Skip("neither docker-compose nor docker compose is installed")
	return nil
}

// waitVotersAt waits until the node whose HTTP address is base sees want
// as the voters of every shard, each with a leader.
func waitVotersAt(t *testing.T, base string, want ...string) {
	t.Helper()
	eventually(t, 90*time.Second, fmt.Sprintf("%s sees voters %v", base, want), func() error {
		var st actors.Status
		if err := httpJSON("GET", base+"/v1/status", &st); err != nil {
			return err
		}
		return votersAre(&st, want)
	})
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}
