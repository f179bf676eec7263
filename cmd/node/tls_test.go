package main

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coppice-kv/coppice/internal/testcerts"
)

// TestTLSSettings: the TLS files come from every source, are loaded once,
// and a missing, unreadable or mismatched file, or an incomplete set, is
// refused naming the setting and its source.
func TestTLSSettings(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "test")
	client := ca.Issue(t, dir, "client")
	cluster := ca.Issue(t, dir, "cluster")
	other := ca.Issue(t, dir, "other")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	all := map[string]string{
		"tls-cert-file": client.Cert, "tls-key-file": client.Key, "tls-ca-file": client.CA, "tls-auth-clients": "optional",
		"cluster-tls-cert-file": cluster.Cert, "cluster-tls-key-file": cluster.Key, "cluster-tls-ca-file": cluster.CA,
	}
	var args []string
	env := map[string]string{}
	var file []string
	for k, v := range all {
		args = append(args, "--"+k, v)
		env["COPPICE_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_"))] = v
		file = append(file, `"`+k+`": "`+v+`"`)
	}
	for _, tc := range []struct {
		source string
		args   []string
		env    map[string]string
	}{
		{"flags", args, nil},
		{"environment", nil, env},
		{"file", []string{"--config", writeFile(t, "{"+strings.Join(file, ", ")+"}")}, nil},
	} {
		cfg, err := loadConfig(tc.args, envOf(tc.env), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.source, err)
		}
		if cfg.TLSCertFile != client.Cert || cfg.TLSKeyFile != client.Key || cfg.TLSCAFile != client.CA || cfg.TLSAuthClients != "optional" ||
			cfg.ClusterTLSCertFile != cluster.Cert || cfg.ClusterTLSKeyFile != cluster.Key || cfg.ClusterTLSCAFile != cluster.CA {
			t.Errorf("%s: %+v", tc.source, cfg)
		}
		if cfg.clientTLS == nil || cfg.clientTLS.ClientAuth != tls.VerifyClientCertIfGiven || cfg.clusterTLS == nil {
			t.Errorf("%s: TLS not loaded: client %v cluster %v", tc.source, cfg.clientTLS, cfg.clusterTLS)
		}
	}

	// Without a CA file, clients need no certificate; without any file, no TLS.
	cfg, err := loadConfig([]string{"--tls-cert-file", client.Cert, "--tls-key-file", client.Key}, envOf(nil), nil)
	if err != nil || cfg.clientTLS == nil || cfg.clientTLS.ClientAuth != tls.NoClientCert || cfg.clusterTLS != nil {
		t.Fatalf("client TLS without a CA: %v %+v", err, cfg)
	}
	if cfg, err := loadConfig(nil, envOf(nil), nil); err != nil || cfg.clientTLS != nil || cfg.clusterTLS != nil {
		t.Fatalf("defaults: TLS %v %v, %v", cfg.clientTLS, cfg.clusterTLS, err)
	}

	q := func(s string) string { return `"` + s + `"` }
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--tls-cert-file", client.Cert}, nil, "--tls-cert-file " + q(client.Cert) + ": want --tls-key-file with it"},
		{[]string{"--tls-key-file", client.Key}, nil, "--tls-key-file " + q(client.Key) + ": want --tls-cert-file with it"},
		{[]string{"--tls-ca-file", client.CA}, nil, "--tls-ca-file " + q(client.CA) + ": want --tls-cert-file and --tls-key-file with it"},
		{[]string{"--tls-cert-file", client.Cert, "--tls-key-file", client.Key, "--tls-auth-clients", "optional"}, nil,
			`--tls-auth-clients "optional": want --tls-ca-file`},
		{[]string{"--tls-cert-file", missing, "--tls-key-file", client.Key}, nil, "--tls-cert-file " + q(missing) + ": open " + missing + ": no such file"},
		{[]string{"--tls-cert-file", garbage, "--tls-key-file", client.Key}, nil, "--tls-cert-file " + q(garbage) + ": no PEM certificate in it"},
		{[]string{"--tls-cert-file", client.Cert, "--tls-key-file", garbage}, nil, "--tls-key-file " + q(garbage) + ": tls: failed to find any PEM data in key input"},
		{[]string{"--tls-cert-file", client.Cert, "--tls-key-file", other.Key}, nil,
			"--tls-key-file " + q(other.Key) + ": the private key does not match the certificate's public key in " + client.Cert},
		{[]string{"--tls-cert-file", client.Cert, "--tls-key-file", client.Key, "--tls-ca-file", garbage}, nil, "--tls-ca-file " + q(garbage) + ": no PEM certificate in it"},
		{[]string{"--cluster-tls-cert-file", cluster.Cert, "--cluster-tls-key-file", cluster.Key}, nil,
			"--cluster-tls-cert-file " + q(cluster.Cert) + ": want --cluster-tls-ca-file with it"},
		{[]string{"--cluster-tls-ca-file", cluster.CA}, nil,
			"--cluster-tls-ca-file " + q(cluster.CA) + ": want --cluster-tls-cert-file and --cluster-tls-key-file with it"},
		{[]string{"--cluster-tls-cert-file", cluster.Cert, "--cluster-tls-key-file", cluster.Key, "--cluster-tls-ca-file", missing}, nil,
			"--cluster-tls-ca-file " + q(missing) + ": open " + missing},
		{nil, map[string]string{"COPPICE_CLUSTER_TLS_CERT_FILE": cluster.Cert, "COPPICE_CLUSTER_TLS_KEY_FILE": client.Key, "COPPICE_CLUSTER_TLS_CA_FILE": cluster.CA},
			"COPPICE_CLUSTER_TLS_KEY_FILE " + q(client.Key) + ": the private key does not match"},
		{[]string{"--cluster-tls-names"}, nil,
			`--cluster-tls-names "true": want --cluster-tls-cert-file, --cluster-tls-key-file and --cluster-tls-ca-file with it`},
		{[]string{"--name", "n1", "--cluster-tls-names", "--cluster-tls-cert-file", cluster.Cert, "--cluster-tls-key-file", cluster.Key, "--cluster-tls-ca-file", cluster.CA}, nil,
			"--cluster-tls-cert-file " + q(cluster.Cert) + `: with --cluster-tls-names the certificate must carry this node's name "n1" as a DNS name; it carries ["localhost" "cluster"]`},
		{[]string{"--http-tls-cert-file", client.Cert}, nil, "--http-tls-cert-file " + q(client.Cert) + ": want --http-tls-key-file with it"},
		{nil, map[string]string{"COPPICE_HTTP_TLS_KEY_FILE": client.Key}, "COPPICE_HTTP_TLS_KEY_FILE " + q(client.Key) + ": want --http-tls-cert-file with it"},
		{[]string{"--http-tls-cert-file", missing, "--http-tls-key-file", client.Key}, nil, "--http-tls-cert-file " + q(missing) + ": open " + missing},
		{[]string{"--http-tls-cert-file", client.Cert, "--http-tls-key-file", other.Key}, nil,
			"--http-tls-key-file " + q(other.Key) + ": the private key does not match the certificate's public key in " + client.Cert},
	} {
		_, err := loadConfig(tc.args, envOf(tc.env), nil)
		checkErr(t, strings.Join(tc.args, " "), err, tc.want)
	}
	// With names checked, a certificate that carries the node's name.
	cfg, err = loadConfig([]string{"--name", "cluster", "--cluster-tls-names", "--cluster-tls-cert-file", cluster.Cert,
		"--cluster-tls-key-file", cluster.Key, "--cluster-tls-ca-file", cluster.CA}, envOf(nil), nil)
	if err != nil || !cfg.ClusterTLSNames || cfg.clusterTLS == nil {
		t.Fatalf("--cluster-tls-names with the node's own certificate: %v %+v", err, cfg)
	}
	// The HTTP port's pair, alone: HTTPS there only.
	cfg, err = loadConfig([]string{"--http-tls-cert-file", client.Cert, "--http-tls-key-file", client.Key}, envOf(nil), nil)
	if err != nil || cfg.httpTLS == nil || len(cfg.httpTLS.Certificates) != 1 || cfg.clientTLS != nil || cfg.clusterTLS != nil {
		t.Fatalf("HTTP TLS: %v %+v", err, cfg)
	}
	p := writeFile(t, `{"tls-cert-file": "`+client.Cert+`", "tls-key-file": "`+missing+`"}`)
	_, err = loadConfig([]string{"--config", p}, envOf(nil), nil)
	checkErr(t, "file", err, p+": tls-key-file "+q(missing)+": open "+missing)
}
