package resp

import (
	"errors"
	"io"
)

const (
	// ReadBufSize is the input buffer's size (PROTO_IOBUF_LEN).
	ReadBufSize = 16 * 1024
	// bigArg: an argument this long or longer gets its own allocation and is
	// read straight into it (PROTO_MBULK_BIG_ARG). Shorter ones are copied
	// into the Reader's arena.
	bigArg = 32 * 1024
	// bigArgChunk is a big argument's first allocation; it doubles as the
	// bytes arrive, so a length header alone never allocates more.
	bigArgChunk = 64 * 1024
	// The arena and the args slice are kept between commands up to these
	// sizes, and dropped when a command made them bigger.
	maxKeepArena = 256 * 1024
	maxKeepArgs  = 4096
	// maxEmptyReads: an io.Reader returning 0, nil this many times in a row
	// is broken (as in bufio).
	maxEmptyReads = 100
)

// errLineTooLong is line's error, which callers turn into the error of the
// line's kind.
var errLineTooLong = errors.New("resp: line too long")

// Reader reads requests, multibulk or inline, from a client connection. It
// is not safe for concurrent use.
type Reader struct {
	rd  io.Reader
	lim Limits

	buf  []byte // input; buf[r:w] is buffered and not yet parsed
	r, w int
	rerr error // the error rd returned, reported once buf[r:w] is used up

	args  [][]byte // the last command's arguments
	arena []byte   // their bytes, but for big arguments

	bigHeld      bool   // args holds a big argument
	owned        uint64 // bit i: args[i] is a big argument (i < 64)
	err          error  // sticky: the error ReadCommand returned
	authRequired bool
	onWait       func() error

	// The sizes, variables for tests: ReadBufSize, bigArg, bigArgChunk.
	bufSize, bigArg, bigChunk int
}

// NewReader returns a Reader of requests from rd, within limits (zero fields
// take Redis's defaults).
func NewReader(rd io.Reader, limits Limits) *Reader {
	return &Reader{
		rd:       rd,
		lim:      limits.withDefaults(),
		buf:      make([]byte, ReadBufSize),
		bufSize:  ReadBufSize,
		bigArg:   bigArg,
		bigChunk: bigArgChunk,
	}
}

// Limits returns the Reader's limits, defaults filled in.
func (r *Reader) Limits() Limits { return r.lim }

// SetAuthRequired sets whether the connection has yet to authenticate. While
// it has, requests are held to Redis's unauthenticated limits: at most
// UnauthMaxMultibulkLen arguments (ErrUnauthMultibulkLength), each at most
// UnauthMaxBulkLen bytes (ErrUnauthBulkLength). Inline requests are only
// bound by Limits.MaxInlineLen, as in Redis. The default is false.
func (r *Reader) SetAuthRequired(required bool) { r.authRequired = required }

// OnWait sets f to be called whenever the Reader is about to read from its
// io.Reader, that is when what it has buffered does not hold the whole
// command: the moment Redis writes the replies of the commands it has
// processed. A connection handler flushes its Writer there; an error from f
// ends ReadCommand with that error.
func (r *Reader) OnWait(f func() error) { r.onWait = f }

// Buffered returns the number of bytes read from the connection and not yet
// parsed: when 0, the next ReadCommand will wait for the client. A
// non-zero count may be the start of a command whose end has yet to come;
// see OnWait.
func (r *Reader) Buffered() int { return r.w - r.r }

// ReadCommand reads the next request and returns its arguments; args[0] is
// the command's name as the client sent it. Empty requests (an empty inline
// line, *0 or a negative count) are skipped, as Redis does, so args is never
// empty.
//
// The slices are valid until the next call of ReadCommand, which reuses
// their memory: copy what must outlive the command. The slices have no room
// to append into.
//
// At the end of the input between requests, the error is io.EOF; in the
// middle of one, io.ErrUnexpectedEOF. An *Error is a protocol error (see
// ProtocolError). Every error is final: later calls return it again, and the
// connection must be closed.
func (r *Reader) ReadCommand() (args [][]byte, err error) {
	if r.err != nil {
		return nil, r.err
	}
	r.reset()
	for {
		args, err = r.readRequest()
		if err != nil {
			r.err = err
			clear(r.args[:cap(r.args)])
			r.args = r.args[:0]
			r.arena = nil
			return nil, err
		}
		if len(args) > 0 {
			return args, nil
		}
	}
}

