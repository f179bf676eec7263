package actors

import (
	"net"
	"sync/atomic"
	"testing"

	"github.com/coppice-kv/coppice/transport"
	"github.com/hashicorp/raft"
)

// TestGoneProbeShared: the groups a leader led ask at once whether its
// process is gone, and share one probe of its port. A port that accepts
// and hangs up (a process being killed, or anything but a refusal) is
// dialled goneProbeTries times and is not gone; one that refuses is.
func TestGoneProbeShared(t *testing.T) {
	m, err := transport.Listen("127.0.0.1:0", "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	layer := m.Layer(transport.ShardStream(0))

	hangsUp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hangsUp.Close()
	var dials atomic.Int32
	go func() {
		for {
			c, err := hangsUp.Accept()
			if err != nil {
				return
			}
			dials.Add(1) // before the dialler's hello fails
			c.Close()
		}
	}()
	refusing, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusingAddr := refusing.Addr().String()
	refusing.Close()

	var p goneProbes
	ask := func(addr string) []bool {
		const groups = 5
		answers := make(chan bool, groups)
		for range groups {
			go func() { answers <- p.gone(layer, "n2", raft.ServerAddress(addr)) }()
		}
		var out []bool
		for range groups {
			out = append(out, <-answers)
		}
		return out
	}

	for _, gone := range ask(hangsUp.Addr().String()) {
		if gone {
			t.Fatal("a port that accepts connections was taken for a gone process")
		}
	}
	// One probe dials goneProbeTries times; a probe per group would dial
	// five times as often. (A group held up past the first probe starts a
	// second one: hence up to two.)
	if n := dials.Load(); n < goneProbeTries || n > 2*goneProbeTries {
		t.Fatalf("5 groups asking at once dialled %d times, want one probe's %d (at most two probes')", n, goneProbeTries)
	}
	for _, gone := range ask(refusingAddr) {
		if !gone {
			t.Fatal("a port that refuses connections was not taken for a gone process")
		}
	}
}
