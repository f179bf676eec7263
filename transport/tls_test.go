package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testcerts"
	"github.com/coppice-kv/coppice/internal/testlog"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// logBuffer collects a mux's log lines.
type logBuffer = testlog.Buffer

func listenTLS(t *testing.T, mtls *MutualTLS, log io.Writer) (*Mux, *Remote) {
	t.Helper()
	var lg *slog.Logger
	if log != nil {
		lg = slog.New(slog.NewTextHandler(log, nil))
	}
	m, err := Listen("127.0.0.1:0", "", mtls, lg)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRemote(m, echo, 2*time.Second)
	t.Cleanup(func() { r.Close(); m.Close() })
	return m, r
}

// closedByPeer reads c until the peer closes it; a read that times out
// means the peer kept a connection it should have dropped.
func closedByPeer(t *testing.T, what string, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the connection was kept open", what)
	}
}

// TestMutualTLS: on a cluster port with mutual TLS, a peer whose
// certificate the cluster CA signed is served on every stream; a plaintext
// peer, a TLS peer without a certificate and a peer whose certificate
// another CA signed are each dropped with a warning before any stream
// sees them; and a dialer refuses a server whose certificate another CA
// signed.
func TestMutualTLS(t *testing.T) {
	ca, rogue := testcerts.NewCA(t, "cluster"), testcerts.NewCA(t, "rogue")
	logs := &logBuffer{}
	srv, _ := listenTLS(t, NewMutualTLS(ca.KeyPair(t, "srv"), ca.Pool()), logs)
	addr := srv.Addr().String()
	const stream = 7
	srvLayer := srv.Layer(stream)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A member: remote requests and a Raft stream both work.
	good, goodRemote := listenTLS(t, NewMutualTLS(ca.KeyPair(t, "good"), ca.Pool()), nil)
	got, err := goodRemote.Request(ctx, Peer{Addr: addr}, "a/b", wrapperspb.String("hi"))
	if err != nil || got.(*wrapperspb.StringValue).Value != "a/b:hi" {
		t.Fatalf("member's request: %v, %v", got, err)
	}
	c, err := good.Layer(stream).Dial(raft.ServerAddress(addr), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("x"))
	sc, err := acceptWithin(srvLayer, 5*time.Second)
	if err != nil {
		t.Fatalf("member's stream: %v", err)
	}
	b := make([]byte, 1)
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(sc, b); err != nil || b[0] != 'x' {
		t.Fatalf("member's stream: read %q, %v", b, err)
	}
	sc.Close()
	c.Close()
	if n := logs.Count("refused a peer"); n != 0 {
		t.Fatalf("a member was refused: %d warnings", n)
	}

	// Refused peers, each dropped before its header is read, with a
	// warning that says why: once a minute per host and reason.
	hdr, err := hello{stream: stream}.encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, why string
		dial      func() (net.Conn, error)
	}{
		{"plaintext", "first record does not look like a TLS handshake",
			func() (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }},
		{"TLS without a certificate", "client didn't provide a certificate", func() (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr,
				&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		}},
		{"certificate of another CA", "client didn't provide a certificate", func() (net.Conn, error) {
			// It trusts the cluster CA, so its side of the handshake
			// passes; Go's client sends no certificate the server's CA
			// did not sign, so the server's reason is the one above.
			m, _ := listenTLS(t, NewMutualTLS(rogue.KeyPair(t, "rogue"), ca.Pool()), nil)
			return m.Layer(stream).Dial(raft.ServerAddress(addr), time.Second)
		}},
	} {
		c, err := tc.dial()
		if err == nil {
			c.Write(hdr)
			closedByPeer(t, tc.name, c)
			c.Close()
		}
		testwait.For(t, 5*time.Second, 10*time.Millisecond, tc.name+": a warning logged", func() error {
			if logs.Count("refused a peer: TLS handshake failed") == 0 || logs.Count(tc.why) == 0 {
				return fmt.Errorf("no refusal for %q logged:\n%s", tc.why, logs.String())
			}
			return nil
		})
		if n := len(srvLayer.conns); n != 0 {
			t.Fatalf("%s: %d connections routed to the stream", tc.name, n)
		}
	}

	if n := logs.Count("client didn't provide a certificate"); n != 1 {
		t.Fatalf("the same refusal of the same host logged %d times within a minute, want 1:\n%s", n, logs.String())
	}

	// The rogue's remote requests and pings fail too; a member's ping
	// is answered.
	_, rogueRemote := listenTLS(t, NewMutualTLS(rogue.KeyPair(t, "rogue"), ca.Pool()), nil)
	if _, err := rogueRemote.Request(ctx, Peer{Addr: addr}, "a/b", wrapperspb.String("hi")); err == nil {
		t.Fatal("a peer with another CA's certificate got an answer")
	}
	if err := rogueRemote.Ping(ctx, Peer{Addr: addr}); err == nil {
		t.Fatal("a peer with another CA's certificate got a ping answered")
	}
	if err := goodRemote.Ping(ctx, Peer{Addr: addr}); err != nil {
		t.Fatalf("member's ping: %v", err)
	}

	// A member dialling a server whose certificate another CA signed
	// refuses it.
	fake, _ := listenTLS(t, NewMutualTLS(rogue.KeyPair(t, "fake"), ca.Pool()), nil)
	_, err = good.Layer(stream).Dial(raft.ServerAddress(fake.Addr().String()), time.Second)
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) {
		t.Fatalf("dialling a server of another CA: %v, want a certificate verification error", err)
	}
}

