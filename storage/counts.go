package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"

	"github.com/cockroachdb/pebble/v2"

	"github.com/coppice-kv/coppice/kv"
)

// countsKey holds the shard's keyCounts and the applied index they are
// at, written in every batch with the data they count: a checkpoint
// carries them, and a store opened without them, or with counts of
// another index (written before they were kept, or by a build that did
// not keep them since), is counted as it opens.
var countsKey = []byte("\x00counts")

// keyCounts are kv.KeyCounts kept exactly: the sum of the expiry times
// in 128 bits (whenHi, whenLo), which no number of keys overflows.
type keyCounts struct {
	keys, expiring int64
	whenHi         int64
	whenLo         uint64
}

// note counts k (a key kv.CountedKey counts) in or out.
func (c *keyCounts) note(k []byte, in bool) {
	record, expiry, when := kv.CountedKey(k)
	d := int64(1)
	if !in {
		d = -1
	}
	switch {
	case record:
		c.keys += d
	case expiry && in:
		c.expiring++
		lo, carry := bits.Add64(c.whenLo, uint64(when), 0)
		c.whenHi += when>>63 + int64(carry)
		c.whenLo = lo
	case expiry:
		c.expiring--
		lo, borrow := bits.Sub64(c.whenLo, uint64(when), 0)
		c.whenHi -= when>>63 + int64(borrow)
		c.whenLo = lo
	}
}

func (c keyCounts) public() kv.KeyCounts {
	return kv.KeyCounts{Keys: c.keys, Expiring: c.expiring, WhenSum: float64(c.whenHi)*(1<<64) + float64(c.whenLo)}
}

// encode is c at applied index.
func (c keyCounts) encode(index uint64) []byte {
	b := make([]byte, 40)
	binary.BigEndian.PutUint64(b, uint64(c.keys))
	binary.BigEndian.PutUint64(b[8:], uint64(c.expiring))
	binary.BigEndian.PutUint64(b[16:], uint64(c.whenHi))
	binary.BigEndian.PutUint64(b[24:], c.whenLo)
	binary.BigEndian.PutUint64(b[32:], index)
	return b
}

func decodeCounts(b []byte) (c keyCounts, index uint64, ok bool) {
	if len(b) != 40 {
		return keyCounts{}, 0, false
	}
	return keyCounts{
		keys:     int64(binary.BigEndian.Uint64(b)),
		expiring: int64(binary.BigEndian.Uint64(b[8:])),
		whenHi:   int64(binary.BigEndian.Uint64(b[16:])),
		whenLo:   binary.BigEndian.Uint64(b[24:]),
	}, binary.BigEndian.Uint64(b[32:]), true
}

// readCounts reads the counts r keeps if they are at applied, its
// applied index, or counts its keys (kept false).
func readCounts(r pebble.Reader, applied uint64) (c keyCounts, kept bool, err error) {
	v, closer, err := r.Get(countsKey)
	switch {
	case err == nil:
		c, index, ok := decodeCounts(v)
		closer.Close()
		if ok && index == applied {
			return c, true, nil
		}
	case !errors.Is(err, pebble.ErrNotFound):
		return keyCounts{}, false, err
	}
	c, err = countKeys(pebbleRW{r: r})
	return c, false, err
}

// countKeys counts the keys r holds: a pass over kv.CountedRanges.
func countKeys(r kv.Reader) (keyCounts, error) {
	var c keyCounts
	for _, rg := range kv.CountedRanges {
		if err := r.Scan(rg[0], rg[1], func(k, _ []byte) bool {
			c.note(k, true)
			return true
		}); err != nil {
			return keyCounts{}, err
		}
	}
	return c, nil
}

// deletedRange takes out of c the counted keys a deletion of [lower,
// upper) removes from r: all of a counted range the deletion covers, or
// those r holds in the part it overlaps. It says whether the deletion
// overlaps a counted range.
func (c *keyCounts) deletedRange(r kv.Reader, lower, upper []byte) (overlaps bool, err error) {
	for i, rg := range kv.CountedRanges {
		lo, hi := maxKey(lower, rg[0]), minKey(upper, rg[1])
		if bytes.Compare(lo, hi) >= 0 {
			continue
		}
		overlaps = true
		if bytes.Equal(lo, rg[0]) && bytes.Equal(hi, rg[1]) {
			if i == 0 {
				c.keys = 0
			} else {
				c.expiring, c.whenHi, c.whenLo = 0, 0, 0
			}
			continue
		}
		if err := r.Scan(lo, hi, func(k, _ []byte) bool {
			c.note(k, false)
			return true
		}); err != nil {
			return true, err
		}
	}
	return overlaps, nil
}

func maxKey(a, b []byte) []byte {
	if bytes.Compare(a, b) > 0 {
		return a
	}
	return b
}

// minKey is the lower of two range ends, nil being no end.
func minKey(a, b []byte) []byte {
	if a == nil || b != nil && bytes.Compare(b, a) < 0 {
		return b
	}
	return a
}
