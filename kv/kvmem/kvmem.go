// Package kvmem is an in-memory kv.Writer: a map, sorted when scanned. The
// engine's tests run on it beside Pebble, and redisbench's floor serves
// from it.
package kvmem

import (
	"bytes"
	"fmt"
	"slices"
)

// Store is an in-memory kv.Writer. It is not safe for concurrent use.
type Store struct {
	m map[string][]byte
}

// New returns an empty Store.
func New() *Store { return &Store{m: map[string][]byte{}} }

func (s *Store) Get(key []byte) ([]byte, bool, error) {
	v, ok := s.m[string(key)]
	if !ok {
		return nil, false, nil
	}
	return bytes.Clone(v), true, nil
}

// Scan hands fn copies of each key and value, and scribbles over them once
// fn returns, so a caller that keeps them (kv.Reader says they are valid
// only during the call) shows at once.
func (s *Store) Scan(lower, upper []byte, fn func(k, v []byte) bool) error {
	return s.scan(lower, upper, false, fn)
}

// ReverseScan is Scan from the last key down.
func (s *Store) ReverseScan(lower, upper []byte, fn func(k, v []byte) bool) error {
	return s.scan(lower, upper, true, fn)
}

func (s *Store) scan(lower, upper []byte, reverse bool, fn func(k, v []byte) bool) error {
	var keys []string
	for k := range s.m {
		if inRange(k, lower, upper) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if reverse {
		slices.Reverse(keys)
	}
	for _, k := range keys {
		kb, vb := []byte(k), bytes.Clone(s.m[k])
		more := fn(kb, vb)
		for i := range kb {
			kb[i] = '#'
		}
		for i := range vb {
			vb[i] = '#'
		}
		if !more {
			break
		}
	}
	return nil
}

// Set refuses keys starting with 0x00: those belong to the storage under
// the engine (storage.appliedKey), which the engine never writes.
func (s *Store) Set(key, value []byte) error {
	if len(key) == 0 || key[0] == 0 {
		return fmt.Errorf("kvmem: engine wrote key %q", key)
	}
	s.m[string(key)] = bytes.Clone(value)
	return nil
}

func (s *Store) Delete(key []byte) error {
	delete(s.m, string(key))
	return nil
}

// DeleteRange deletes the keys in [lower, upper); a nil upper has no end.
func (s *Store) DeleteRange(lower, upper []byte) error {
	for k := range s.m {
		if inRange(k, lower, upper) {
			delete(s.m, k)
		}
	}
	return nil
}

func inRange(k string, lower, upper []byte) bool {
	return k >= string(lower) && (upper == nil || k < string(upper))
}
