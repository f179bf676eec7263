package server

import "syscall"

// osName is Redis's os field: uname's system, release and machine.
func osName() string {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return "Linux"
	}
	return cstr(u.Sysname[:]) + " " + cstr(u.Release[:]) + " " + cstr(u.Machine[:])
}

// cstr is a C string's bytes up to its NUL (int8 or uint8, by the
// architecture).
func cstr[T int8 | uint8](f []T) string {
	b := make([]byte, 0, len(f))
	for _, c := range f {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// totalSystemMemory is the machine's memory in bytes (sysinfo's).
func totalSystemMemory() uint64 {
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}

// cpuTimes is the process's CPU time and its finished children's
// (getrusage).
func cpuTimes() (self, children cpuTime) {
	get := func(who int) cpuTime {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) != nil {
			return cpuTime{formatCPU(0, 0), formatCPU(0, 0)}
		}
		return cpuTime{formatCPU(int64(ru.Stime.Sec), int64(ru.Stime.Usec)), formatCPU(int64(ru.Utime.Sec), int64(ru.Utime.Usec))}
	}
	return get(syscall.RUSAGE_SELF), get(syscall.RUSAGE_CHILDREN)
}
