package resp

import "math"

// Redis 7.0's limits. The names in parentheses are Redis's (server.h,
// networking.c, config.c).
const (
	// DefaultMaxBulkLen is proto-max-bulk-len's default: 512MB.
	DefaultMaxBulkLen = 512 * 1024 * 1024
	// DefaultMaxMultibulkLen is the largest *<count> of a request: INT_MAX
	// (processMultibulkBuffer). Redis 6.2 and older had 1024*1024.
	DefaultMaxMultibulkLen = math.MaxInt32
	// DefaultMaxInlineLen is PROTO_INLINE_MAX_SIZE, 64KB: the longest inline
	// request, and the longest *<count> or $<len> line.
	DefaultMaxInlineLen = 64 * 1024
	// DefaultMaxQueryBuffer is client-query-buffer-limit's default: 1GB.
	DefaultMaxQueryBuffer = 1024 * 1024 * 1024

	// UnauthMaxMultibulkLen and UnauthMaxBulkLen are the limits of a
	// connection that has yet to authenticate (Redis 7.0, CVE-2021-32675):
	// at most 10 arguments, each at most 16KB. See Reader.SetAuthRequired.
	UnauthMaxMultibulkLen = 10
	UnauthMaxBulkLen      = 16384
)

// Limits bound what a Reader accepts. A zero or negative field takes its
// default (DefaultLimits), so Limits{} is Redis 7's configuration.
type Limits struct {
	// MaxBulkLen is the longest argument of a multibulk request
	// (proto-max-bulk-len). A longer $<len> fails with ErrInvalidBulkLength.
	MaxBulkLen int64
	// MaxMultibulkLen is the most arguments of a multibulk request. A larger
	// *<count> fails with ErrInvalidMultibulkLength.
	MaxMultibulkLen int64
	// MaxInlineLen is the longest inline request line, and the longest
	// *<count> and $<len> line (PROTO_INLINE_MAX_SIZE). Longer lines fail
	// with ErrTooBigInline, ErrTooBigMbulkCount or ErrTooBigBulkCount.
	MaxInlineLen int
	// MaxQueryBuffer bounds the bytes of one request (client-query-buffer-limit):
	// its header lines and arguments as they arrive on the wire. A request that
	// declares more fails with ErrQueryBufferLimit, which Redis answers by
	// closing the connection without a reply.
	MaxQueryBuffer int64
}

// DefaultLimits returns Redis 7's defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxBulkLen:      DefaultMaxBulkLen,
		MaxMultibulkLen: DefaultMaxMultibulkLen,
		MaxInlineLen:    DefaultMaxInlineLen,
		MaxQueryBuffer:  DefaultMaxQueryBuffer,
	}
}

// withDefaults returns l with its unset fields set to their defaults.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBulkLen <= 0 {
		l.MaxBulkLen = d.MaxBulkLen
	}
	if l.MaxMultibulkLen <= 0 {
		l.MaxMultibulkLen = d.MaxMultibulkLen
	}
	if l.MaxInlineLen <= 0 {
		l.MaxInlineLen = d.MaxInlineLen
	}
	if l.MaxQueryBuffer <= 0 {
		l.MaxQueryBuffer = d.MaxQueryBuffer
	}
	return l
}
