package gossip

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"
	"google.golang.org/protobuf/proto"

	"github.com/coppice-kv/coppice/internal/gosource"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/messages"
)

// wait bounds every wait in these tests. Fast timers detect a failure in
// well under a second; the slack is for -race on busy machines.
const wait = 10 * time.Second

// node is one started Gossip with its event channel.
type node struct {
	*Gossip
	cfg    Config
	events chan *messages.MemberEvent
}

func testLog() *slog.Logger {
	if os.Getenv("GOSSIP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func config(name string, tags Tags) Config {
	return Config{Name: name, BindAddr: "127.0.0.1:0", Tags: tags, Log: testLog(), Fast: true}
}

// start starts cfg and shuts it down when the test ends.
func start(t *testing.T, cfg Config) *node {
	t.Helper()
	n := &node{cfg: cfg, events: make(chan *messages.MemberEvent, QueueLimit)}
	g, err := Start(cfg, n.events)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Name, err)
	}
	n.Gossip = g
	t.Cleanup(func() { g.Shutdown() })
	return n
}

// restart starts a stopped node again at the same address.
func (n *node) restart(t *testing.T) *node {
	t.Helper()
	cfg := n.cfg
	cfg.BindAddr = n.Addr()
	return start(t, cfg)
}

func tags(id string, shards int) Tags {
	return Tags{ClusterAddr: "127.0.0.1:7001", ClientAddr: "127.0.0.1:6379", HTTPAddr: "127.0.0.1:8080",
		Role: "voter", ClusterID: id, Shards: shards}
}

func (n *node) join(t *testing.T, to *node) {
	t.Helper()
	if _, err := n.Join([]string{to.Addr()}); err != nil {
		t.Fatalf("%s join %s: %v", n.cfg.Name, to.cfg.Name, err)
	}
}

// member returns the named member as n sees it, or nil.
func (n *node) member(name string) *messages.Member {
	for _, m := range n.Members() {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// status returns the named member's status as n sees it.
func (n *node) status(name string) messages.MemberStatus {
	if m := n.member(name); m != nil {
		return m.Status
	}
	return messages.MemberStatus_MEMBER_STATUS_UNSPECIFIED
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", wait, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// steady checks cond holds throughout d, polling.
func steady(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !cond() {
			t.Fatalf("%s stopped holding", what)
		}
	}
}

// awaitEvent reads n's events until one of kind about member name arrives,
// and returns that member.
func (n *node) awaitEvent(t *testing.T, kind messages.MemberEventKind, name string) *messages.Member {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case e := <-n.events:
			for _, m := range e.Members {
				if e.Kind == kind && m.Name == name {
					return m
				}
			}
		case <-timeout:
			t.Fatalf("%s: no %v event for %s within %v", n.cfg.Name, kind, name, wait)
		}
	}
}

// noEvent checks n gets no event about name for d.
func (n *node) noEvent(t *testing.T, d time.Duration, name string) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case e := <-n.events:
			for _, m := range e.Members {
				if m.Name == name {
					t.Fatalf("%s: unexpected %v event for %s", n.cfg.Name, e.Kind, name)
				}
			}
		case <-timeout:
			return
		}
	}
}

// cluster starts names with tags and joins each to the first; it waits
// until everyone sees everyone alive.
func cluster(t *testing.T, tg Tags, names ...string) []*node {
	t.Helper()
	var ns []*node
	for i, name := range names {
		n := start(t, config(name, tg))
		if i > 0 {
			n.join(t, ns[0])
		}
		ns = append(ns, n)
	}
	for _, a := range ns {
		for _, b := range ns {
			eventually(t, a.cfg.Name+" sees "+b.cfg.Name+" alive", func() bool {
				return a.status(b.cfg.Name) == messages.MemberStatus_ALIVE
			})
		}
	}
	return ns
}

func names(ms []*messages.Member) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Name+"="+m.Status.String())
	}
	return strings.Join(s, ",")
}

