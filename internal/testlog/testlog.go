// Package testlog is a log destination for tests: several goroutines
// write to it (a node's loggers), the test reads it.
package testlog

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer collects log lines; safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Count is how many times s stands in what was written.
func (b *Buffer) Count(s string) int { return strings.Count(b.String(), s) }
