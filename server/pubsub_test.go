package server

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// broadcastBackend is an engineBackend whose node has peers: it records
// what it broadcasts and answers that others clients got each message.
type broadcastBackend struct {
	*engineBackend
	others int64
	mu     sync.Mutex
	sent   []string
}

func (b *broadcastBackend) Broadcast(channel, message []byte, sharded bool) Pending {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent = append(b.sent, fmt.Sprintf("%s=%s sharded=%v", channel, message, sharded))
	return done{integer(b.others)}
}

// AskPubSub answers as one other node with a subscriber of "ch" and
// "far", and the pattern "p*".
func (b *broadcastBackend) AskPubSub(q *messages.PubSubQuery) []*messages.PubSubAnswer {
	a := &messages.PubSubAnswer{}
	if q.ListChannels && !q.Sharded {
		for _, ch := range []string{"ch", "far"} {
			if q.Pattern == nil || kv.MatchGlob(q.Pattern, []byte(ch)) {
				a.Channels = append(a.Channels, []byte(ch))
			}
		}
	}
	for _, ch := range q.Channels {
		n := uint64(0)
		if !q.Sharded && (string(ch) == "ch" || string(ch) == "far") {
			n = 1
		}
		a.Subscribers = append(a.Subscribers, n)
	}
	if q.ListPatterns {
		a.Patterns = [][]byte{[]byte("p*")}
	}
	return []*messages.PubSubAnswer{a}
}

// PUBSUB merges this node's subscribers with the other nodes': channels
// and patterns as a union, subscribers summed.
func TestPubSubCountsOtherNodes(t *testing.T) {
	b := &broadcastBackend{engineBackend: newEngineBackend()}
	srv, err := Listen(Config{Addr: "127.0.0.1:0"}, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	sub, c := dial(t, srv), dial(t, srv)
	script(t, sub, "SUBSCRIBE ch near", "[subscribe ch :1]")
	if got := sub.read(); got != "[subscribe near :2]" {
		t.Fatalf("second confirmation: %q", got)
	}
	script(t, sub, "PSUBSCRIBE p* q*", "[psubscribe p* :3]")
	script(t, c,
		"PUBSUB CHANNELS", "[ch far near]",
		"PUBSUB CHANNELS n*", "[near]",
		"PUBSUB NUMSUB ch far near none", "[ch :2 far :1 near :1 none :0]",
		"PUBSUB NUMPAT", ":2",
		"PUBSUB SHARDCHANNELS", "[]",
		"PUBSUB SHARDNUMSUB ch", "[ch :0]",
	)
}

// PUBLISH answers the clients it reached here and on the other nodes, and
// hands each message to the backend in order; Deliver hands a peer's
// messages to this node's subscribers, in order, and counts them.
func TestPublishReachesOtherNodes(t *testing.T) {
	b := &broadcastBackend{engineBackend: newEngineBackend(), others: 5}
	srv, err := Listen(Config{Addr: "127.0.0.1:0"}, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	sub, pub := dial(t, srv), dial(t, srv)
	script(t, sub, "SUBSCRIBE ch", "[subscribe ch :1]")
	script(t, pub,
		"PUBLISH ch one", ":6",
		"PUBLISH other two", ":5",
		"SPUBLISH ch three", ":5",
	)
	want := []string{"ch=one sharded=false", "other=two sharded=false", "ch=three sharded=true"}
	if strings.Join(b.sent, ",") != strings.Join(want, ",") {
		t.Fatalf("broadcast %q, want %q", b.sent, want)
	}
	if got := sub.read(); got != "[message ch one]" {
		t.Fatalf("subscriber got %q", got)
	}
	counts := srv.Deliver([]*messages.Published{
		{Channel: []byte("ch"), Message: []byte("a")},
		{Channel: []byte("nobody"), Message: []byte("b")},
		{Channel: []byte("ch"), Message: []byte("c")},
		{Channel: []byte("ch"), Message: []byte("d"), Sharded: true},
	})
	if fmt.Sprint(counts) != "[1 0 1 0]" {
		t.Fatalf("Deliver counted %v", counts)
	}
	for _, want := range []string{"[message ch a]", "[message ch c]"} {
		if got := sub.read(); got != want {
			t.Fatalf("subscriber got %q, want %q", got, want)
		}
	}
	st := srv.stats.Snapshot()
	if st.Published != 7 || st.Delivered != 3 {
		t.Fatalf("stats: %d published, %d delivered; want 7 and 3", st.Published, st.Delivered)
	}
}

// One publisher's messages reach a subscriber in the order published,
// pipelined or not, and INFO counts the subscriptions.
func TestPubSubOrder(t *testing.T) {
	_, sub, pub := txServer(t)
	script(t, sub, "SUBSCRIBE a", "[subscribe a :1]", "PSUBSCRIBE *", "[psubscribe * :2]")
	const n = 2000
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "PUBLISH a %d\r\n", i)
	}
	if _, err := pub.nc.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if got := pub.read(); got != ":2" {
			t.Fatalf("PUBLISH %d answered %q", i, got)
		}
		want := []string{fmt.Sprintf("[message a %d]", i), fmt.Sprintf("[pmessage * a %d]", i)}
		for _, w := range want {
			if got := sub.read(); got != w {
				t.Fatalf("message %d: got %q, want %q", i, got, w)
			}
		}
	}
	info := pub.do("INFO stats")
	for _, line := range []string{"pubsub_channels:1", "pubsub_patterns:1", "pubsubshard_channels:0"} {
		if !strings.Contains(info, line+"\r\n") {
			t.Fatalf("INFO stats lacks %q:\n%s", line, info)
		}
	}
}

