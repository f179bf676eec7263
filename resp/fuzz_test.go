package resp

import (
	"bytes"
	"errors"
	"io"
	"math"
	"runtime/metrics"
	"testing"
	"testing/iotest"
)

// smallLimits make short inputs reach every limit.
var smallLimits = Limits{MaxBulkLen: 64, MaxMultibulkLen: 16, MaxInlineLen: 32, MaxQueryBuffer: 256}

// tiny makes a Reader start with an 8-byte buffer and read arguments of 4
// bytes or more as big ones, 8 bytes at first: short inputs then go through
// the buffer's growth and the big arguments' path.
func tiny(r *Reader) *Reader {
	r.buf = make([]byte, 8)
	r.bufSize, r.bigArg, r.bigChunk = 8, 4, 8
	return r
}

// FuzzReadCommand checks, for any input, under Redis's limits and under
// small ones:
//
//   - ReadCommand does not panic;
//   - the commands and the final error do not depend on how reads split
//     the input, nor on the Reader's buffer sizes;
//   - what was parsed, re-encoded as multibulk requests, parses back the
//     same, ending in io.EOF;
//   - requiring authentication only cuts the commands short, with an
//     unauthenticated error;
//   - parsing allocates at most a constant plus a multiple of the input's
//     size, whatever lengths it declares.
func FuzzReadCommand(f *testing.F) {
	f.Fuzz(checkReadCommand)
}

func checkReadCommand(t *testing.T, data []byte) {
	{
		const slack = 256 << 10
		limit := uint64(slack + 32*len(data))
		n := allocatedApprox(limit, func() {
			r := NewReader(bytes.NewReader(data), Limits{})
			for {
				if _, err := r.ReadCommand(); err != nil {
					break
				}
			}
		})
		if n > limit {
			t.Fatalf("%d bytes of input allocated %d bytes (limit %d)", len(data), n, limit)
		}

		for _, lim := range []Limits{{}, smallLimits} {
			cmds, err := parseAll(bytes.NewReader(data), lim, false)
			if err == nil {
				t.Fatal("parseAll ended without an error")
			}
			var perr *Error
			if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &perr) {
				t.Fatalf("unexpected error %v", err)
			}
			for _, c := range cmds {
				if len(c) == 0 {
					t.Fatal("an empty command")
				}
			}

			// How the input arrives makes no difference.
			others := map[string]func() ([][][]byte, error){
				"onebyte": func() ([][][]byte, error) {
					return parseAll(iotest.OneByteReader(bytes.NewReader(data)), lim, false)
				},
				"dataerr": func() ([][][]byte, error) {
					return parseAll(iotest.DataErrReader(bytes.NewReader(data)), lim, false)
				},
				"tiny": func() ([][][]byte, error) {
					return parseTiny(iotest.HalfReader(bytes.NewReader(data)), lim, false)
				},
			}
			for name, parse := range others {
				c2, err2 := parse()
				if !sameCommands(cmds, c2) || !sameError(err, err2) {
					t.Fatalf("%s: %s, %v; whole: %s, %v", name, show(c2), err2, show(cmds), err)
				}
			}

			// Re-encoded, the commands parse back the same.
			enc := encodeAll(cmds)
			back, berr := parseAll(bytes.NewReader(enc), Limits{}, false)
			if berr != io.EOF || !sameCommands(back, cmds) {
				t.Fatalf("re-encoded: %s, %v; want %s", show(back), berr, show(cmds))
			}

			// Before authentication: a prefix of the same commands.
			auth, aerr := parseAll(bytes.NewReader(data), lim, true)
			if len(auth) > len(cmds) || !sameCommands(auth, cmds[:len(auth)]) {
				t.Fatalf("authenticating: %s; without: %s", show(auth), show(cmds))
			}
			if !sameError(aerr, err) && !errors.Is(aerr, ErrUnauthMultibulkLength) && !errors.Is(aerr, ErrUnauthBulkLength) {
				t.Fatalf("authenticating: %v; without: %v", aerr, err)
			}
		}
	}
}

func parseTiny(rd io.Reader, lim Limits, auth bool) ([][][]byte, error) {
	r := tiny(NewReader(rd, lim))
	r.SetAuthRequired(auth)
	var cmds [][][]byte
	for {
		args, err := r.ReadCommand()
		if err != nil {
			return cmds, err
		}
		cmd := make([][]byte, len(args))
		for i, a := range args {
			cmd[i] = bytes.Clone(a)
		}
		cmds = append(cmds, cmd)
	}
}

// The fuzz target's properties hold for the unit tests' inputs, with the
// tiny Reader too.
func TestTinyReader(t *testing.T) {
	for _, in := range [][]byte{
		pipeline(20),
		[]byte("*3\r\n$3\r\nSET\r\n$20\r\n01234567890123456789\r\n$5\r\nvalue\r\nPING\r\n"),
		[]byte("SET k \"a b c d e f g\"\r\nGET k\n"),
		AppendCommand(nil, bytes.Repeat([]byte("x"), 100000), []byte("a"), bytes.Repeat([]byte("y"), 1000)),
	} {
		want, werr := parseAll(bytes.NewReader(in), Limits{}, false)
		got, err := parseTiny(bytes.NewReader(in), Limits{}, false)
		if werr != io.EOF || err != io.EOF || !sameCommands(got, want) {
			t.Errorf("%q: tiny %d commands, %v; normal %d, %v", clip(in), len(got), err, len(want), werr)
		}
		got, err = parseTiny(iotest.OneByteReader(bytes.NewReader(in)), Limits{}, false)
		if err != io.EOF || !sameCommands(got, want) {
			t.Errorf("%q: tiny, one byte at a time: %d commands, %v", clip(in), len(got), err)
		}
	}
}

// allocatedApprox returns about the bytes f allocates: runtime/metrics
// counts small objects as their spans are handed out, not one by one, but
// unlike runtime.ReadMemStats it does not stop the world, which would make
// fuzzing several times slower.
func allocatedApprox(limit uint64, f func()) uint64 {
	// The counter is the whole process's: other goroutines (tests running
	// in parallel, the runtime) only ever add to it, so a run over limit
	// is run again, up to three times, and the least counts.
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	least := uint64(math.MaxUint64)
	for range 3 {
		metrics.Read(sample)
		before := sample[0].Value.Uint64()
		f()
		metrics.Read(sample)
		if least = min(least, sample[0].Value.Uint64()-before); least <= limit {
			break
		}
	}
	return least
}
