//go:build !linux

package freeport

import "net"

func pick() (net.Listener, int, error) { return ephemeral() }