// namedTLSNode listens as node name with a certificate for certName (the
// cluster CA's), checking names.
func namedTLSNode(t *testing.T, ca *testcerts.CA, name, certName string, log io.Writer) (*Mux, *Remote) {
	t.Helper()
	m, r := listenTLS(t, NewMutualTLS(ca.KeyPair(t, certName), ca.Pool()).WithNames(), log)
	if err := m.SetNode(name, func() string { return "c1" }); err != nil {
		t.Fatal(err)
	}
	return m, r
}

// TestMutualTLSNames: with names checked, a member's certificate lets it
// act as itself only: a dialler whose certificate does not carry the name
// it gives is refused, with a warning, and a dialler refuses a node that
// answers with a name its certificate does not carry. A node whose
// certificate is its own is served both ways.
func TestMutualTLSNames(t *testing.T) {
	ca := testcerts.NewCA(t, "cluster")
	logs := &logBuffer{}
	n1, n1Remote := namedTLSNode(t, ca, "n1", "n1", logs)
	addr := n1.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	n2, n2Remote := namedTLSNode(t, ca, "n2", "n2", nil)
	for _, to := range []Peer{{"n1", addr}, {"", addr}} {
		if res, err := n2Remote.Request(ctx, to, "t", wrapperspb.String("hi")); err != nil || res.(*wrapperspb.StringValue).Value != "t:hi" {
			t.Fatalf("n2 with its own certificate, to %+v: %v, %v", to, res, err)
		}
	}
	if err := n1Remote.Ping(ctx, Peer{"n2", n2.Addr().String()}); err != nil {
		t.Fatalf("n1 pinging n2: %v", err)
	}

	// n3's certificate, presented by a node calling itself n2.
	_, impostor := namedTLSNode(t, ca, "n2", "n3", nil)
	_, err := impostor.Request(ctx, Peer{"n1", addr}, "t", wrapperspb.String("hi"))
	if !errors.Is(err, ErrCertName) || !strings.Contains(err.Error(), `refused this node's certificate: it does not carry the name "n2"`) {
		t.Fatalf("a node with n3's certificate calling itself n2 = %v, want ErrCertName", err)
	}
	testwait.For(t, 5*time.Second, 10*time.Millisecond, "the refusal logged", func() error {
		if logs.Count("refused a peer whose certificate does not carry its node name") != 1 || logs.Count(`presented a certificate for [\"localhost\" \"n3\"]`) != 1 {
			return fmt.Errorf("not logged once:\n%s", logs.String())
		}
		return nil
	})

	// A node answering as n4 with n5's certificate: the dialler refuses
	// it, meant for n4 or for whichever node answers.
	n4, _ := namedTLSNode(t, ca, "n4", "n5", nil)
	for _, to := range []Peer{{"n4", n4.Addr().String()}, {"", n4.Addr().String()}} {
		_, err := n2Remote.Request(ctx, to, "t", wrapperspb.String("hi"))
		if !errors.Is(err, ErrCertName) || !strings.Contains(err.Error(), `answered as node "n4"`) {
			t.Fatalf("n4 with n5's certificate, dialled as %+v = %v, want ErrCertName", to, err)
		}
	}

	// Without names checked, a certificate the CA signed is enough, under
	// any name.
	loose, _ := listenTLS(t, NewMutualTLS(ca.KeyPair(t, "n6"), ca.Pool()), nil)
	looseImpostor, looseImpostorRemote := listenTLS(t, NewMutualTLS(ca.KeyPair(t, "n3"), ca.Pool()), nil)
	if err := errors.Join(loose.SetNode("n1", func() string { return "c1" }), looseImpostor.SetNode("n2", func() string { return "c1" })); err != nil {
		t.Fatal(err)
	}
	if _, err := looseImpostorRemote.Request(ctx, Peer{"n1", loose.Addr().String()}, "t", wrapperspb.String("hi")); err != nil {
		t.Fatalf("names not checked, n3's certificate as n2 to n6's as n1: %v", err)
	}
}

// TestTLSHandshakeDoesNotHoldOthers: a peer that connects and says
// nothing does not delay another's handshake.
func TestTLSHandshakeDoesNotHoldOthers(t *testing.T) {
	ca := testcerts.NewCA(t, "cluster")
	srv, _ := listenTLS(t, NewMutualTLS(ca.KeyPair(t, "srv"), ca.Pool()), nil)
	addr := srv.Addr().String()
	for range 3 {
		silent, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
	}
	_, cli := listenTLS(t, NewMutualTLS(ca.KeyPair(t, "cli"), ca.Pool()), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := cli.Request(ctx, Peer{Addr: addr}, "a/b", wrapperspb.String("hi")); err != nil {
		t.Fatalf("a member behind silent peers: %v", err)
	}
}

func acceptWithin(l *Layer, d time.Duration) (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-time.After(d):
		return nil, errors.New("nothing accepted")
	}
}
