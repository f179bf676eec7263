package storage

import (
	"errors"

	"github.com/cockroachdb/pebble/v2"
)

// pebbleRW adapts a Pebble reader (DB or indexed batch) and, for a batch,
// its writer to kv.Reader and kv.Writer.
type pebbleRW struct {
	r pebble.Reader
	w *pebble.Batch
}

func (p pebbleRW) Get(key []byte) ([]byte, bool, error) {
	v, closer, err := p.r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, true, nil
}

func (p pebbleRW) Scan(lower, upper []byte, fn func(k, v []byte) bool) error {
	it, err := p.r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if !fn(it.Key(), it.Value()) {
			break
		}
	}
	return errors.Join(it.Error(), it.Close())
}

func (p pebbleRW) Set(key, value []byte) error           { return p.w.Set(key, value, nil) }
func (p pebbleRW) Delete(key []byte) error               { return p.w.Delete(key, nil) }
func (p pebbleRW) DeleteRange(lower, upper []byte) error { return p.w.DeleteRange(lower, upper, nil) }
