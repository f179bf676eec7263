// Package freeport hands out loopback TCP addresses for the servers that
// tests and benchmarks start as separate processes, addresses a server can
// bind again after it is stopped and restarted.
//
// A port the kernel picks for "127.0.0.1:0" comes from the ephemeral range,
// the same range it takes the local port of every outgoing connection from.
// While a node is down between two runs, any connection on the machine can
// be given its port, and the node's restart then fails with "address already
// in use" (seen in CI: a node's HTTP port, taken during its 5 s down). On
// Linux the ports here come from below the ephemeral range instead, where
// the kernel never assigns one on its own, and each is held for the life of
// the process by a lock file, so two test processes running side by side
// never pick the same one.
package freeport

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

var handed struct {
	mu    sync.Mutex
	ports map[int]bool
}

// Loopback returns n distinct loopback addresses ("127.0.0.1:PORT"), free
// when picked and never returned before by this process. All n listeners
// are held until every port is picked.
func Loopback(n int) ([]string, error) {
	handed.mu.Lock()
	defer handed.mu.Unlock()
	if handed.ports == nil {
		handed.ports = map[int]bool{}
	}
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for len(addrs) < n {
		l, port, err := pick()
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		if handed.ports[port] {
			continue
		}
		handed.ports[port] = true
		addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	}
	return addrs, nil
}

// Port is Loopback(1) without the host, for flags that take a port alone;
// it panics when no port can be had.
func Port() string {
	a, err := Loopback(1)
	if err != nil {
		panic(err)
	}
	_, port, _ := net.SplitHostPort(a[0])
	return port
}

// ephemeral picks a port from the kernel's ephemeral range: the fallback
// where no band below it can be used.
func ephemeral() (net.Listener, int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, 0, fmt.Errorf("freeport: %w", err)
	}
	return l, l.Addr().(*net.TCPAddr).Port, nil
}
