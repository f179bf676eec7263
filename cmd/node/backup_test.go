package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Bad settings of backup and restore exit 2, a failure 1; each says why,
// and nothing is written.
func TestBackupRestoreRefusals(t *testing.T) {
	dir := t.TempDir()
	exists := filepath.Join(dir, "exists")
	garbage := filepath.Join(dir, "garbage")
	for _, f := range []string{exists, garbage} {
		if err := os.WriteFile(f, []byte("not a backup"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fresh := filepath.Join(dir, "fresh")
	for _, tc := range []struct {
		cmd  string
		args []string
		code int
		want string
	}{
		{"backup", nil, 2, "--out: want the file to write"},
		{"backup", []string{"--out", exists}, 2, `--out "` + exists + `" exists`},
		{"backup", []string{"--out", fresh, "extra"}, 2, "unexpected arguments"},
		{"backup", []string{"--out", fresh, "--http", "ftp://x"}, 2, `--http "ftp://x"`},
		{"backup", []string{"--out", fresh, "--http", "127.0.0.1:1"}, 1, "connection refused"},
		{"restore", nil, 2, "--from: want the backup file"},
		{"restore", []string{"--from", garbage}, 2, "--data-dir: want the data dir to make"},
		{"restore", []string{"--from", garbage, "--data-dir", fresh, "--name", "-x"}, 2, "--name: storage: node name"},
		{"restore", []string{"--from", filepath.Join(dir, "missing"), "--data-dir", fresh}, 1, "no such file"},
		{"restore", []string{"--from", garbage, "--data-dir", fresh}, 1, "not a coppice backup"},
		{"restore", []string{"--from", garbage, "--check"}, 1, "not a coppice backup"},
		{"restore", []string{"--from", garbage, "--data-dir", dir}, 1, "is not empty"},
	} {
		var out, errOut bytes.Buffer
		code := run(append([]string{tc.cmd}, tc.args...), envOf(nil), &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.want) || !strings.HasPrefix(errOut.String(), "node "+tc.cmd+": ") {
			t.Errorf("node %s %q: exit %d, stderr %q; want %d and %q", tc.cmd, tc.args, code, errOut.String(), tc.code, tc.want)
		}
		if _, err := os.Stat(fresh); !os.IsNotExist(err) {
			t.Fatalf("node %s %q wrote %s", tc.cmd, tc.args, fresh)
		}
	}
	if got, _ := os.ReadDir(dir); len(got) != 2 {
		t.Fatalf("the dir holds %v, want only the two files", got)
	}
}
