package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/atomicfs"
)

// Pebble replays its MANIFEST (the log of version edits: which tables
// make up the store) up to the first record it cannot read, and opens
// with the edits before it, as if the rest were the write a crash cut
// short (version_set.go, load). Damage to a record in the middle of a
// synced MANIFEST so drops every edit after it without a word: the
// tables flushed after it vanish from the store, whose journal (the Raft
// log store's) or Raft log entries may be gone already, and the store
// opens as it was before. checkManifest reads the current MANIFEST as
// Pebble does and calls such a file damaged: a bad chunk followed by a
// sound chunk that starts a record. A crash leaves no such thing: a
// MANIFEST becomes the current one (its marker moved) only once its first
// write, the store's description and an edit, is synced, and each later
// edit is written and synced alone (version_set.go, UpdateVersionLocked),
// so a write a crash cut short is the file's last record, with nothing
// written after it. The file's last record damaged is either that write
// or rot: rotted tells them apart.
//
// The chunk format is Pebble's record package's "legacy" one, which its
// MANIFEST writer uses: 32 KiB blocks of chunks, each a 7-byte header
// (masked CRC-32C of the type and payload, payload length, type: full,
// first, middle or last) and its payload; a block's tail too short for a
// header is zeros.
const (
	manifestBlock  = 32 << 10
	manifestHeader = 7
	chunkFull      = 1
	chunkFirst     = 2
	chunkLast      = 4
	// zeroTail: Pebble's reader takes zeros in fewer than this many
	// bytes at a block's end for the block's padding (its WAL sync
	// chunk header's size), and stops at more.
	zeroTail = 19
)

// openChecked opens the Pebble store in dir (a shard's, the Raft log
// store's) once its MANIFEST is checked (checkManifest).
func openChecked(fs vfs.FS, dir string, opts *pebble.Options) (*pebble.DB, error) {
	if err := checkManifest(fs, dir); err != nil {
		return nil, err
	}
	return pebble.Open(dir, opts)
}

// currentManifest is the path of the current MANIFEST of the Pebble store
// in dir, "" when it has none (a new store).
func currentManifest(fs vfs.FS, dir string) (string, error) {
	m, name, err := atomicfs.LocateMarker(fs, dir, "manifest")
	if err != nil {
		return "", fmt.Errorf("storage: %s: locating the MANIFEST: %w", dir, err)
	}
	m.Close()
	if name == "" {
		return "", nil
	}
	return fs.PathJoin(dir, name), nil
}

// checkManifest checks the current MANIFEST of the Pebble store in dir,
// if it has one; the error is a Pebble corruption error
// (pebble.IsCorruptionError) naming the file and the offsets.
func checkManifest(fs vfs.FS, dir string) error {
	path, err := currentManifest(fs, dir)
	if err != nil || path == "" {
		return err
	}
	f, err := fs.Open(path)
	if err != nil {
		return fmt.Errorf("storage: %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("storage: %s: %w", path, err)
	}
	bad := firstBadChunk(b)
	if bad < 0 {
		return nil
	}
	if at := recordAfter(b, bad); at >= 0 {
		return fmt.Errorf("%w: %s: the chunk at %d is damaged and a sound record follows it at %d: "+
			"Pebble would open the store without the edits from there on", pebble.ErrCorruption, path, bad, at)
	}
	if rotted(b, bad) {
		return fmt.Errorf("%w: %s: the last chunk, at %d, is damaged, and no part of it is unwritten: rot, not a write a crash cut short: "+
			"Pebble would open the store without its edit", pebble.ErrCorruption, path, bad)
	}
	return nil
}

// rotted says whether the bad chunk at bad, the file's last, is rot in a
// synced write rather than the write a crash cut short, as the journal
// tells them apart (torn): its header promises a payload the file and its
// block hold, and no part of it in any sector is all zeros. A crash
// leaves the sectors of an unsynced write zero (or the file shorter); a
// header whose length is damaged cannot be told from a cut one, and is
// left to Pebble.
func rotted(b []byte, bad int) bool {
	end, ok := chunkEnd(b, bad)
	return ok && !torn(b[bad:end], int64(bad))
}

// chunkEnd is where the chunk at b[at:] ends by its header, if that has a
// valid type and a length the file and the chunk's block hold.
func chunkEnd(b []byte, at int) (int, bool) {
	if len(b)-at < manifestHeader || b[at+6] < chunkFull || b[at+6] > chunkLast {
		return 0, false
	}
	end := at + manifestHeader + int(binary.LittleEndian.Uint16(b[at+4:]))
	return end, end <= min((at/manifestBlock+1)*manifestBlock, len(b))
}

// firstBadChunk is the offset of the first chunk of b that Pebble's
// reader would stop at, or -1.
func firstBadChunk(b []byte) int {
	for block := 0; block < len(b); block += manifestBlock {
		end := min(block+manifestBlock, len(b))
		for at := block; at < end; {
			if end-at < zeroTail && allZero(b[at:end]) {
				break // a block's zero tail (as Pebble's reader takes it), or the file's end
			}
			if end-at < manifestHeader {
				return at // a header cut short
			}
			if !sound(b, at) {
				return at // zeros where a chunk belongs, or damage
			}
			at, _ = chunkEnd(b, at)
		}
	}
	return -1
}

// recordAfter is the offset of a sound chunk that starts a record (full
// or first) somewhere after the bad chunk at bad, or -1. A damaged length
// hides where the next chunk starts, so every offset of the bad chunk's
// block after it is tried; a later block starts with a chunk, which is
// followed through the block. (A chance match needs a valid type, a
// length that fits and a CRC-32C that matches: about 2^-38 an offset.)
// An edit holds user keys (its tables' bounds), which could be made to
// look like a chunk, and the edit a crash cut short must not pass for rot
// on their account: when the bad chunk's header is whole (a valid type, a
// length its block holds) the search starts past its payload, and when
// it is zeros (unwritten: rot does not zero a header) the rest of its
// block is that chunk's and is not searched.
func recordAfter(b []byte, bad int) int {
	block := bad / manifestBlock * manifestBlock
	from := bad + 1
	if end, ok := chunkEnd(b, bad); ok {
		from = end
	} else if allZero(b[bad:min(bad+manifestHeader, len(b))]) {
		from = block + manifestBlock
	}
	for at := from; at < min(block+manifestBlock, len(b)); at++ {
		if startsRecord(b, at) {
			return at
		}
	}
	for start := block + manifestBlock; start < len(b); start += manifestBlock {
		end := min(start+manifestBlock, len(b))
		for at := start; end-at >= manifestHeader && sound(b, at); at, _ = chunkEnd(b, at) {
			if startsRecord(b, at) {
				return at
			}
		}
	}
	return -1
}

// sound says whether a chunk with a valid type, a payload within its
// block and a matching checksum starts at b[at:].
func sound(b []byte, at int) bool {
	end, ok := chunkEnd(b, at)
	if !ok {
		return false
	}
	sum := crc32.Checksum(b[at+6:end], crcTable)
	masked := (sum>>15 | sum<<17) + 0xa282ead8 // Pebble's internal/crc
	return binary.LittleEndian.Uint32(b[at:]) == masked
}

// startsRecord says whether a sound chunk that begins a record (full or
// first) is at b[at:].
func startsRecord(b []byte, at int) bool {
	return sound(b, at) && (b[at+6] == chunkFull || b[at+6] == chunkFirst)
}

// allZero says whether b holds only zeros (nothing written there).
func allZero(b []byte) bool {
	return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 })
}