func TestFormAndDecodeTags(t *testing.T) {
	ns := cluster(t, tags("c1", 4), "n1", "n2", "n3")
	for _, n := range ns {
		if got := n.Members(); len(got) != 3 {
			t.Fatalf("%s sees %s, want 3 members", n.cfg.Name, names(got))
		}
		for i, m := range n.Members() {
			// cluster saw every member alive; a probe missed since, on
			// a loaded machine with the fast timers, can mark one
			// suspect or failed for a moment (CI did): the tags are
			// what is checked here.
			m.Status = messages.MemberStatus_ALIVE
			want := &messages.Member{Name: ns[i].cfg.Name, GossipAddr: ns[i].Addr(), Status: messages.MemberStatus_ALIVE,
				ClusterAddr: "127.0.0.1:7001", ClientAddr: "127.0.0.1:6379", HttpAddr: "127.0.0.1:8080",
				Role: "voter", ClusterId: "c1", Shards: 4}
			if !proto.Equal(m, want) {
				t.Errorf("%s sees %v, want %v", n.cfg.Name, m, want)
			}
		}
		if lm := n.LocalMember(); lm.Name != n.cfg.Name || lm.GossipAddr != n.Addr() {
			t.Errorf("LocalMember = %v, want %s at %s", lm, n.cfg.Name, n.Addr())
		}
	}
	// Each node's first event is its own join; n1 then sees the others join.
	ns[0].awaitEvent(t, messages.MemberEventKind_MEMBER_JOIN, "n1")
	if m := ns[0].awaitEvent(t, messages.MemberEventKind_MEMBER_JOIN, "n3"); m.ClusterId != "c1" || m.Shards != 4 {
		t.Errorf("join event member %v lacks decoded tags", m)
	}
}

func TestKilledMemberFailsThenRejoins(t *testing.T) {
	ns := cluster(t, tags("c1", 4), "n1", "n2", "n3")
	n3 := ns[2]
	if err := n3.Shutdown(); err != nil {
		t.Fatal(err)
	}
	for _, n := range ns[:2] {
		if m := n.awaitEvent(t, messages.MemberEventKind_MEMBER_FAILED, "n3"); m.Status != messages.MemberStatus_FAILED {
			t.Errorf("%s: failed event status %v", n.cfg.Name, m.Status)
		}
		if s := n.status("n3"); s != messages.MemberStatus_FAILED {
			t.Errorf("%s sees n3 %v, want FAILED", n.cfg.Name, s)
		}
	}
	again := n3.restart(t)
	again.join(t, ns[1])
	for _, n := range ns[:2] {
		if m := n.awaitEvent(t, messages.MemberEventKind_MEMBER_JOIN, "n3"); m.Status != messages.MemberStatus_ALIVE {
			t.Errorf("%s: join event status %v", n.cfg.Name, m.Status)
		}
	}
}

func TestLeave(t *testing.T) {
	ns := cluster(t, tags("c1", 4), "n1", "n2", "n3")
	if err := ns[2].Leave(); err != nil {
		t.Fatal(err)
	}
	for _, n := range ns[:2] {
		n.awaitEvent(t, messages.MemberEventKind_MEMBER_LEAVE, "n3")
		eventually(t, n.cfg.Name+" sees n3 LEFT", func() bool { return n.status("n3") == messages.MemberStatus_LEFT })
	}
	if err := ns[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ns[2].Done():
	default:
		t.Fatal("Done not closed after Shutdown")
	}
}

func TestSetTagsUpdates(t *testing.T) {
	// n2 starts before the cluster id is known: an empty id matches any.
	n1 := start(t, config("n1", tags("c1", 4)))
	n2 := start(t, config("n2", tags("", 0)))
	n2.join(t, n1)
	n1.awaitEvent(t, messages.MemberEventKind_MEMBER_JOIN, "n2")

	newTags := tags("c1", 4)
	newTags.Role = "replica"
	if err := n2.SetTags(newTags); err != nil {
		t.Fatal(err)
	}
	m := n1.awaitEvent(t, messages.MemberEventKind_MEMBER_UPDATE, "n2")
	if m.ClusterId != "c1" || m.Shards != 4 || m.Role != "replica" {
		t.Errorf("update carries %v, want cluster c1, 4 shards, replica", m)
	}
	if lm := n2.LocalMember(); lm.ClusterId != "c1" {
		t.Errorf("LocalMember after SetTags = %v", lm)
	}
	if err := n2.SetTags(Tags{Shards: -1}); !errors.Is(err, ErrBadTags) {
		t.Errorf("SetTags(bad) = %v, want ErrBadTags", err)
	}
}

