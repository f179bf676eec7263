package actors

import "testing"

// A peer whose requests fail counts none, and once they do PUBLISH stops
// waiting for it (its messages are still queued and sent).
func TestBroadcastToAFailingPeer(t *testing.T) {
	rt := &Runtime{Name: "n1"} // no cluster listener: every send fails
	rt.addrs.set("n2", "127.0.0.1:1")
	p := newPublisher(rt)
	defer p.close()
	first, ok := p.Broadcast([]byte("c"), []byte("m"), false).(*broadcast)
	if !ok || len(first.items) != 1 {
		t.Fatalf("the first message to n2: %+v; want one count to wait for", first)
	}
	if n := first.Wait().GetInteger(); n != 0 {
		t.Fatalf("a message n2 never got counted %d clients", n)
	}
	second := p.Broadcast([]byte("c"), []byte("m"), false).(*broadcast)
	if len(second.items) != 0 {
		t.Fatalf("PUBLISH waits for n2, whose requests fail")
	}
	rt.addrs.setDown("n2", true)
	if b, queued := p.Broadcast([]byte("c"), []byte("m"), false).(*broadcast); queued {
		t.Fatalf("with n2 down gossip's way, a message is queued for it: %+v", b)
	}
}
