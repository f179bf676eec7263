package transport

// Mutual TLS on the cluster port. With it every connection, Raft's and
// remote requests' alike, is TLS 1.3 authenticated both ways: the listener
// requires a client certificate and the dialer presents the node's, and
// each side accepts the other only if its certificate chains to the
// cluster CA. Names are not checked: peers dial each other by the IP:port
// they advertise, which may change, so any certificate the cluster CA
// signed is a member. The CA is the cluster's membership credential: give
// it no other use.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/coppice-kv/coppice/internal/tlsfiles"
)

// MutualTLS is a node's credentials on the cluster port: its certificate
// and the CA that signs every member's.
type MutualTLS struct {
	server *tls.Config
	client *tls.Config
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
