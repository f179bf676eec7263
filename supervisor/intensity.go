package supervisor

import "time"

// restartWindow counts restarts per supervisor, as OTP does (protoactor-go
// counts them per child). add records one and reports whether the
// supervisor is still within its intensity.
type restartWindow struct {
	max    int
	period time.Duration
	times  []time.Time // oldest first
}

func (w *restartWindow) add(now time.Time) bool {
	// times are in order (time.Now is monotonic), so the ones out of the
	// period are a prefix: drop it without scanning the rest, which with a
	// high intensity can hold many restarts.
	i := 0
	for i < len(w.times) && now.Sub(w.times[i]) >= w.period {
		i++
	}
	w.times = append(w.times[i:], now)
	return len(w.times) <= w.max
}
