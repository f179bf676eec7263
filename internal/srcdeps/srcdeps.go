// Package srcdeps lets a test that builds cmd/node in a subprocess (the
// integration and fault suites) depend on the sources it builds. go test
// caches a package's result by what its test binary imports and the files
// and variables the test reads; a `go build` in a subprocess is invisible
// to it, so without this a change to the node would leave the suites'
// cached passes standing. Hash reads every source file below the module
// root, which records them all.
package srcdeps

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Hash reads every .go, .proto, go.mod, go.sum and Dockerfile below root
// (skipping hidden and testdata directories) and returns a hash of their
// paths and contents.
func Hash(root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(name, ".go"), strings.HasSuffix(name, ".proto"),
			name == "go.mod", name == "go.sum", name == "Dockerfile":
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		h.Write([]byte(rel))
		h.Write([]byte{0})
		h.Write(b)
		h.Write([]byte{0})
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