// A script's PUBLISH and SPUBLISH reach the subscribers once, after the
// script's writes (a subscriber that reads the key sees them); inside the
// script PUBLISH answers 0. A script that fails after publishing has
// published, as in Redis; a read-only script may not publish.
func TestScriptPublishes(t *testing.T) {
	_, sub, c := txServer(t)
	script(t, sub, "SUBSCRIBE news", "[subscribe news :1]", "SSUBSCRIBE {k}s", "[ssubscribe {k}s :1]")
	script(t, c,
		`EVAL "redis.call('set', KEYS[1], 'v1') return {redis.call('publish', 'news', 'first'), redis.call('spublish', '{k}s', 'sharded')}" 1 {k}x`, "[:0 :0]",
		`EVAL "redis.call('publish', 'news', 'before the error') error('boom')" 0`, "-ERR user_script:1: boom script: a8e8decbaa247831551a3beda41cae5e76bc0300, on @user_script:1.",
		`EVAL_RO "return redis.call('publish', 'news', 'no')" 0`, "-ERR Write commands are not allowed from read-only scripts. script: 097d36c6ac5982cfa94281d4d992646fe5ca48fa, on @user_script:1.",
		"PUBLISH news last", ":1",
	)
	for _, want := range []string{"[message news first]", "[smessage {k}s sharded]", "[message news before the error]", "[message news last]"} {
		if got := sub.read(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	script(t, c, "GET {k}x", "v1")
}

// CLIENT LIST shows a subscriber's P flag, and TYPE pubsub picks the
// subscribers; CLIENT KILL TYPE pubsub closes them.
func TestClientTypePubSub(t *testing.T) {
	_, sub, other := txServer(t)
	script(t, sub, "SUBSCRIBE a", "[subscribe a :1]")
	list := other.do("CLIENT LIST TYPE pubsub")
	if strings.Count(list, "id=") != 1 || !strings.Contains(list, "flags=P ") {
		t.Fatalf("CLIENT LIST TYPE pubsub: %q", list)
	}
	if list := other.do("CLIENT LIST TYPE normal"); strings.Count(list, "id=") != 1 || !strings.Contains(list, "flags=N ") {
		t.Fatalf("CLIENT LIST TYPE normal: %q", list)
	}
	script(t, other, "CLIENT KILL TYPE pubsub", ":1", "PUBLISH a x", ":0")
	sub.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(sub.rd); err != nil {
		t.Fatalf("the killed subscriber's connection: %v", err)
	}
}

// A subscriber that does not read its messages is disconnected once 32
// MiB wait for it (Redis's pubsub output limit); the publisher and other
// subscribers go on.
func TestSlowSubscriberDisconnected(t *testing.T) {
	st := &Stats{}
	srv, err := Listen(Config{Addr: "127.0.0.1:0", Stats: st}, newEngineBackend())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	slow, pub := dial(t, srv), dial(t, srv)
	script(t, slow, "SUBSCRIBE big", "[subscribe big :1]")
	payload := strings.Repeat("x", 1<<20)
	cmd := fmt.Sprintf("*3\r\n$7\r\nPUBLISH\r\n$3\r\nbig\r\n$%d\r\n%s\r\n", len(payload), payload)
	// The socket's buffers take some MiB before the queue grows; 256 MiB
	// is far past them and the limit.
	for i := 0; st.slowSubscribers.Load() == 0; i++ {
		if i == 256 {
			t.Fatalf("a subscriber that reads nothing was sent %d MiB and is still connected", i)
		}
		if _, err := io.WriteString(pub.nc, cmd); err != nil {
			t.Fatal(err)
		}
		if got := pub.read(); got != ":1" && got != ":0" {
			t.Fatalf("PUBLISH answered %q", got)
		}
	}
	script(t, pub, "PUBLISH big y", ":0", "PUBSUB NUMSUB big", "[big :0]")
	testwait.For(t, 5*time.Second, 10*time.Millisecond, "the slow subscriber's connection to close", func() error {
		if n := srv.Clients(); n != 1 {
			return fmt.Errorf("%d clients", n)
		}
		return nil
	})
}
