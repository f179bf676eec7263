package integration

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/freeport"
	"github.com/coppice-kv/coppice/internal/testcerts"
	"github.com/coppice-kv/coppice/transport"
	"github.com/hashicorp/raft"
	"github.com/redis/go-redis/v9"
)

// tlsRedis is a client of n's TLS client port trusting ca, presenting
// cert if not nil.
func (n *node) tlsRedis(ca *testcerts.CA, password string, cert *tls.Certificate) *redis.Client {
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return redis.NewClient(&redis.Options{Addr: n.client, Password: password, TLSConfig: cfg, MaxRetries: -1,
		DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, Protocol: 2})
}

// logHas is the node's log so far, and whether it holds every one of want.
func (n *node) logHas(want ...string) (string, bool) {
	log := readFile(n.log.Name())
	for _, w := range want {
		if !strings.Contains(log, w) {
			return log, false
		}
	}
	return log, true
}

// logCount is how many times s is in the node's log so far.
func (n *node) logCount(s string) int { return strings.Count(readFile(n.log.Name()), s) }

// TestTLSClientPortWithAuth: with --tls-cert-file and --requirepass, a
// TLS client must AUTH and then reads and writes; a plaintext client gets
// no service; redis-cli --tls works. With --tls-ca-file, a client without
// a certificate the CA signed is refused.
func TestTLSClientPortWithAuth(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "clients")
	files := ca.Issue(t, dir, "server")
	n1 := newNode(t, "n1", filepath.Join(dir, "n1"), "--tls-cert-file", files.Cert, "--tls-key-file", files.Key,
		"--requirepass", "s3cret")
	n1.start()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// TLS, no AUTH: refused.
	noauth := n1.tlsRedis(ca, "", nil)
	defer noauth.Close()
	if err := noauth.Set(ctx, "k", "v", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("SET over TLS without AUTH: %v, want NOAUTH", err)
	}
	// TLS, a wrong password: refused.
	wrong := n1.tlsRedis(ca, "nope", nil)
	defer wrong.Close()
	if err := wrong.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("AUTH with a wrong password: %v, want WRONGPASS", err)
	}
	// TLS and AUTH: served.
	c := n1.tlsRedis(ca, "s3cret", nil)
	defer c.Close()
	if err := c.Set(ctx, "k", "over tls", 0).Err(); err != nil {
		t.Fatalf("SET over TLS: %v", err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "over tls" {
		t.Fatalf("GET over TLS = %q, %v", got, err)
	}
	// Plaintext to the TLS port: no service.
	plain := redis.NewClient(&redis.Options{Addr: n1.client, Password: "s3cret", MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, Protocol: 2})
	defer plain.Close()
	if got, err := plain.Get(ctx, "k").Result(); err == nil {
		t.Fatalf("a plaintext client was served on the TLS port: %q", got)
	}
	// redis-cli --tls (Debian's redis-tools is built with TLS).
	if cli, err := exec.LookPath("redis-cli"); err == nil {
		host, port, _ := strings.Cut(n1.client, ":")
		cmd := exec.CommandContext(ctx, cli, "--tls", "--cacert", files.CA, "--sni", "localhost", "-h", host, "-p", port,
			"--user", "default", "--pass", "s3cret", "--no-auth-warning", "GET", "k")
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "over tls" {
			t.Fatalf("redis-cli --tls GET k: %q, %v", out, err)
		}
	} else {
		t.Log("redis-cli not installed: its check is skipped")
	}
	if err := n1.stop(); err != nil {
		t.Fatal(err)
	}

	// Client certificates: with --tls-ca-file, required.
	n2 := newNode(t, "n2", filepath.Join(dir, "n2"), "--tls-cert-file", files.Cert, "--tls-key-file", files.Key,
		"--tls-ca-file", files.CA)
	n2.start()
	anon := n2.tlsRedis(ca, "", nil)
	defer anon.Close()
	if err := anon.Ping(ctx).Err(); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	rogue := testcerts.NewCA(t, "rogue").KeyPair(t, "client")
	forged := n2.tlsRedis(ca, "", &rogue)
	defer forged.Close()
	if err := forged.Ping(ctx).Err(); err == nil {
		t.Fatal("a client with another CA's certificate was served")
	}
	good := ca.KeyPair(t, "client")
	signed := n2.tlsRedis(ca, "", &good)
	defer signed.Close()
	if err := signed.Set(ctx, "k2", "v2", 0).Err(); err != nil {
		t.Fatalf("a client with a certificate the CA signed: %v", err)
	}
}

// clusterTLSFlags are the mutual TLS flags for a certificate.
func clusterTLSFlags(f testcerts.Files) []string {
	return []string{"--cluster-tls-cert-file", f.Cert, "--cluster-tls-key-file", f.Key, "--cluster-tls-ca-file", f.CA}
}

// TestSecurityClusterMutualTLS: nodes with certificates the cluster CA
// signed, each for its own name (--cluster-tls-names), form a cluster over
// mutual TLS and replicate; a node whose certificate another CA signed, a
// node without TLS on its cluster port, and a node presenting a member's
// certificate under its own name are seen by gossip but refused: never
// added to any group, the cluster's members and voters unchanged.
func TestSecurityClusterMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, rogueCA := testcerts.NewCA(t, "cluster"), testcerts.NewCA(t, "rogue")
	n1Files := ca.Issue(t, dir, "n1")
	// At debug level the coordinator logs every pass's refusal (a
	// warning once a minute, a debug line in between), counted below.
	debug := append([]string{"--log-level", "debug"}, clusterFlags...)
	n1 := newNode(t, "n1", filepath.Join(dir, "n1"), append(append(clusterTLSFlags(n1Files), "--cluster-tls-names"), debug...)...)
	n1.start()
	n2 := newNode(t, "n2", filepath.Join(dir, "n2"),
		append(append(clusterTLSFlags(ca.Issue(t, dir, "n2")), "--cluster-tls-names", "--join", n1.gossip), debug...)...)
	n2.start()
	eventually(t, 20*time.Second, "two voters in every shard", func() error { return voters(n1, "n1", "n2") })
	eventually(t, 10*time.Second, "two members", func() error { return members(n1, "n1", "n2") })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c1, c2 := n1.redis(), n2.redis()
	defer c1.Close()
	defer c2.Close()
	for i := range 20 {
		k := fmt.Sprintf("key:%d", i)
		if err := c1.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatalf("SET %s via n1: %v", k, err)
		}
		if got, err := c2.Get(ctx, k).Int(); err != nil || got != i {
			t.Fatalf("GET %s via n2 = %d, %v", k, got, err)
		}
	}
	eventually(t, 10*time.Second, "same data on both nodes", func() error { return sameData(n1, n2) })

	// The rogue trusts the cluster CA, so only the cluster's check of
	// its certificate stands in its way; the plain node has no TLS.
	rogueFiles := rogueCA.Issue(t, dir, "rogue")
	rogueFiles.CA = ca.Issue(t, dir, "unused").CA
	rogue := newNode(t, "rogue", filepath.Join(dir, "rogue"), append(append(clusterTLSFlags(rogueFiles), "--join", n1.gossip), clusterFlags...)...)
	plain := newNode(t, "plain", filepath.Join(dir, "plain"), append([]string{"--join", n1.gossip}, clusterFlags...)...)
	// The thief has n1's certificate and key, and checks no names itself.
	thief := newNode(t, "thief", filepath.Join(dir, "thief"), append(append(clusterTLSFlags(n1Files), "--join", n1.gossip), clusterFlags...)...)
	rogue.launch()
	plain.launch()
	thief.launch()
	refusedBy := func(name string) error {
		for _, n := range []*node{n1, n2} {
			if _, ok := n.logHas("does not answer on its cluster address: " + name); ok {
				return nil
			}
		}
		return fmt.Errorf("no refusal of %s logged", name)
	}
	eventually(t, 20*time.Second, "the rogue refused", func() error { return refusedBy("rogue") })
	eventually(t, 10*time.Second, "the plaintext node refused", func() error { return refusedBy("plain") })
	eventually(t, 10*time.Second, "the thief refused", func() error { return refusedBy("thief") })
	eventually(t, 10*time.Second, "the thief's certificate named in a refusal", func() error {
		for _, n := range []*node{n1, n2} {
			if _, ok := n.logHas(`the peer's certificate does not carry its node name: node \"thief\" presented a certificate for [\"localhost\" \"n1\"]`); ok {
				return nil
			}
		}
		log, _ := n1.logHas()
		return errors.New("no refusal of the thief's certificate logged:\n" + log)
	})
	if log, _ := n1.logHas(); !strings.Contains(log, "certificate signed by unknown authority") {
		if log2, _ := n2.logHas(); !strings.Contains(log2, "certificate signed by unknown authority") {
			t.Errorf("no certificate error logged for the rogue")
		}
	}
	// Still refused three reconcile passes later, nothing changed.
	refusals := func() int {
		return n1.logCount("does not answer on its cluster address: rogue") + n2.logCount("does not answer on its cluster address: rogue")
	}
	seen := refusals()
	eventually(t, 10*time.Second, "three more refusals of the rogue", func() error {
		if n := refusals(); n < seen+3 {
			return fmt.Errorf("%d refusals since", n-seen)
		}
		return nil
	})
	if err := voters(n1, "n1", "n2"); err != nil {
		t.Fatal(err)
	}
	if err := nonvoters(n1); err != nil {
		t.Fatal(err)
	}
	if err := members(n1, "n1", "n2"); err != nil {
		t.Fatal(err)
	}
	var view map[string]json.RawMessage
	if err := n1.getJSON("/v1/nodes", &view); err != nil {
		t.Fatal(err)
	}
	if ops := string(view["ops"]); strings.Contains(ops, "rogue") || strings.Contains(ops, "plain") || strings.Contains(ops, "thief") {
		t.Fatalf("an add op was journaled for a refused node: %s", ops)
	}
	if err := c2.Set(ctx, "after", "refusal", 0).Err(); err != nil {
		t.Fatalf("SET after the refusals: %v", err)
	}
}

