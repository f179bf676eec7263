package kv

import (
	"errors"
	"strings"
	"testing"

	"github.com/coppice-kv/coppice/messages"
)

var errDisk = errors.New("disk on fire")

// failStore fails every call once failing is set.
type failStore struct {
	*memStore
	failing bool
}

func (f *failStore) Get(k []byte) ([]byte, bool, error) {
	if f.failing {
		return nil, false, errDisk
	}
	return f.memStore.Get(k)
}

func (f *failStore) Scan(lo, hi []byte, fn func(k, v []byte) bool) error {
	if f.failing {
		return errDisk
	}
	return f.memStore.Scan(lo, hi, fn)
}

func (f *failStore) ReverseScan(lo, hi []byte, fn func(k, v []byte) bool) error {
	if f.failing {
		return errDisk
	}
	return f.memStore.ReverseScan(lo, hi, fn)
}

func (f *failStore) Set(k, v []byte) error {
	if f.failing {
		return errDisk
	}
	return f.memStore.Set(k, v)
}

func TestStorageErrors(t *testing.T) {
	s := &failStore{memStore: newMemStore()}
	Exec(s, &messages.Command{Args: bs("SET", "k", "v", "PX", "10"), NowMs: 1})
	s.failing = true

	func() {
		defer func() {
			p := recover()
			se, ok := p.(*StorageError)
			if !ok || !errors.Is(se, errDisk) {
				t.Errorf("Exec panicked with %v, want a *StorageError", p)
			}
		}()
		Exec(s, &messages.Command{Args: bs("SET", "k", "w"), NowMs: 1})
		t.Error("Exec did not panic")
	}()
	if r := Read(s, bs("GET", "k"), 1); !strings.HasPrefix(r.GetError(), "ERR kv: storage: disk on fire") {
		t.Errorf("Read: %v", r)
	}
	if r := Read(s, bs("KEYS", "*"), 1); !strings.HasPrefix(r.GetError(), "ERR kv: storage:") {
		t.Errorf("Read KEYS: %v", r)
	}
	if _, _, err := Scan(s, nil, 10, nil, "", 1); !errors.Is(err, errDisk) {
		t.Errorf("Scan: %v", err)
	}
	if _, err := ExpireDue(s, 100, 10); !errors.Is(err, errDisk) {
		t.Errorf("ExpireDue: %v", err)
	}
}
