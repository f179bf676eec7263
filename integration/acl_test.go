package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestACLUsersAcrossTheCluster: ACL users are the cluster's. A user made
// on one node can log in on every node, and its rules hold there; two
// nodes changing users at once both get their change; deleting a user on
// one node closes its connections on the others; the default user given
// a password on one node (CONFIG SET requirepass) needs it on all; a
// restarted node starts with the users it had.
func TestACLUsersAcrossTheCluster(t *testing.T) {
	n1, n2, n3 := gossipTrio(t)
	nodes := []*node{n1, n2, n3}
	for _, n := range nodes {
		eventually(t, 60*time.Second, n.name+" a voter of every shard", func() error { return voters(n, "n1", "n2", "n3") })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	as := func(n *node, user, pass string) *redis.Client {
		return redis.NewClient(&redis.Options{Addr: n.client, Username: user, Password: pass, MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: 10 * time.Second, Protocol: 2})
	}
	admin := n2.redis()
	defer admin.Close()
	if err := admin.Do(ctx, "ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+@all", "-@dangerous").Err(); err != nil {
		t.Fatal(err)
	}
	// The node that made the change has it when it answers.
	app2 := as(n2, "app", "pw")
	defer app2.Close()
	if err := app2.Set(ctx, "app:1", "v", 0).Err(); err != nil {
		t.Fatalf("app on n2 right after ACL SETUSER there: %v", err)
	}
	for _, n := range []*node{n1, n3} {
		c := as(n, "app", "pw")
		defer c.Close()
		eventually(t, 20*time.Second, "app to log in on "+n.name, func() error { return c.Ping(ctx).Err() })
		if got, err := c.Get(ctx, "app:1").Result(); err != nil || got != "v" {
			t.Fatalf("GET app:1 as app on %s: %q, %v", n.name, got, err)
		}
		if err := c.Set(ctx, "other", "v", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Fatalf("SET other as app on %s: %v, want NOPERM", n.name, err)
		}
		if err := c.FlushAll(ctx).Err(); err == nil || !strings.Contains(err.Error(), "'flushall' command") {
			t.Fatalf("FLUSHALL as app on %s: %v, want NOPERM", n.name, err)
		}
		// A script's calls follow its caller's rules, on the shard's
		// replicas.
		err := c.Eval(ctx, "return redis.call('set', KEYS[1], 'v')", []string{"other"}).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Fatalf("EVAL on the key other as app on %s: %v, want NOPERM", n.name, err)
		}
		err = c.Eval(ctx, "return redis.call('set', 'other{app:1}', 'v')", []string{"app:1"}).Err()
		if err == nil || !strings.Contains(err.Error(), "The user executing the script can't access at least one of the keys") {
			t.Fatalf("EVAL calling SET other{app:1} as app on %s: %v", n.name, err)
		}
		// The refused call is in the ACL log of the client's node, in
		// context lua, whichever node leads the key's shard.
		admin := n.redis()
		entry, err := admin.Do(ctx, "ACL", "LOG", "1").Result()
		admin.Close()
		if got := fmt.Sprint(entry); err != nil || !strings.Contains(got, "context lua object other{app:1}") {
			t.Fatalf("ACL LOG 1 on %s: %v, %v", n.name, got, err)
		}
	}

	// Two nodes make users at once: each change made on users the other
	// changed first is made again, and every user is there.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i, n := range []*node{n1, n3} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := n.redis()
			defer c.Close()
			for j := range 10 {
				if err := c.Do(ctx, "ACL", "SETUSER", fmt.Sprintf("u%d-%d", i, j), "on", "nopass", "+get").Err(); err != nil {
					errs <- fmt.Errorf("%s: %w", n.name, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, n := range nodes {
		c := n.redis()
		eventually(t, 20*time.Second, "every user on "+n.name, func() error {
			users, err := c.Do(ctx, "ACL", "USERS").StringSlice()
			if err != nil {
				return err
			}
			if len(users) != 22 { // default, app, 20 made at once
				return fmt.Errorf("%d users: %v", len(users), users)
			}
			return nil
		})
		c.Close()
	}

	// Deleting a user on n3 closes its connection on n1.
	raw, err := net.DialTimeout("tcp", n1.client, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rd := bufio.NewReader(raw)
	fmt.Fprintf(raw, "AUTH app pw\r\n")
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, err := rd.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("AUTH app on n1: %q, %v", line, err)
	}
	if err := n3.redis().Do(ctx, "ACL", "DELUSER", "app").Err(); err != nil {
		t.Fatal(err)
	}
	raw.SetReadDeadline(time.Now().Add(20 * time.Second))
	if line, err := rd.ReadString('\n'); err == nil {
		t.Fatalf("app's connection to n1 after ACL DELUSER on n3: read %q, want it closed", line)
	}

	// The default user with a password, set on n1 with CONFIG SET
	// requirepass (Redis's ACL SETUSER default resetpass >s3cret): every
	// node wants it, n3 too after a restart.
	if err := n1.redis().Do(ctx, "CONFIG", "SET", "requirepass", "s3cret").Err(); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		// A new connection each time: one made while the default user
		// had no password stays logged in, as in Redis.
		eventually(t, 20*time.Second, n.name+" to want a password", func() error {
			c := n.redis()
			defer c.Close()
			if err := c.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
				return fmt.Errorf("PING without AUTH: %v", err)
			}
			return nil
		})
	}
	if err := n3.stop(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(n3.dataDir, "system", "acl.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("n3's kept ACL users: %v, %v (want mode 0600)", st, err)
	}
	n3.start()
	c := n3.redis()
	defer c.Close()
	if err := c.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("PING without AUTH on n3 after its restart: %v", err)
	}
	def := as(n3, "default", "s3cret")
	defer def.Close()
	if users, err := def.Do(ctx, "ACL", "USERS").StringSlice(); err != nil || len(users) != 21 {
		t.Fatalf("ACL USERS on n3 after its restart: %v, %v", users, err)
	}
}