// TestJoinerTakesNoConnectionBeforeItsCluster: a new node started with
// --join refuses every connection to its cluster port until it has
// joined and taken its cluster's ID from gossip (here its seed never
// answers, so it never does): a node of any cluster, or of none, that
// dials it is told so, and nothing reaches its Raft groups.
func TestJoinerTakesNoConnectionBeforeItsCluster(t *testing.T) {
	dead, err := freeport.Loopback(1)
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t, "n3", filepath.Join(t.TempDir(), "n3"), append([]string{"--join", dead[0]}, clusterFlags...)...)
	n.launch()
	eventually(t, 20*time.Second, "n3 listening and trying to join", func() error {
		if _, ok := n.logHas("joining the cluster"); !ok {
			return errors.New("no join attempt logged")
		}
		return nil
	})
	addr := n.args[slices.Index(n.args, "--cluster-addr")+1]
	for _, cluster := range []string{"cluster-of-another", ""} {
		m, err := transport.Listen("127.0.0.1:0", "", nil, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.SetNode("n1", func() string { return cluster }); err != nil {
			t.Fatal(err)
		}
		_, err = m.Layer(transport.StreamRemote).DialPeer("n3", raft.ServerAddress(addr), 3*time.Second)
		if !errors.Is(err, transport.ErrNoCluster) {
			t.Fatalf("dial of n3 (joining, no cluster ID yet) from cluster %q = %v, want ErrNoCluster", cluster, err)
		}
	}
	if _, ok := n.logHas("this node has not joined its cluster yet"); !ok {
		t.Fatal("n3 logged no refusal")
	}
}

