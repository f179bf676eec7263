package server

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/redistest"
)

// TestACLAgainstRedis runs testdata/acl/*.txt each on a redis-server of
// its own (ACL users outlive a file there) and on a Server over the
// engine.
func TestACLAgainstRedis(t *testing.T) {
	files, err := filepath.Glob("testdata/acl/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in testdata/acl: %v", err)
	}
	lines := 0
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			sock := redistest.Start(t)
			b := newEngineBackend()
			srv, err := Listen(Config{Addr: "127.0.0.1:0", Notify: b.notify}, b)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			b.fire, b.modified = srv.Notify, srv.Modified
			redis := func() (net.Conn, error) { return net.DialTimeout("unix", sock, 5*time.Second) }
			ours := func() (net.Conn, error) { return net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second) }
			lines += runPubSubScript(t, f, redis, ours)
		})
	}
	t.Logf("%d lines in %d files compared with redis-server", lines, len(files))
}
