package faults

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// TestCorruptorFlipsOnce: the proxy flips exactly the byte flipAt bytes
// after the snapshot magic, in the first stream only, wherever the magic
// falls in the connection. (It needs no Docker.)
func TestCorruptorFlipsOnce(t *testing.T) {
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	got := make(chan []byte, 2)
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			go func() {
				b, _ := io.ReadAll(c)
				got <- b
				c.Close()
			}()
		}
	}()
	const flipAt = 1000
	p := newCorruptor(t, "127.0.0.1:0", sink.Addr().String(), flipAt)
	payload := append(append(bytes.Repeat([]byte("a"), 70000), snapshotMagic...), bytes.Repeat([]byte("b"), 5000)...)
	for i := range 2 {
		c, err := net.Dial("tcp", p.addr())
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(payload); off += 777 { // writes that split the magic
			c.Write(payload[off:min(off+777, len(payload))])
		}
		c.Close()
		b := <-got
		want := bytes.Clone(payload)
		if i == 0 {
			want[70000+len(snapshotMagic)+flipAt] ^= 0x5a
		}
		if !bytes.Equal(b, want) {
			t.Fatalf("stream %d: got %d bytes, differing from the expected ones", i, len(b))
		}
	}
}
