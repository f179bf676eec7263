package faults

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// corruptor is a TCP proxy on the host in front of one node's cluster
// port. It passes everything through, except that the first snapshot
// stream it sees (a Raft InstallSnapshot: storage's stream magic, on a
// connection that may have carried other RPCs before) gets one byte
// flipped, flipAt bytes after the magic.
type corruptor struct {
	ln      net.Listener
	target  string
	flipAt  int
	flipped atomic.Int32
	// where says which connection was corrupted (its stream header).
	where atomic.Value
	wg    sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

// snapshotMagic opens every snapshot stream (storage/snapshot.go).
var snapshotMagic = []byte("COPPICE-SNAPSHOT-2\n")

func newCorruptor(t *testing.T, listen, target string, flipAt int) *corruptor {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &corruptor{ln: ln, target: target, flipAt: flipAt}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *corruptor) addr() string { return p.ln.Addr().String() }

func (p *corruptor) serve() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		// Bounded: the node may be gone (a connect to a removed
		// container's address would wait minutes).
		out, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			p.forward(out, in)
		}()
		go func() {
			defer p.wg.Done()
			io.Copy(in, out)
			in.Close()
		}()
	}
}

// forward copies the dialing side to the node, corrupting the first
// snapshot stream.
func (p *corruptor) forward(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 64<<10)
	// seen holds the last bytes before buf, so the magic is found across
	// reads; left counts down to the byte to flip once the magic is seen.
	var seen, head []byte
	found, left := false, 0
	for {
		n, err := src.Read(buf)
		chunk := buf[:n]
		if len(head) < 16 {
			head = append(head, chunk[:min(n, 16-len(head))]...)
		}
		if n > 0 && p.flipped.Load() == 0 {
			if !found {
				hay := append(seen, chunk...)
				if k := bytes.Index(hay, snapshotMagic); k >= 0 {
					// left: bytes from the end of this chunk to the flip.
					found, left = true, p.flipAt-(len(hay)-(k+len(snapshotMagic)))
				} else if len(hay) >= len(snapshotMagic) {
					seen = append(seen[:0], hay[len(hay)-len(snapshotMagic)+1:]...)
				} else {
					seen = hay
				}
			} else {
				left -= n
			}
			if found && left < 0 && p.flipped.CompareAndSwap(0, 1) {
				chunk[n+left] ^= 0x5a
				p.where.Store(fmt.Sprintf("connection opening %q", head))
			}
		}
		if n > 0 {
			if _, werr := dst.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
