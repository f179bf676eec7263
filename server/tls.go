package server

// TLS on the client port: every connection is TLS (1.2 or later), so
// redis-cli --tls and any Redis client with TLS on connect. A plaintext
// client gets no service: its first bytes fail the handshake and the
// connection is closed.

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/coppice-kv/coppice/internal/tlsfiles"
)

// Client certificate policies, as Redis's tls-auth-clients.
const (
	AuthClientsNo       = "no"
	AuthClientsOptional = "optional"
	AuthClientsYes      = "yes"
)

// ErrAuthClients is a client certificate policy that is not one of the
// above, or asks for certificates with no CA to verify them against.
var ErrAuthClients = errors.New("server: bad client certificate policy")

// handshakeWait bounds a client's TLS handshake.
const handshakeWait = 10 * time.Second

// LoadTLS reads the client port's certificate and key, and, if caFile is
// not empty, the CA that client certificates must chain to: authClients
// says whether clients must present one ("yes"), may ("optional": one
// presented is verified), or need not ("no"). An error about a file is a
// *tlsfiles.Error naming it.
func LoadTLS(certFile, keyFile, caFile, authClients string) (*tls.Config, error) {
	pair, err := tlsfiles.KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if caFile == "" {
		if authClients != AuthClientsNo && authClients != "" {
			return nil, fmt.Errorf("%w: %q with no CA file to verify client certificates", ErrAuthClients, authClients)
		}
		return cfg, nil
	}
	if cfg.ClientCAs, err = tlsfiles.CAPool(caFile); err != nil {
		return nil, err
	}
	switch authClients {
	case AuthClientsYes, "":
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	case AuthClientsOptional:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case AuthClientsNo:
		cfg.ClientAuth = tls.NoClientCert
	default:
		return nil, fmt.Errorf("%w: %q, want yes, optional or no", ErrAuthClients, authClients)
	}
	return cfg, nil
}
