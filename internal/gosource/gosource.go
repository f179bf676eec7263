// Package gosource reads Go source for tests that check a library still
// says what the node's code expects of it (the words of a log line).
package gosource

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Text is the non-test Go files of dirs, and of their direct
// subdirectories when sub is true, one after another. It fails t when a
// dir holds none or a file cannot be read.
func Text(t testing.TB, sub bool, dirs ...string) string {
	t.Helper()
	var all strings.Builder
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		if sub {
			more, _ := filepath.Glob(filepath.Join(dir, "*", "*.go"))
			files = append(files, more...)
		}
		n := 0
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			all.Write(b)
			n++
		}
		if n == 0 {
			t.Fatalf("%s: no Go files", dir)
		}
	}
	return all.String()
}
