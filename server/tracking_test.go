package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testwait"
)

// trackingServer is a Server over the engine whose writes reach its
// Modified, as a node's shards' do.
func trackingServer(t *testing.T) *Server {
	t.Helper()
	b := newEngineBackend()
	srv, err := Listen(Config{Addr: "127.0.0.1:0", Notify: b.notify}, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	b.fire, b.modified = srv.Notify, srv.Modified
	return srv
}

// Invalidations redirected to a RESP2 connection in pub/sub mode come as
// messages on __redis__:invalidate (a FLUSHALL's as a null, once though
// it runs on every shard); once that connection is gone, a RESP3 tracker
// hears its redirect is broken, and says so in TRACKINGINFO and CLIENT
// LIST.
func TestTrackingRedirect(t *testing.T) {
	srv := trackingServer(t)
	target, c, w := dial(t, srv), dial(t, srv), dial(t, srv)
	id := strings.TrimPrefix(target.do("CLIENT ID"), ":")
	script(t, target, "SUBSCRIBE __redis__:invalidate", "[subscribe __redis__:invalidate :1]")
	script(t, c,
		"CLIENT TRACKING ON REDIRECT "+id, "+OK",
		"CLIENT GETREDIR", ":"+id,
		"GET k", "$-1",
		"MGET a b", "[$-1 $-1]",
	)
	script(t, w, "SET k v", "+OK")
	if got := target.read(); got != "[message __redis__:invalidate [k]]" {
		t.Fatalf("redirected invalidation: %s", got)
	}
	script(t, w, "SET k v2", "+OK", "FLUSHALL", "+OK", "SET a 1", "+OK")
	// k was invalidated once already; FLUSHALL once, on four shards.
	if got := target.read(); got != "[message __redis__:invalidate $-1]" {
		t.Fatalf("FLUSHALL's invalidation: %s", got)
	}
	script(t, target, "PING", "[pong ]") // nothing else came before the PING's answer

	// A RESP3 tracker whose target goes.
	gone, r3 := dial(t, srv), dial(t, srv)
	goneID := strings.TrimPrefix(gone.do("CLIENT ID"), ":")
	r3.do("HELLO 3")
	script(t, r3, "CLIENT TRACKING ON REDIRECT "+goneID, "+OK", "GET x", "_")
	gone.nc.Close()
	testwait.For(t, 5*time.Second, 5*time.Millisecond, "the closed connection gone", func() error {
		if l := w.do("CLIENT LIST ID " + goneID); l != "" {
			return fmt.Errorf("still listed: %q", l)
		}
		return nil
	})
	script(t, w, "SET x 1", "+OK")
	if got := r3.read(); got != "[tracking-redir-broken :"+goneID+"]" {
		t.Fatalf("broken redirect: %s", got)
	}
	if got := r3.do("CLIENT TRACKINGINFO"); got != "[flags [on broken_redirect] redirect :"+goneID+" prefixes []]" {
		t.Fatalf("TRACKINGINFO: %s", got)
	}
	r3ID := strings.TrimPrefix(r3.do("CLIENT ID"), ":")
	if got := w.do("CLIENT LIST ID " + r3ID); !strings.Contains(got, " flags=tR ") {
		t.Fatalf("CLIENT LIST: %s", got)
	}
}
