package benchkit

import (
	"net"
	"strconv"
	"sync"
)

var ports struct {
	mu        sync.Mutex
	handedOut map[int]bool
}

// FreePort returns a loopback TCP port that was free a moment ago and that
// it has not returned before: a port closed after probing can come back
// from the next probe, and two servers given the same one fail to start.
func FreePort() string {
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.handedOut == nil {
		ports.handedOut = map[int]bool{}
	}
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !ports.handedOut[port] {
			ports.handedOut[port] = true
			return strconv.Itoa(port)
		}
	}
}
