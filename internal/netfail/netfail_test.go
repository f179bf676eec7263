package netfail

import "testing"

func TestText(t *testing.T) {
	for s, want := range map[string]bool{
		"msgpack decode error [pos 64]: read tcp 10.0.0.1:1->10.0.0.2:7380: read: connection reset by peer": true,
		"dial tcp 127.0.0.1:7946: connect: connection refused":                                              true,
		"write udp 10.0.0.1:7946->10.0.0.3:7946: sendto: operation not permitted":                           true,
		"read tcp 10.0.0.1:1->10.0.0.2:7380: i/o timeout":                                                   true,
		"write udp 127.0.0.1:1->127.0.0.1:2: use of closed network connection":                              false, // this node's: Closed
		"unexpected EOF":                 false, // not a read's end: a truncated message
		"tags too large":                 false,
		"connection refused by the rule": false,
	} {
		if got := Text(s); got != want {
			t.Errorf("Text(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestClosed(t *testing.T) {
	for s, want := range map[string]bool{
		"msgpack decode error [pos 64]: read tcp 10.0.0.1:45766->10.0.0.2:7380: use of closed network connection": true,
		"write udp 127.0.0.1:51109->127.0.0.1:35529: use of closed network connection":                            true,
		"read tcp 10.0.0.1:1->10.0.0.2:7380: read: connection reset by peer":                                      false,
	} {
		if got := Closed(s); got != want {
			t.Errorf("Closed(%q) = %v, want %v", s, got, want)
		}
	}
}
