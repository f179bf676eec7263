package benchkit

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Result is one redis-benchmark run's figures.
type Result struct {
	RPS      float64
	P50, P99 float64 // ms
	Wall     time.Duration
}

// RedisBenchmark runs redis-benchmark with args (which must include
// --csv and one -t test) within timeout, and reads its CSV line. A run
// that fails, reports an error from the server, or prints no figures is an
// error carrying its output.
func RedisBenchmark(args []string, timeout time.Duration) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "redis-benchmark", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	res := Result{Wall: time.Since(t0)}
	fail := func(why string) (Result, error) {
		return Result{}, fmt.Errorf("redis-benchmark %s: %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), why, stdout.Bytes(), stderr.Bytes())
	}
	switch {
	case ctx.Err() != nil:
		return fail(fmt.Sprintf("did not finish within %v", timeout))
	case err != nil:
		return fail(err.Error()) // redis-benchmark 7 exits 1 on "Error from server"
	case bytes.Contains(bytes.ToLower(stderr.Bytes()), []byte("error")) || bytes.Contains(bytes.ToLower(stdout.Bytes()), []byte("error")):
		return fail("reported errors")
	}
	// With --cluster, the CSV follows a description of the masters.
	out := stdout.Bytes()
	if i := bytes.Index(out, []byte(`"test",`)); i > 0 {
		out = out[i:]
	}
	recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		return fail("output: " + err.Error())
	}
	if len(recs) != 2 || len(recs[1]) != 8 {
		return fail("want a CSV header and one row of 8 fields")
	}
	// "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
	row := recs[1]
	for _, f := range []struct {
		i   int
		dst *float64
	}{{1, &res.RPS}, {4, &res.P50}, {6, &res.P99}} {
		v, err := strconv.ParseFloat(row[f.i], 64)
		if err != nil {
			return fail(fmt.Sprintf("field %d %q: %v", f.i, row[f.i], err))
		}
		*f.dst = v
	}
	if res.RPS <= 0 {
		return fail("no requests per second")
	}
	return res, nil
}
