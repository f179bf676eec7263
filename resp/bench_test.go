package resp

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkReadCommand reads a pipelined stream of SET and GET commands, as
// redis-benchmark -P sends them; one op is one command.
func BenchmarkReadCommand(b *testing.B) {
	const n = 100
	data := pipeline(n)
	r := NewReader(&loopReader{data: data}, Limits{})
	b.SetBytes(int64(len(data) / n))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadCommand(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadCommandInline: the same as inline requests.
func BenchmarkReadCommandInline(b *testing.B) {
	data := bytes.Repeat([]byte("SET key:000012 \"value-of-some-length-0123456789\"\r\nGET key:000012\r\n"), 50)
	r := NewReader(&loopReader{data: data}, Limits{})
	b.SetBytes(int64(len(data) / 100))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadCommand(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadCommandBig reads SETs of 1MB values.
func BenchmarkReadCommandBig(b *testing.B) {
	data := AppendCommand(nil, []byte("SET"), []byte("k"), bytes.Repeat([]byte("v"), 1<<20))
	r := NewReader(&loopReader{data: data}, Limits{})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadCommand(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteBulk writes GET's reply; one op is one reply.
func BenchmarkWriteBulk(b *testing.B) {
	w := NewWriter(io.Discard)
	v := []byte("value-of-some-length-0123456789")
	b.SetBytes(int64(len(v) + 7))
	b.ReportAllocs()
	for b.Loop() {
		w.WriteBulk(v)
	}
	w.Flush()
}

// BenchmarkWriteReply writes a small nested reply (HGETALL-like) in RESP3.
func BenchmarkWriteReply(b *testing.B) {
	w := NewWriter(io.Discard)
	r := mapOf(bulk("field1"), bulk("value1"), bulk("field2"), integer(42), bulk("score"), double(1.5))
	b.ReportAllocs()
	for b.Loop() {
		w.WriteReply(r, 3)
	}
	w.Flush()
}
