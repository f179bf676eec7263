package actors

import (
	"testing"
	"time"

	"github.com/coppice-kv/coppice/messages"
)

// A write's answer is waited for longer the more bytes it carries: a
// value of hundreds of MB takes seconds to log and apply.
func TestBytesTime(t *testing.T) {
	small := &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), []byte("v")}}
	big := &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), make([]byte, 512<<20)}}
	if d := bytesTime(small); d > time.Millisecond {
		t.Errorf("a 5-byte write gets %v more", d)
	}
	if d := bytesTime(big); d < 2*time.Minute || d > 3*time.Minute {
		t.Errorf("a 512 MB write gets %v more, want about two minutes", d)
	}
}
