//go:build !linux

package server

import "runtime"

// osName is Redis's os field; only the system's name here.
func osName() string { return runtime.GOOS + " " + runtime.GOARCH }

// totalSystemMemory is the machine's memory in bytes: unknown here (0).
func totalSystemMemory() uint64 { return 0 }

// cpuTimes is the process's CPU time and its children's: unknown here.
func cpuTimes() (self, children cpuTime) {
	zero := cpuTime{formatCPU(0, 0), formatCPU(0, 0)}
	return zero, zero
}
