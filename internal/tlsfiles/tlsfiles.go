// Package tlsfiles loads TLS material from PEM files for the node's ports
// (package server's client port, package transport's cluster port). Every
// error is an *Error naming the file at fault, so the node's config can
// name the setting that holds it.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Which file of a set an Error is about.
const (
	Cert = "cert"
	Key  = "key"
	CA   = "ca"
)

// Error is a file that could not be read or used: File is Cert, Key or
// CA, Path the file's name.
type Error struct {
	File string
	Path string
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("tls %s file %s: %v", e.File, e.Path, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// ErrMismatch is a key that is not the certificate's.
var ErrMismatch = errors.New("the private key does not match the certificate's public key")

// KeyPair reads a PEM certificate (chain) and its PEM private key.
func KeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, &Error{Cert, certFile, err}
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, &Error{Key, keyFile, err}
	}
	// X509KeyPair's errors do not say which input is at fault: check
	// the certificate alone first.
	if !hasCert(certPEM) {
		return tls.Certificate{}, &Error{Cert, certFile, errors.New("no PEM certificate in it")}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if err.Error() == "tls: private key does not match public key" {
			return tls.Certificate{}, &Error{Key, keyFile, fmt.Errorf("%w in %s", ErrMismatch, certFile)}
		}
		return tls.Certificate{}, &Error{Key, keyFile, err}
	}
	return pair, nil
}

// hasCert reports whether certPEM holds a parseable certificate.
func hasCert(certPEM []byte) bool {
	pool := x509.NewCertPool()
	return pool.AppendCertsFromPEM(certPEM)
}

// CAPool reads the PEM certificates of the authorities to trust.
func CAPool(caFile string) (*x509.CertPool, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, &Error{CA, caFile, err}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, &Error{CA, caFile, errors.New("no PEM certificate in it")}
	}
	return pool, nil
}
