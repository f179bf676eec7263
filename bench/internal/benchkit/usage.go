package benchkit

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Usage is what a process has used so far, from Linux's /proc: CPU time
// (user and system) and bytes read (/proc/PID/io rchar: files, page cache
// hits and sockets alike). On this project's shared VMs a figure per
// request moves far less with the machine's load than a request rate.
type Usage struct {
	CPU  time.Duration
	Read int64
}

// Sub is what was used between an earlier reading and u.
func (u Usage) Sub(earlier Usage) Usage {
	return Usage{CPU: u.CPU - earlier.CPU, Read: u.Read - earlier.Read}
}

// ProcUsage reads process pid's usage.
func ProcUsage(pid int) (Usage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Usage{}, err
	}
	io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return Usage{}, err
	}
	// The fields after the command's closing parenthesis; utime and stime
	// are the 14th and 15th of the line, in clock ticks (100/s).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		return Usage{}, errors.New("benchkit: short /proc stat line")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return Usage{}, err
	}
	u := Usage{CPU: time.Duration(ut+st) * 10 * time.Millisecond}
	for _, line := range strings.Split(string(io), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			if u.Read, err = strconv.ParseInt(v, 10, 64); err != nil {
				return Usage{}, fmt.Errorf("benchkit: /proc/%d/io rchar: %w", pid, err)
			}
			return u, nil
		}
	}
	return Usage{}, fmt.Errorf("benchkit: no rchar in /proc/%d/io", pid)
}

// Spread returns the median, least and greatest of xs (not empty).
func Spread(xs []float64) (med, lo, hi float64) {
	s := slices.Sorted(slices.Values(xs))
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return med, s[0], s[len(s)-1]
}