// refused checks that the stranger's Join fails with want and that neither
// side's membership changes.
func refused(t *testing.T, ns []*node, stranger *node, want error, words ...string) {
	t.Helper()
	_, err := stranger.Join([]string{ns[0].Addr()})
	if !errors.Is(err, want) || !errors.Is(err, ErrJoin) {
		t.Fatalf("join = %v, want %v", err, want)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("join error %q does not say %q", err, w)
		}
	}
	before := map[*node]string{}
	for _, n := range append(ns, stranger) {
		before[n] = names(n.Members())
	}
	steady(t, time.Second, "memberships unchanged", func() bool {
		for n, b := range before {
			if got := names(n.Members()); got != b {
				t.Logf("%s sees %s, was %s", n.cfg.Name, got, b)
				return false
			}
		}
		return true
	})
	if got := names(stranger.Members()); got != stranger.cfg.Name+"=ALIVE" {
		t.Errorf("stranger sees %s", got)
	}
}

func TestClusterIDMismatchRefused(t *testing.T) {
	ns := cluster(t, tags("c1", 4), "n1", "n2")
	stranger := start(t, config("x1", tags("c2", 4)))
	refused(t, ns, stranger, ErrClusterMismatch, `cluster id "c1", want "c2"`)
	ns[0].noEvent(t, 200*time.Millisecond, "x1")

	// The joined side refuses by itself too: a bare serf with no merge
	// checks joins (from its side) but n1 refuses both the merge and its
	// alive messages, so nobody in the cluster ever lists it.
	bareJoin(t, ns[0])
	for _, n := range ns {
		steady(t, time.Second, n.cfg.Name+" never lists bare", func() bool { return n.member("bare") == nil })
	}
}

// bareJoin starts "bare", a serf of cluster c2 with no merge checks, and
// has it join to (which refuses it: the merge, and its alive messages
// after). It shuts down with the test.
func bareJoin(t *testing.T, to *node) {
	t.Helper()
	sc := serf.DefaultConfig()
	sc.NodeName, sc.Tags = "bare", tags("c2", 4).Encode()
	sc.MemberlistConfig.BindAddr, sc.MemberlistConfig.BindPort = "127.0.0.1", 0
	sc.LogOutput, sc.MemberlistConfig.LogOutput = io.Discard, io.Discard
	bare, err := serf.Create(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bare.Shutdown() })
	if _, err := bare.Join([]string{to.Addr()}, true); err != nil {
		t.Fatalf("bare join: %v", err)
	}
}

// TestRefusalsOutsideAJoinReported: a member refused outside this node's
// own Join (another node's join, its alive messages) is told to
// Config.OnRefused, with the refusal.
func TestRefusalsOutsideAJoinReported(t *testing.T) {
	type refusal struct {
		name string
		err  error
	}
	got := make(chan refusal, 64)
	cfg := config("n1", tags("c1", 4))
	cfg.OnRefused = func(name string, err error) {
		select {
		case got <- refusal{name, err}:
		default:
		}
	}
	bareJoin(t, start(t, cfg))
	if r := testwait.Recv(t, got, 10*time.Second, "call of OnRefused"); r.name != "bare" || !errors.Is(r.err, ErrClusterMismatch) {
		t.Errorf("OnRefused(%q, %v), want bare and ErrClusterMismatch", r.name, r.err)
	}
}

func TestShardCountMismatchRefused(t *testing.T) {
	ns := cluster(t, tags("", 4), "n1", "n2")
	stranger := start(t, config("x1", tags("", 8)))
	refused(t, ns, stranger, ErrShardsMismatch, "has 4 shards, want 8")
}

