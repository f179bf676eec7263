package transport

// Mutual TLS on the cluster port. With it every connection, Raft's and
// remote requests' alike, is TLS 1.3 authenticated both ways: the listener
// requires a client certificate and the dialer presents the node's, and
// each side accepts the other only if its certificate chains to the
// cluster CA. Addresses are never checked: peers dial each other by the
// IP:port they advertise, which may change. Node names are checked on
// request (WithNames): then each side also wants the other's certificate
// to carry, as a DNS name, the node name the other gives in the hello
// (hello.go), so a member's certificate lets it act as itself only, not
// as any node of the cluster. Without it, any certificate the cluster CA
// signed is a member under any name: the CA is the cluster's membership
// credential, give it no other use.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/coppice-kv/coppice/internal/tlsfiles"
)

// MutualTLS is a node's credentials on the cluster port: its certificate
// and the CA that signs every member's.
type MutualTLS struct {
	server *tls.Config
	client *tls.Config
	// names: a peer's certificate must name it (WithNames).
	names bool
}

// WithNames makes every connection also check that the peer's
// certificate has the peer's node name among its DNS names, both ways: a
// dialler names itself in its hello, an acceptor in its answer. It
// returns t.
func (t *MutualTLS) WithNames() *MutualTLS {
	t.names = true
	return t
}

// CertNames are the DNS names of the node's own certificate.
func (t *MutualTLS) CertNames() []string {
	c := t.server.Certificates[0]
	if c.Leaf == nil {
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return nil
		}
		return leaf.DNSNames
	}
	return c.Leaf.DNSNames
}

// ErrCertName is a peer whose certificate does not carry the node name it
// gives (WithNames).
var ErrCertName = errors.New("transport: the peer's certificate does not carry its node name")

// checkName checks, when t checks names, that c's peer certificate
// carries node among its DNS names.
func (t *MutualTLS) checkName(c net.Conn, node string) error {
	if t == nil || !t.names {
		return nil
	}
	tc, ok := c.(*tls.Conn)
	if !ok {
		return fmt.Errorf("%w: not a TLS connection", ErrCertName)
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return ErrNoPeerCert
	}
	if node == "" || !slices.Contains(certs[0].DNSNames, node) {
		return fmt.Errorf("%w: node %q presented a certificate for %q", ErrCertName, node, certs[0].DNSNames)
	}
	return nil
}

// LoadMutualTLS reads the node's certificate and key and the cluster CA
// from PEM files. An error is a *tlsfiles.Error naming the file at fault.
func LoadMutualTLS(certFile, keyFile, caFile string) (*MutualTLS, error) {
	pair, err := tlsfiles.KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	pool, err := tlsfiles.CAPool(caFile)
	if err != nil {
		return nil, err
	}
	return NewMutualTLS(pair, pool), nil
}

// NewMutualTLS is the node presenting cert and trusting peers whose
// certificates chain to a CA in cas.
func NewMutualTLS(cert tls.Certificate, cas *x509.CertPool) *MutualTLS {
	return &MutualTLS{
		server: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    cas,
		},
		client: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{cert},
			// The chain is verified below, against the cluster CA and
			// without a name: crypto/tls would check the name too.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				return verifyChain(cs.PeerCertificates, cas)
			},
		},
	}
}

// ErrNoPeerCert is a peer that presented no certificate.
var ErrNoPeerCert = errors.New("transport: peer presented no certificate")

// verifyChain checks that the peer's certificate chains to a CA in cas
// and may serve.
func verifyChain(certs []*x509.Certificate, cas *x509.CertPool) error {
	if len(certs) == 0 {
		return ErrNoPeerCert
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: cas, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	return nil
}
