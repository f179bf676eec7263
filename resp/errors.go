package resp

import "errors"

// Error is a request the Reader rejects: malformed, or over a limit. Redis
// answers every one of them the same way: it writes Reply (when not empty)
// as an error reply, and closes the connection. The Reader is unusable after
// one: ReadCommand returns the same error again.
//
// Compare errors with errors.Is against the Err* variables;
// ErrExpectedDollar matches every "expected '$', got 'X'" whatever X is.
type Error struct {
	kind  int
	reply string
}

// Error returns the error's text: its reply, or for ErrQueryBufferLimit a
// description.
func (e *Error) Error() string {
	if e.reply == "" {
		return "resp: query buffer limit reached"
	}
	return e.reply
}

// Reply is the error reply Redis writes before it closes the connection,
// without the leading '-' and the trailing CRLF, e.g. "ERR Protocol error:
// invalid bulk length"; "" when Redis closes without a reply
// (ErrQueryBufferLimit).
func (e *Error) Reply() string { return e.reply }

// Fatal reports whether the connection must be closed after the error:
// true for every error of this package (Redis sets CLIENT_CLOSE_AFTER_REPLY
// on every protocol error).
func (e *Error) Fatal() bool { return true }

// Is reports whether target is an *Error of the same kind, so that
// errors.Is(err, ErrExpectedDollar) holds whatever byte Redis got.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.kind == e.kind
}

const (
	kindInvalidMultibulkLength = iota + 1
	kindUnauthMultibulkLength
	kindInvalidBulkLength
	kindUnauthBulkLength
	kindExpectedDollar
	kindTooBigMbulkCount
	kindTooBigBulkCount
	kindTooBigInline
	kindUnbalancedQuotes
	kindQueryBufferLimit
)

func protoErr(kind int, msg string) *Error {
	return &Error{kind: kind, reply: "ERR Protocol error: " + msg}
}

// The Reader's errors, with Redis 7.0's texts (networking.c:
// processMultibulkBuffer, processInlineBuffer, readQueryFromClient).
var (
	// ErrInvalidMultibulkLength: *<count> is not an integer (string2ll's
	// rules: no sign but '-', no leading zeros, no spaces) or exceeds
	// Limits.MaxMultibulkLen.
	ErrInvalidMultibulkLength = protoErr(kindInvalidMultibulkLength, "invalid multibulk length")
	// ErrUnauthMultibulkLength: *<count> over 10 before authentication.
	ErrUnauthMultibulkLength = protoErr(kindUnauthMultibulkLength, "unauthenticated multibulk length")
	// ErrInvalidBulkLength: $<len> is not an integer, is negative or exceeds
	// Limits.MaxBulkLen.
	ErrInvalidBulkLength = protoErr(kindInvalidBulkLength, "invalid bulk length")
	// ErrUnauthBulkLength: $<len> over 16384 before authentication.
	ErrUnauthBulkLength = protoErr(kindUnauthBulkLength, "unauthenticated bulk length")
	// ErrExpectedDollar matches the error for an argument line that does not
	// start with '$'. The error returned names the byte: "ERR Protocol error:
	// expected '$', got 'f'" (a CR or LF shows as a space, as in Redis).
	ErrExpectedDollar = protoErr(kindExpectedDollar, "expected '$', got '?'")
	// ErrTooBigMbulkCount: no CR in the first Limits.MaxInlineLen+1 bytes of
	// a *<count> line.
	ErrTooBigMbulkCount = protoErr(kindTooBigMbulkCount, "too big mbulk count string")
	// ErrTooBigBulkCount: no CR in the first Limits.MaxInlineLen+1 bytes of a
	// $<len> line.
	ErrTooBigBulkCount = protoErr(kindTooBigBulkCount, "too big bulk count string")
	// ErrTooBigInline: no LF in the first Limits.MaxInlineLen+1 bytes of an
	// inline request.
	ErrTooBigInline = protoErr(kindTooBigInline, "too big inline request")
	// ErrUnbalancedQuotes: an inline request with an unterminated quote, or a
	// closing quote followed by something other than a space.
	ErrUnbalancedQuotes = protoErr(kindUnbalancedQuotes, "unbalanced quotes in request")
	// ErrQueryBufferLimit: a request of more than Limits.MaxQueryBuffer bytes.
	// Redis closes the connection without a reply: Reply() is "".
	ErrQueryBufferLimit = &Error{kind: kindQueryBufferLimit}
)

// expectedDollar is ErrExpectedDollar naming the byte b.
func expectedDollar(b byte) *Error {
	// addReplyErrorFormat maps CR and LF to spaces.
	if b == '\r' || b == '\n' {
		b = ' '
	}
	return protoErr(kindExpectedDollar, "expected '$', got '"+string([]byte{b})+"'")
}

// ProtocolError reports whether err is a protocol error that Redis answers
// with an error reply before closing the connection, and that reply's text
// (for Writer.WriteError). It is false for I/O errors and for
// ErrQueryBufferLimit: close the connection without a reply.
//
// Every error ReadCommand returns means the connection must be closed,
// whatever ProtocolError says.
func ProtocolError(err error) (reply string, ok bool) {
	var e *Error
	if errors.As(err, &e) && e.reply != "" {
		return e.reply, true
	}
	return "", false
}