func TestNameConflictRefused(t *testing.T) {
	ns := cluster(t, tags("c1", 4), "n1", "n2")
	twin := start(t, config("n2", tags("c1", 4)))
	refused(t, ns, twin, ErrNameConflict, `"n2" is already a member at `+ns[1].Addr())
	if m := ns[0].member("n2"); m.GossipAddr != ns[1].Addr() {
		t.Errorf("n1 sees n2 at %s, want %s", m.GossipAddr, ns[1].Addr())
	}
}

// A node restarted at a new address with its name: while the others still
// list its earlier run the join is refused, naming that run's addresses;
// once they see it fail, the name takes the new address.
func TestNameComesBackAtANewAddress(t *testing.T) {
	ns := cluster(t, tags("c1", 4), "n1", "n2")
	moved := tags("c1", 4)
	moved.ClusterAddr = "127.0.0.1:7002"
	again := start(t, config("n2", moved))

	_, err := again.Join([]string{ns[0].Addr()})
	var twin *NameConflictError
	if !errors.As(err, &twin) || !errors.Is(err, ErrNameConflict) {
		t.Fatalf("join while n2 runs = %v, want a *NameConflictError", err)
	}
	if twin.Addr != ns[1].Addr() || twin.ClusterAddr != "127.0.0.1:7001" || twin.Self != again.Addr() {
		t.Errorf("conflict %+v: want n2's earlier run at %s, cluster address 127.0.0.1:7001, and us at %s", twin, ns[1].Addr(), again.Addr())
	}

	ns[1].Shutdown() // no leave: the run fails
	eventually(t, "n1 sees n2's earlier run fail", func() bool { return ns[0].status("n2") == messages.MemberStatus_FAILED })
	eventually(t, "n2 joins at its new address", func() bool {
		_, err := again.Join([]string{ns[0].Addr()})
		return err == nil
	})
	eventually(t, "n1 sees n2 alive at its new address", func() bool {
		m := ns[0].member("n2")
		return m.GetStatus() == messages.MemberStatus_ALIVE && m.GossipAddr == again.Addr() && m.ClusterAddr == "127.0.0.1:7002"
	})
}

