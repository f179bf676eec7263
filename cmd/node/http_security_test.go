package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testcerts"
	"github.com/coppice-kv/coppice/internal/testwait"
)

// A node with --http-token, --http-read-token and --http-tls-*: its HTTP
// port speaks HTTPS only, everything but the probes wants the token, and
// the read token reads only. The subcommands
// reach it with https://, --tls-ca-file and the token; without the token
// an operation is refused (exit 1) and nothing is done: a leave leaves
// the node running.
func TestHTTPTokenAndTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "http")
	files := ca.Issue(t, dir, "web")
	const token = "s3cret-token-0123456789"
	t.Setenv("COPPICE_HTTP_TOKEN", token) // the node's, and the subcommands' default
	const reader = "r3ader-token-0123456789"
	t.Setenv("COPPICE_HTTP_READ_TOKEN", reader)
	p := startProcess(t, "--name", "n1", "--data-dir", filepath.Join(dir, "data"), "--shards", "2",
		"--client-addr", "127.0.0.1:0", "--cluster-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--log-format", "json", "--http-tls-cert-file", files.Cert, "--http-tls-key-file", files.Key)
	addr := p.waitLine(t, `"msg":"http listener","addr":"([^"]+)","tls":true,"token":true`)[1]
	p.waitLine(t, `"msg":"node started"`)
	https := "https://" + addr

	op := func(cmd string, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := operate(cmd, args, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	// With the token (from the environment) and the CA: served, once the
	// node's system group has its leader (the coordinator).
	testwait.For(t, 20*time.Second, 50*time.Millisecond, "node status with the token", func() error {
		if code, out, errOut := op("status", "--http", https, "--tls-ca-file", files.CA); code != 0 || !strings.Contains(out, `"n1"`) {
			return fmt.Errorf("exit %d\n%s%s", code, out, errOut)
		}
		return nil
	})
	// Without the token, or with another: refused, and the leave not done.
	for _, tok := range []string{"", "another-token-0123456789"} {
		for _, cmd := range []string{"status", "leave"} {
			code, out, errOut := op(cmd, "--http", https, "--tls-ca-file", files.CA, "--token", tok)
			if code != 1 || !strings.Contains(errOut, "401 Unauthorized") || !strings.Contains(out, "--http-token") || strings.Contains(out, token) {
				t.Fatalf("node %s with token %q: exit %d\n%s%s", cmd, tok, code, out, errOut)
			}
		}
	}
	// The read token reads, and may not leave.
	if code, out, errOut := op("status", "--http", https, "--tls-ca-file", files.CA, "--token", reader); code != 0 || !strings.Contains(out, `"n1"`) {
		t.Fatalf("node status with the read token: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := op("leave", "--http", https, "--tls-ca-file", files.CA, "--token", reader); code != 1 || !strings.Contains(errOut, "403 Forbidden") {
		t.Fatalf("node leave with the read token: exit %d\n%s%s", code, out, errOut)
	}
	// A backup wants the token: the read token is refused (and no file is
	// written), the token is served, over HTTPS.
	file := filepath.Join(dir, "n1.backup")
	var out, errOut bytes.Buffer
	if code := backupCmd([]string{"--out", file, "--http", https, "--tls-ca-file", files.CA, "--token", reader}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "403 Forbidden") {
		t.Fatalf("node backup with the read token: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if left, _ := filepath.Glob(file + "*"); len(left) > 0 {
		t.Fatalf("a refused backup left %v", left)
	}
	if code := backupCmd([]string{"--out", file, "--http", https, "--tls-ca-file", files.CA}, &out, &errOut); code != 0 || !strings.Contains(out.String(), `"node": "n1"`) {
		t.Fatalf("node backup: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := restoreCmd([]string{"--from", file, "--check"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), `"applied_index"`) {
		t.Fatalf("node restore --check of the backup: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	// The CA is needed, and plain HTTP is not spoken.
	if code, _, errOut := op("status", "--http", https); code != 1 || !strings.Contains(errOut, "certificate signed by unknown authority") {
		t.Fatalf("node status without the CA: exit %d %s", code, errOut)
	}
	if code, _, errOut := op("status", "--http", addr); code != 1 || !strings.Contains(errOut, "400 Bad Request") {
		t.Fatalf("node status over plain HTTP: exit %d %s", code, errOut)
	}
	// Bad subcommand settings: exit 2, named.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--http", "ftp://" + addr}, `--http "ftp://` + addr + `": want host:port, http://host:port or https://host:port`},
		{[]string{"--http", addr, "--tls-ca-file", files.CA}, `--tls-ca-file "` + files.CA + `": want an https:// address in --http`},
		{[]string{"--http", https, "--tls-ca-file", filepath.Join(dir, "none.pem")}, `--tls-ca-file "` + filepath.Join(dir, "none.pem") + `": open `},
	} {
		if code, _, errOut := op("status", tc.args...); code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("node status %q: exit %d %q, want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	// The probes need no token.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	res, err := hc.Get(https + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz without a token: %s", res.Status)
	}
	// The refused leaves did nothing: the node still runs and serves.
	if code, out, errOut := op("status", "--http", https, "--tls-ca-file", files.CA); code != 0 || !strings.Contains(out, `"n1"`) {
		t.Fatalf("node status after the refused leaves: exit %d\n%s%s", code, out, errOut)
	}
	select {
	case <-p.exited:
		t.Fatalf("the node exited after leaves without the token:\n%s", p.log.String())
	default:
	}
}
