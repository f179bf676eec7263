package kv

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// HLLs grown at random through the sparse encoding and past its promotion
// to dense, merged, against a real redis-server: PFADD's answers, the
// values' bytes, and the counts (PFCOUNT of a key and a missing one, which
// Redis does not cache in the value) must be the same.
func TestHLLAgainstRedisRandomly(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	var cmds [][]string
	// Small additions, so that every step of the sparse encoding and the
	// promotion's exact point are seen; h0 most, to reach dense.
	for round := range 1500 {
		key := []string{"h0", "h0", "h0", "h1", "h2"}[rng.IntN(5)]
		args := []string{"PFADD", key}
		for range 1 + rng.IntN(4) {
			args = append(args, strconv.Itoa(rng.IntN(1000000)))
		}
		cmds = append(cmds,
			args,
			[]string{"GET", key},
			[]string{"PFCOUNT", key, "missing"},
		)
		if round%100 == 99 {
			cmds = append(cmds,
				[]string{"PFMERGE", "m", "h0", "h1", "h2"},
				[]string{"GET", "m"},
				[]string{"PFCOUNT", "m", "missing"},
				[]string{"PFCOUNT", "h0", "h1"},
			)
		}
	}
	dense := 0
	againstRedis(t, cmds, func(c []string, want resp) {
		if c[0] == "GET" && len(want.str) > 4 && want.str[4] == hllDense {
			dense++
		}
	})
	if dense == 0 {
		t.Fatal("no HLL was promoted to dense: the test does not reach it")
	}
}

// PFSELFTEST's checks (Redis's own, on this implementation) pass.
func TestHLLSelfTest(t *testing.T) {
	if failed := HLLSelfTest(); failed != "" {
		t.Fatal(failed)
	}
}