// Owned reports whether the last command's argument i has memory of its
// own, which the Reader never reuses: a big argument, read straight into
// an allocation of its own (Redis's PROTO_MBULK_BIG_ARG). The caller may
// keep such an argument past the next ReadCommand without copying it, which
// for a value of hundreds of MB saves seconds on a machine where fresh
// memory is slow to touch. Only the first 64 arguments are tracked; for
// the others Owned is false (copy them).
func (r *Reader) Owned(i int) bool { return i >= 0 && i < 64 && r.owned&(1<<i) != 0 }

// reset forgets the last command, keeping its memory unless it grew large.
func (r *Reader) reset() {
	dropArena := cap(r.arena) > maxKeepArena
	switch {
	case cap(r.args) > maxKeepArgs:
		r.args = nil
	case r.bigHeld || dropArena:
		// Let go of big arguments, and of the arena about to be dropped.
		clear(r.args[:cap(r.args)])
		fallthrough
	default:
		r.args = r.args[:0]
	}
	r.bigHeld = false
	r.owned = 0
	if dropArena {
		r.arena = nil
	} else {
		r.arena = r.arena[:0]
	}
	if len(r.buf) > r.bufSize && r.r == r.w {
		r.buf = make([]byte, r.bufSize)
		r.r, r.w = 0, 0
	}
}

