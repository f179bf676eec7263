package main

// Operator subcommands: they talk to a running node's HTTP port.
//
//	node status [--http 127.0.0.1:7381]
//	node add NAME [--role voter|replica|readonly] [--http ...]
//	node remove NAME [--http ...]
//	node leave [--http ...]
//	node trust-stores [--http ...]   (unsafe: see the README, "A lost data dir")
//	node scrub [--http ...]          (read every table of the node's stores back now)
//
// Any node forwards an operation to the cluster's coordinator. The answer
// is printed as JSON; a refusal exits 1 with its reason. A node with
// --http-token wants it: the subcommands send COPPICE_HTTP_TOKEN (or
// --token). One with --http-tls-cert-file speaks HTTPS:
// --http https://host:port, with --tls-ca-file for a certificate that
// the system's authorities did not sign.

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/coppice-kv/coppice/internal/tlsfiles"
)

// subcommands are the operator subcommands, each with the number of node
// names it takes.
var subcommands = map[string]int{"status": 0, "add": 1, "remove": 1, "leave": 0, "trust-stores": 0, "scrub": 0}

func isSubcommand(name string) bool {
	_, ok := subcommands[name]
	return ok
}

// operate runs subcommand cmd with args; it returns the exit code.
func operate(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("node "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	hf := addHTTPFlags(fs, time.Minute)
	role := fs.String("role", "voter", "role of the added node: voter, replica or readonly")
	// Flags may come before or after the node name.
	var names []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		args = fs.Args()
		if len(args) > 0 {
			names, args = append(names, args[0]), args[1:]
		}
	}
	if want := subcommands[cmd]; len(names) != want {
		fmt.Fprintf(stderr, "node %s: want %d node name(s), got %q\n", cmd, want, names)
		return 2
	}
	base, hc, err := httpClient(*hf.addr, *hf.caFile, *hf.timeout)
	if err != nil {
		fmt.Fprintf(stderr, "node %s: %v\n", cmd, err)
		return 2
	}
	var req *http.Request
	switch cmd {
	case "status":
		req, err = http.NewRequest(http.MethodGet, base+"/v1/nodes", nil)
	case "add":
		body, _ := json.Marshal(map[string]string{"name": names[0], "role": *role})
		req, err = http.NewRequest(http.MethodPost, base+"/v1/nodes", bytes.NewReader(body))
	case "remove":
		req, err = http.NewRequest(http.MethodDelete, base+"/v1/nodes/"+url.PathEscape(names[0]), nil)
	case "leave":
		req, err = http.NewRequest(http.MethodPost, base+"/v1/leave", nil)
	case "trust-stores":
		req, err = http.NewRequest(http.MethodPost, base+"/v1/trust-stores", nil)
	case "scrub":
		req, err = http.NewRequest(http.MethodPost, base+"/v1/scrub", nil)
	}
	if err != nil {
		fmt.Fprintf(stderr, "node %s: %v\n", cmd, err)
		return 2
	}
	hf.authorize(req)
	resp, err := hc.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "node %s: %v\n", cmd, err)
		return 1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	stdout.Write(b)
	if len(b) > 0 && b[len(b)-1] != '\n' {
		fmt.Fprintln(stdout)
	}
	if resp.StatusCode >= 300 {
		fmt.Fprintf(stderr, "node %s: %s\n", cmd, resp.Status)
		return 1
	}
	return 0
}

// httpFlags are the flags of a subcommand that talks to a node's HTTP
// port.
type httpFlags struct {
	addr, token, caFile *string
	timeout             *time.Duration
}

func addHTTPFlags(fs *flag.FlagSet, timeout time.Duration) httpFlags {
	return httpFlags{
		addr:    fs.String("http", "127.0.0.1:7381", "the node's HTTP address: host:port, http://host:port or https://host:port"),
		token:   fs.String("token", os.Getenv("COPPICE_HTTP_TOKEN"), "the node's --http-token (default: $COPPICE_HTTP_TOKEN); prefer the environment"),
		caFile:  fs.String("tls-ca-file", "", "with an https:// address, PEM certificates of the authorities to trust (default: the system's)"),
		timeout: fs.Duration("timeout", timeout, "how long to wait for the answer (0: no limit)"),
	}
}

// authorize adds the token, if any, to req.
func (h httpFlags) authorize(req *http.Request) {
	if *h.token != "" {
		req.Header.Set("Authorization", "Bearer "+*h.token)
	}
}

// httpClient is the base URL of addr (host:port is http://host:port) and
// a client for it that trusts caFile's authorities, if given (https only).
func httpClient(addr, caFile string, timeout time.Duration) (string, *http.Client, error) {
	base := addr
	if !strings.Contains(addr, "://") {
		base = "http://" + addr
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return "", nil, fmt.Errorf("--http %q: want host:port, http://host:port or https://host:port", addr)
	}
	base = strings.TrimSuffix(base, "/")
	hc := &http.Client{Timeout: timeout}
	if caFile == "" {
		return base, hc, nil
	}
	if u.Scheme != "https" {
		return "", nil, fmt.Errorf("--tls-ca-file %q: want an https:// address in --http, got %q", caFile, addr)
	}
	pool, err := tlsfiles.CAPool(caFile)
	if fe := (*tlsfiles.Error)(nil); errors.As(err, &fe) {
		err = fe.Err // the flag names the file
	}
	if err != nil {
		return "", nil, fmt.Errorf("--tls-ca-file %q: %w", caFile, err)
	}
	hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return base, hc, nil
}
