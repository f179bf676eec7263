package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// readerKinds are the ways the input reaches a Reader: results must not
// depend on how reads split it.
var readerKinds = []struct {
	name string
	wrap func([]byte) io.Reader
}{
	{"whole", func(b []byte) io.Reader { return bytes.NewReader(b) }},
	{"onebyte", func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }},
	{"half", func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) }},
	{"dataerr", func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) }},
	{"chunks7", func(b []byte) io.Reader { return &chunkReader{data: b, n: 7} }},
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), c.n, len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// parseAll reads commands from in until an error, and returns copies of
// them with the error.
func parseAll(rd io.Reader, lim Limits, auth bool) ([][][]byte, error) {
	r := NewReader(rd, lim)
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

// show renders commands for test messages.
func show(cmds [][][]byte) string {
	var b strings.Builder
	for i, c := range cmds {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString("[")
		for j, a := range c {
			if j > 0 {
				b.WriteString(" ")
			}
			b.WriteString(strconv.Quote(string(a)))
		}
		b.WriteString("]")
	}
	return b.String()
}

// strs converts commands written as strings.
func strs(cmds ...[]string) [][][]byte {
	var out [][][]byte
	for _, c := range cmds {
		cmd := make([][]byte, len(c))
		for i, a := range c {
			cmd[i] = []byte(a)
		}
		out = append(out, cmd)
	}
	return out
}

func sameCommands(a, b [][][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if !bytes.Equal(a[i][j], b[i][j]) {
				return false
			}
		}
	}
	return true
}

// sameError reports whether two of ReadCommand's errors are the same.
func sameError(a, b error) bool {
	var ea, eb *Error
	if errors.As(a, &ea) && errors.As(b, &eb) {
		return ea.kind == eb.kind && ea.reply == eb.reply
	}
	return a == b
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// encodeAll re-encodes commands as multibulk requests.
func encodeAll(cmds [][][]byte) []byte {
	var b []byte
	for _, c := range cmds {
		b = AppendCommand(b, c...)
	}
	return b
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", err.Error())
}

// checkParse parses in every way of readerKinds and checks the commands
// and the final error.
func checkParse(t *testing.T, in []byte, lim Limits, auth bool, want [][][]byte, wantErr error) {
	t.Helper()
	for _, k := range readerKinds {
		got, err := parseAll(k.wrap(in), lim, auth)
		if !sameCommands(got, want) {
			t.Errorf("%s: %q: commands %s, want %s", k.name, clip(in), show(got), show(want))
		}
		if !sameError(err, wantErr) {
			t.Errorf("%s: %q: error %s, want %s", k.name, clip(in), errString(err), errString(wantErr))
		}
	}
}

func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:60]) + fmt.Sprintf("...(%d bytes)", len(b))
	}
	return string(b)
}