// readRequest reads one request; its arguments may be empty.
func (r *Reader) readRequest() ([][]byte, error) {
	if r.r == r.w {
		if err := r.fill(1); err != nil {
			return nil, err // io.EOF here is the end between requests
		}
	}
	var err error
	if r.buf[r.r] == '*' {
		err = r.readMultibulk()
	} else {
		err = r.readInline()
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return r.args, err
}

// readMultibulk reads *<count>\r\n then count times $<len>\r\n<bytes>\r\n.
//
// As in Redis, the byte after a header line's CR is not checked to be LF,
// nor are the two bytes after an argument checked to be CRLF: they are
// skipped.
func (r *Reader) readMultibulk() error {
	n, err := r.line('\r', 1)
	if err != nil {
		if err == errLineTooLong {
			return ErrTooBigMbulkCount
		}
		return err
	}
	count, ok := parseInt(r.buf[r.r+1 : r.r+n])
	if !ok || count > r.lim.MaxMultibulkLen {
		return ErrInvalidMultibulkLength
	}
	if count > UnauthMaxMultibulkLen && r.authRequired {
		return ErrUnauthMultibulkLength
	}
	r.r += n + 2
	size := int64(n) + 2 // the request's bytes on the wire
	for ; count > 0; count-- {
		n, err := r.line('\r', 1)
		if err != nil {
			if err == errLineTooLong {
				return ErrTooBigBulkCount
			}
			return err
		}
		if c := r.buf[r.r]; c != '$' {
			return expectedDollar(c)
		}
		l, ok := parseInt(r.buf[r.r+1 : r.r+n])
		if !ok || l < 0 || l > r.lim.MaxBulkLen {
			return ErrInvalidBulkLength
		}
		if l > UnauthMaxBulkLen && r.authRequired {
			return ErrUnauthBulkLength
		}
		r.r += n + 2
		size += int64(n) + 2 + l + 2
		if size > r.lim.MaxQueryBuffer {
			return ErrQueryBufferLimit
		}
		if l >= int64(r.bigArg) && len(r.args) < 64 {
			r.owned |= 1 << len(r.args)
		}
		arg, err := r.bulk(int(l))
		if err != nil {
			return err
		}
		r.args = append(r.args, arg)
	}
	return nil
}

// bulk reads an argument of n bytes and the two bytes after it.
func (r *Reader) bulk(n int) ([]byte, error) {
	if n < r.bigArg {
		if err := r.fillTo(n + 2); err != nil {
			return nil, err
		}
		start := len(r.arena)
		r.arena = append(r.arena, r.buf[r.r:r.r+n]...)
		r.r += n + 2
		return r.arena[start:len(r.arena):len(r.arena)], nil
	}
	// A big argument: allocated as its bytes arrive, never from the length
	// alone, and read straight into its own memory.
	dst := make([]byte, 0, min(n, max(r.bigChunk, r.w-r.r)))
	for len(dst) < n {
		if r.r < r.w {
			// Buffered bytes: take them, growing dst for them.
			take := min(r.w-r.r, n-len(dst))
			if len(dst)+take > cap(dst) {
				grown := make([]byte, len(dst), min(n, max(2*cap(dst), len(dst)+take)))
				copy(grown, dst)
				dst = grown
			}
			dst = append(dst, r.buf[r.r:r.r+take]...)
			r.r += take
			continue
		}
		if len(dst) == cap(dst) {
			// Full: read into the input buffer, and grow when bytes come.
			if err := r.fill(1); err != nil {
				return nil, err
			}
			continue
		}
		m, err := r.read(dst[len(dst):cap(dst)])
		if err != nil {
			return nil, err
		}
		dst = dst[:len(dst)+m]
	}
	if err := r.fillTo(2); err != nil {
		return nil, err
	}
	r.r += 2
	r.bigHeld = true
	return dst[:n:n], nil
}

// readInline reads a request line ended by LF (or CRLF) and splits it into
// arguments as Redis's sdssplitargs does.
func (r *Reader) readInline() error {
	n, err := r.line('\n', 0)
	if err != nil {
		if err == errLineTooLong {
			return ErrTooBigInline
		}
		return err
	}
	line := r.buf[r.r : r.r+n]
	if n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if !r.splitArgs(line) {
		return ErrUnbalancedQuotes
	}
	r.r += n + 1
	return nil
}

// line waits for the line at buf[r] to end with term followed by extra
// more bytes, and returns the index of term relative to r. It fails with
// errLineTooLong when Limits.MaxInlineLen+1 bytes hold no term.
//
// As in Redis, which looks for the end with strchr, a NUL byte before term
// means the end is never found: the line then runs into the length limit.
func (r *Reader) line(term byte, extra int) (int, error) {
	limit := r.lim.MaxInlineLen
	scanned := 0 // bytes known to hold neither term nor NUL
	stuck := false
	for {
		avail := r.w - r.r
		if !stuck {
			end := min(avail, limit+1)
			data := r.buf[r.r:]
			for ; scanned < end; scanned++ {
				c := data[scanned]
				if c == term {
					if avail >= scanned+1+extra {
						return scanned, nil
					}
					break
				}
				if c == 0 {
					stuck = true
					break
				}
			}
			if scanned < end && data[scanned] == term {
				// Found, short of the extra bytes.
				if err := r.fill(scanned + 1 + extra); err != nil {
					return 0, err
				}
				continue
			}
		}
		if avail > limit {
			return 0, errLineTooLong
		}
		if err := r.fill(avail + 1); err != nil {
			return 0, err
		}
	}
}

// fillTo reads until need bytes are buffered.
func (r *Reader) fillTo(need int) error {
	for r.w-r.r < need {
		if err := r.fill(need); err != nil {
			return err
		}
	}
	return nil
}

// fill reads once more from the connection, after making room for need
// bytes from r (need > r.w-r.r).
func (r *Reader) fill(need int) error {
	if r.rerr != nil {
		return r.rerr
	}
	if r.r > 0 {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	if need > len(r.buf) {
		grown := make([]byte, max(need, min(2*len(r.buf), r.lim.MaxInlineLen+2)))
		copy(grown, r.buf[:r.w])
		r.buf = grown
	}
	n, err := r.read(r.buf[r.w:])
	r.w += n
	return err
}

// errBadCount is for an io.Reader that returns an impossible count.
var errBadCount = errors.New("resp: io.Reader returned an invalid count")

// read reads into p at least one byte, or fails, after calling the OnWait
// function. An error that comes with bytes is kept for the next call.
func (r *Reader) read(p []byte) (int, error) {
	if r.rerr != nil {
		return 0, r.rerr
	}
	if r.onWait != nil {
		if err := r.onWait(); err != nil {
			r.rerr = err
			return 0, err
		}
	}
	for range maxEmptyReads {
		n, err := r.rd.Read(p)
		if n < 0 || n > len(p) {
			n, err = 0, errBadCount
		}
		if err != nil {
			r.rerr = err
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if n > 0 {
			return n, nil
		}
	}
	r.rerr = io.ErrNoProgress
	return 0, r.rerr
}

// parseInt parses b as Redis's string2ll does: optional '-', no leading
// zeros (but "0" itself), no '+', no spaces, at most 20 bytes, in range.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) >= 21 {
		return 0, false
	}
	if len(b) <= 18 && '1' <= b[0] && b[0] <= '9' {
		// The usual case: positive, and too short to overflow.
		v := int64(b[0] - '0')
		for _, c := range b[1:] {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int64(c-'0')
		}
		return v, true
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	if b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1)/10 || v*10 > 1<<64-1-d {
			return 0, false
		}
		v = v*10 + d
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true
	}
	if v > 1<<63-1 {
		return 0, false
	}
	return int64(v), true
}
