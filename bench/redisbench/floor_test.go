package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/coppice-kv/coppice/messages"
	"google.golang.org/protobuf/proto"
)

// The floor answers a write only once the write's record is in its log
// file, and serves what it wrote; many writers at once share syncs.
func TestFloorAnswersWritesOnceLogged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "floor.log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := newFloorBackend(f, 2)

	const writers = 20
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := &messages.Command{Args: [][]byte{[]byte("SET"), {byte('a' + i)}, []byte("v")}, NowMs: 1}
			r := b.Propose(0, cmd).Wait()
			if r.GetStatus() != "OK" {
				t.Errorf("SET %c: %v", 'a'+i, r)
				return
			}
			rec, _ := proto.Marshal(cmd)
			if logged, err := os.ReadFile(path); err != nil || !bytes.Contains(logged, rec) {
				t.Errorf("SET %c answered before its record was in the log (%v)", 'a'+i, err)
			}
		}()
	}
	wg.Wait()
	got := b.Read(0, &messages.Command{Args: [][]byte{[]byte("GET"), []byte("c")}, NowMs: 1}).Wait()
	if string(got.GetBulk()) != "v" {
		t.Fatalf("GET c = %v, want v", got)
	}
	if r := b.Propose(0, &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k")}}).Wait(); r.GetError() == "" {
		t.Fatalf("SET with no value = %v, want an arity error", r)
	}
}