func TestEncryptionKeyMismatchRefused(t *testing.T) {
	key := []byte("0123456789abcdef")
	other := []byte("fedcba9876543210")
	keyed := func(name string) Config {
		c := config(name, tags("c1", 4))
		c.EncryptKey = key
		return c
	}
	ns := []*node{start(t, keyed("n1"))}
	n2 := start(t, keyed("n2"))
	n2.join(t, ns[0])
	ns = append(ns, n2)
	eventually(t, "n1 sees n2", func() bool { return ns[0].status("n2") == messages.MemberStatus_ALIVE })

	// A keyring file holding the same key as primary joins.
	dir := t.TempDir()
	writeKeyring := func(name string, keys ...[]byte) string {
		var enc []string
		for _, k := range keys {
			enc = append(enc, `"`+base64.StdEncoding.EncodeToString(k)+`"`)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("["+strings.Join(enc, ",")+"]"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	c := config("n3", tags("c1", 4))
	c.KeyringFile = writeKeyring("good.json", key, other)
	n3 := start(t, c)
	n3.join(t, ns[0])
	ns = append(ns, n3)
	for _, n := range ns {
		eventually(t, n.cfg.Name+" sees 3 alive", func() bool { return strings.Count(names(n.Members()), "ALIVE") == 3 })
	}

	for _, tc := range []struct {
		name string
		cfg  func(Config) Config
	}{
		{"no key", func(c Config) Config { return c }},
		{"other key", func(c Config) Config { c.EncryptKey = other; return c }},
		{"keyring file with other primary", func(c Config) Config {
			c.KeyringFile = writeKeyring("bad.json", other)
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stranger := start(t, tc.cfg(config("x1", tags("c1", 4))))
			began := time.Now()
			if _, err := stranger.Join([]string{ns[0].Addr()}); !errors.Is(err, ErrJoin) {
				t.Fatalf("join = %v, want ErrJoin", err)
			} else {
				t.Logf("join refused after %v: %v", time.Since(began).Round(time.Millisecond), err)
			}
			if d := time.Since(began); d > wait {
				t.Errorf("join took %v", d)
			}
			for _, n := range ns {
				steady(t, 300*time.Millisecond, n.cfg.Name+" unchanged", func() bool { return n.member("x1") == nil })
			}
			if got := len(stranger.Members()); got != 1 {
				t.Errorf("stranger sees %d members", got)
			}
			stranger.Shutdown()
		})
	}
}

func TestSnapshotRejoinsWithoutSeeds(t *testing.T) {
	ns := cluster(t, tags("c1", 4), "n1", "n2")
	c := config("n3", tags("c1", 4))
	c.SnapshotPath = filepath.Join(t.TempDir(), "serf.snapshot")
	n3 := start(t, c)
	n3.join(t, ns[0])
	for _, n := range ns {
		eventually(t, n.cfg.Name+" sees n3", func() bool { return n.status("n3") == messages.MemberStatus_ALIVE })
	}
	n3.Shutdown() // a crash: no Leave, so the snapshot keeps its members
	for _, n := range ns {
		n.awaitEvent(t, messages.MemberEventKind_MEMBER_FAILED, "n3")
	}
	again := n3.restart(t) // no Join
	for _, n := range ns {
		n.awaitEvent(t, messages.MemberEventKind_MEMBER_JOIN, "n3")
	}
	eventually(t, "restarted n3 sees 3 alive", func() bool { return strings.Count(names(again.Members()), "ALIVE") == 3 })
}

func TestBackpressureDropsOldest(t *testing.T) {
	// A receiver that never reads: serf is never blocked, the queue holds
	// queueLimit events and the rest are counted as dropped.
	defer func(l int) { queueLimit = l }(queueLimit)
	queueLimit = 4
	const updates = 10
	n1 := start(t, config("n1", tags("", 0)))
	full := make(chan *messages.MemberEvent)
	g, err := Start(config("n2", tags("", 0)), full)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Shutdown()
	if _, err := g.Join([]string{n1.Addr()}); err != nil {
		t.Fatal(err)
	}
	// One update at a time, each seen by n2, so gossip cannot fold them:
	// n2 gets 2 joins and `updates` updates, and keeps the newest 4.
	for i := 1; i <= updates; i++ {
		role := fmt.Sprint("r", i)
		if err := n1.SetTags(Tags{Role: role}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "n2 sees role "+role, func() bool {
			for _, m := range g.Members() {
				if m.Name == "n1" && m.Role == role {
					return true
				}
			}
			return false
		})
	}
	eventually(t, "at least 2+updates-queueLimit drops counted", func() bool {
		return g.Dropped() >= 2+updates-uint64(queueLimit)
	})
	var got []string
	for range queueLimit {
		select {
		case e := <-full:
			got = append(got, e.Kind.String()+":"+e.Members[0].Role)
		case <-time.After(wait):
			t.Fatalf("only %d events kept: %v", len(got), got)
		}
	}
	if last := got[len(got)-1]; last != fmt.Sprint("MEMBER_UPDATE:r", updates) {
		t.Errorf("kept %v, want the newest events, ending with the last update", got)
	}
	select {
	case e := <-full:
		t.Errorf("more than queueLimit events kept: %v", e)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestValidateName(t *testing.T) {
	for _, name := range []string{"n1", "node-1.dc_2", "A", strings.Repeat("a", MaxNameLen)} {
		if err := ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v", name, err)
		}
	}
	for _, tc := range []struct{ name, says string }{
		{"", "empty"},
		{strings.Repeat("a", MaxNameLen+1), "65 bytes"},
		{"-n1", `"-n1" starts with '-'`},
		{".n1", `".n1" starts with '.'`},
		{"n 1", `"n 1" has ' '`},
		{"n/1", `"n/1" has '/'`},
		{"nö", `"nö" has`},
	} {
		err := ValidateName(tc.name)
		if !errors.Is(err, ErrBadName) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("ValidateName(%q) = %v, want ErrBadName saying %q", tc.name, err, tc.says)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Name: "n1", BindAddr: "127.0.0.1:0", Tags: tags("c1", 4)}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want error
		says string
	}{
		{"bad name", func(c *Config) { c.Name = "-x" }, ErrBadName, `"-x"`},
		{"no bind", func(c *Config) { c.BindAddr = "" }, ErrBadConfig, `BindAddr ""`},
		{"bind no port", func(c *Config) { c.BindAddr = "127.0.0.1" }, ErrBadConfig, `BindAddr "127.0.0.1"`},
		{"bind hostname", func(c *Config) { c.BindAddr = "localhost:7946" }, ErrBadConfig, "must be an IP"},
		{"bind port range", func(c *Config) { c.BindAddr = "127.0.0.1:70000" }, ErrBadConfig, "bad port"},
		{"advertise port 0", func(c *Config) { c.AdvertiseAddr = "10.0.0.1:0" }, ErrBadConfig, `AdvertiseAddr "10.0.0.1:0"`},
		{"short key", func(c *Config) { c.EncryptKey = []byte("short") }, ErrBadConfig, "EncryptKey is 5 bytes"},
		{"key and keyring", func(c *Config) {
			c.EncryptKey, c.KeyringFile = make([]byte, 16), "/k.json"
		}, ErrBadConfig, `KeyringFile "/k.json" both set`},
		{"bad cluster addr", func(c *Config) { c.Tags.ClusterAddr = "nowhere" }, ErrBadTags, `ClusterAddr "nowhere"`},
		{"negative shards", func(c *Config) { c.Tags.Shards = -2 }, ErrBadTags, "shard count -2"},
		{"huge tags", func(c *Config) { c.Tags.Role = strings.Repeat("r", 600) }, ErrBadTags, "limit 512"},
	} {
		c := good
		tc.edit(&c)
		err := c.Validate()
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: Validate = %v, want %v saying %q", tc.name, err, tc.want, tc.says)
		}
		if _, err := Start(c, make(chan *messages.MemberEvent)); !errors.Is(err, tc.want) {
			t.Errorf("%s: Start = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := Start(good, nil); !errors.Is(err, ErrNoEvents) {
		t.Errorf("Start(nil events) = %v", err)
	}
	c := good
	c.KeyringFile = filepath.Join(t.TempDir(), "missing.json")
	if _, err := Start(c, make(chan *messages.MemberEvent)); !errors.Is(err, ErrKeyring) {
		t.Errorf("Start(missing keyring) = %v, want ErrKeyring", err)
	}
}

func TestTagsRoundTrip(t *testing.T) {
	for _, low := range []bool{false, true} {
		in := tags("c1", 16)
		in.DiskLow = low
		m := in.Encode()
		if out, err := DecodeTags(m); err != nil || out != in {
			t.Fatalf("DecodeTags(Encode(%v)) = %v, %v", in, out, err)
		}
		if _, ok := m["dl"]; ok != low {
			t.Errorf("disk low %v encodes to %v", low, m)
		}
	}
	if got := (Tags{}).Encode(); len(got) != 0 {
		t.Errorf("empty tags encode to %v", got)
	}
	in := tags("", 4)
	in.BootstrapExpect = 3
	if out, err := DecodeTags(in.Encode()); err != nil || out != in || in.Encode()["bx"] != "3" {
		t.Errorf("bootstrap expect: DecodeTags(%v) = %v, %v", in.Encode(), out, err)
	}
	for _, bad := range []map[string]string{
		{"sh": "four"}, {"sh": "-1"}, {"ca": "no-port"}, {"dl": "yes"}, {"bx": "three"}, {"bx": "70000"},
	} {
		if _, err := DecodeTags(bad); !errors.Is(err, ErrBadTags) {
			t.Errorf("DecodeTags(%v) = %v, want ErrBadTags", bad, err)
		}
	}
}

// TestLogWriterLevels: serf's and memberlist's lines come out at their
// level, info at debug, an error that is a peer's network failure (a
// probe timed out, a push/pull refused) as a warning, a warning every
// restart makes (a stop without a leave, a suspicion refuted, word of
// its previous run at its own address refuted) as info,
// and a line about a socket this node closed as it stops at debug.
func TestLogWriterLevels(t *testing.T) {
	var buf bytes.Buffer
	self := "10.2.0.1:7946"
	w := logWriter{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), self: &atomic.Pointer[string]{}}
	w.self.Store(&self)
	for _, line := range []string{
		"[INFO] serf: EventMemberJoin: n2 127.0.0.1",
		"[WARN] memberlist: Refuting a suspect message (from: n3)",
		"[WARN] memberlist: Refuting a dead message (from: n3)",
		"[WARN] serf: Shutdown without a Leave",
		"[WARN] memberlist: Refuting an alive message for 'n2' (10.2.0.9:7946) meta:([1] VS [2]), vsn:([1 5 2 0 0 0] VS [1 5 2 0 0 0])",
		"[WARN] memberlist: Refuting an alive message for 'n1' (10.2.0.1:7946) meta:([1] VS [2]), vsn:([1 5 2 0 0 0] VS [1 5 2 0 0 0])",
		"[WARN] memberlist: Was able to connect to n2 over TCP but UDP probes failed, network may be misconfigured",
		"[ERR] memberlist: Failed fallback TCP ping: timeout 50ms: read tcp 127.0.0.1:54918->127.0.0.1:48457: i/o timeout",
		"[ERR] memberlist: Push/Pull with n1 failed: dial tcp 127.0.0.1:54161: connect: connection refused",
		"[ERR] memberlist: Failed to send gossip to 127.0.0.1:7946: write udp: broken pipe",
		"[ERR] memberlist: Failed to send ack: write udp 10.2.0.1:7946->10.2.0.2:7946: sendto: operation not permitted from=10.2.0.2:7946",
		"[ERR] memberlist: Failed to send UDP ping: write udp 10.2.0.1:7946->10.2.0.3:7946: sendto: network is unreachable",
		"[ERR] memberlist: Failed to receive: Encryption is configured but remote state is not encrypted from=127.0.0.1:7946",
		"[ERR] serf: Failed to update tags: tags too large",
		"[WARN] memberlist: Failed to send indirect UDP ping: write udp 127.0.0.1:51109->127.0.0.1:35529: use of closed network connection",
		"[ERR] memberlist: Failed to send UDP ping: write udp 127.0.0.1:51263->127.0.0.1:60067: use of closed network connection",
	} {
		if _, err := w.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		level, _, _ := strings.Cut(strings.SplitN(l, "level=", 2)[1], " ")
		got = append(got, level)
	}
	want := []string{"DEBUG", "INFO", "INFO", "INFO", "WARN", "INFO", "WARN", "WARN", "WARN", "WARN", "WARN", "WARN", "ERROR", "ERROR", "DEBUG", "DEBUG"}
	if !slices.Equal(got, want) {
		t.Fatalf("levels %v, want %v; log:\n%s", got, want, buf.String())
	}
}

// The lines logWriter's rules name are lines serf and memberlist log, at
// warning level: a change of their wording (a module upgrade) fails here,
// not silently in the node's log levels.
func TestRoutineWarningsAreTheLibraries(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/hashicorp/serf", "github.com/hashicorp/memberlist").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	src := gosource.Text(t, true, strings.Fields(string(out))...)
	for _, line := range append(slices.Clone(routineWarnings), refutingAlive) {
		if !strings.Contains(src, `"[WARN] `+line) {
			t.Errorf("serf and memberlist log no warning %q", line)
		}
	}
}

// A node bound to port 0 tells its own previous run's alive message
// (refuted at its own address, as memberlist chose it) from a name
// conflict (another address).
func TestOwnRestartAtTheAddressChosen(t *testing.T) {
	n := start(t, config("n1", tags("", 0)))
	line := func(addr string) string {
		return refutingAlive + "'n1' (" + addr + ") meta:([1] VS [2]), vsn:([1 5 2 0 0 0] VS [1 5 2 0 0 0])"
	}
	if !n.serfLog.ownRestart(line(n.Addr())) {
		t.Errorf("a refutation at its own address %s is not taken for its restart", n.Addr())
	}
	if n.serfLog.ownRestart(line("10.9.9.9:7946")) {
		t.Error("a refutation at another address (a name conflict) is taken for its restart")
	}
}
