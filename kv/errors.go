package kv

import (
	"errors"
	"fmt"

	"github.com/coppice-kv/coppice/messages"
)

// Error replies, with Redis 7's exact text.
var (
	errSyntax        = errReply("ERR syntax error")
	errWrongType     = errReply("WRONGTYPE Operation against a key holding the wrong kind of value")
	errNotInteger    = errReply("ERR value is not an integer or out of range")
	errNotFloat      = errReply("ERR value is not a valid float")
	errOverflow      = errReply("ERR increment or decrement would overflow")
	errDecrOverflow  = errReply("ERR decrement would overflow")
	errNaNInf        = errReply("ERR increment would produce NaN or Infinity")
	errArgNaNInf     = errReply("ERR value is NaN or Infinity")
	errHashNotInt    = errReply("ERR hash value is not an integer")
	errHashNotFloat  = errReply("ERR hash value is not a float")
	errOffsetRange   = errReply("ERR offset is out of range")
	errStringTooLong = errReply("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
	errInvalidCursor = errReply("ERR invalid cursor")
	errNXXXGTLT      = errReply("ERR NX and XX, GT or LT options at the same time are not compatible")
	errGTLT          = errReply("ERR GT and LT options at the same time are not compatible")
	errReadWrite     = errReply("ERR kv: a write command cannot run on the read path")
)

// Named errors of the package.
var (
	// ErrScanCount is returned by Scan for a count below 1.
	ErrScanCount = errors.New("kv: scan count must be at least 1")
)

func errExpireTime(cmd string) *messages.Reply {
	return errReply(fmt.Sprintf("ERR invalid expire time in '%s' command", cmd))
}

func errArity(name string) *messages.Reply {
	return errReply(fmt.Sprintf("ERR wrong number of arguments for '%s' command", name))
}

// StorageError is what Exec panics with when its Writer fails. A write
// command may have written part of its changes to the batch when a read or a
// write fails, so the batch must not be committed, nor the entry skipped
// (replicas would diverge): the shard's store takes it for its failure and
// applies nothing more (storage.Shard.ApplyBatch). Read turns storage
// errors into error replies.
type StorageError struct{ Err error }

func (e *StorageError) Error() string { return "kv: storage: " + e.Err.Error() }
func (e *StorageError) Unwrap() error { return e.Err }

// must panics with a *StorageError when err is not nil.
func must(err error) {
	if err != nil {
		panic(&StorageError{Err: err})
	}
}