// TestKeyringRefusesNodeWithoutTheKey: gossip encrypted with a keyring
// file; a node with the keyring joins, a node with no key and a node
// with another key do not: their joins fail with an error logged, they
// never appear in the cluster's gossip view, and the cluster is unchanged.
func TestKeyringRefusesNodeWithoutTheKey(t *testing.T) {
	dir := t.TempDir()
	keyring := func(name string, key byte) string {
		k := make([]byte, 32)
		for i := range k {
			k[i] = key + byte(i)
		}
		b, _ := json.Marshal([]string{base64.StdEncoding.EncodeToString(k)})
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, other := keyring("good.json", 1), keyring("other.json", 100)
	n1 := newNode(t, "n1", filepath.Join(dir, "n1"), append([]string{"--keyring-file", good}, clusterFlags...)...)
	n1.start()
	n2 := newNode(t, "n2", filepath.Join(dir, "n2"), append([]string{"--keyring-file", good, "--join", n1.gossip}, clusterFlags...)...)
	n2.start()
	eventually(t, 20*time.Second, "two voters in every shard", func() error { return voters(n1, "n1", "n2") })

	// At debug level: a join's failure is warned of once, and its tries
	// again are debug lines.
	nokey := newNode(t, "nokey", filepath.Join(dir, "nokey"), append([]string{"--join", n1.gossip, "--log-level", "debug"}, clusterFlags...)...)
	wrong := newNode(t, "wrongkey", filepath.Join(dir, "wrongkey"), append([]string{"--keyring-file", other, "--join", n1.gossip, "--log-level", "debug"}, clusterFlags...)...)
	nokey.launch()
	wrong.launch()
	for _, tc := range []struct {
		n    *node
		want string
	}{
		{nokey, "remote state is encrypted and encryption is not configured"},
		{wrong, "no installed keys could decrypt the message"},
	} {
		eventually(t, 15*time.Second, tc.n.name+"'s join fails", func() error {
			if log, ok := tc.n.logHas("joining the cluster", tc.want); !ok {
				return errors.New("no failed join logged yet:\n" + log)
			}
			return nil
		})
	}
	// Three failed join attempts each (one a second), neither is seen.
	for _, n := range []*node{nokey, wrong} {
		eventually(t, 10*time.Second, n.name+" failed three joins", func() error {
			if c := n.logCount("joining the cluster"); c < 3 {
				return fmt.Errorf("%d failed joins", c)
			}
			return nil
		})
	}
	for _, n := range []*node{n1, n2} {
		st, err := n.status()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range st.Nodes {
			if v.Name == "nokey" || v.Name == "wrongkey" {
				t.Fatalf("%s sees %s in gossip: %+v", n.name, v.Name, st.Nodes)
			}
		}
	}
	if err := voters(n1, "n1", "n2"); err != nil {
		t.Fatal(err)
	}
	if err := members(n1, "n1", "n2"); err != nil {
		t.Fatal(err)
	}
}
