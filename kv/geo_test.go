package kv

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// Random places, around one city and over the whole world, and random
// searches against a real redis-server: GEORADIUS, GEORADIUSBYMEMBER and
// GEOSEARCH (radius and box, every unit, sorted or in the boxes' own
// order, COUNT with and without ANY, WITHDIST, WITHHASH, WITHCOORD) must
// answer the same, member for member, and GEOPOS, GEOHASH and GEODIST
// too. (The edge cases by hand are in testdata/diff/geo.txt.)
func TestGeoAgainstRedisRandomly(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	f := func(lo, hi float64) string {
		return strconv.FormatFloat(lo+rng.Float64()*(hi-lo), 'f', 6, 64)
	}
	units := []string{"m", "km", "mi", "ft"}
	var cmds [][]string
	add := []string{"GEOADD", "g"}
	for i := range 300 {
		if i%3 == 0 {
			add = append(add, f(-180, 180), f(-85, 85), "w"+strconv.Itoa(i))
		} else {
			add = append(add, f(12, 14), f(41, 43), "r"+strconv.Itoa(i))
		}
	}
	cmds = append(cmds, add)
	member := func() string {
		if rng.IntN(3) == 0 {
			return "w" + strconv.Itoa(3*rng.IntN(100))
		}
		return "r" + strconv.Itoa(1+3*rng.IntN(99))
	}
	options := func() []string {
		var o []string
		for _, w := range []string{"WITHDIST", "WITHHASH", "WITHCOORD"} {
			if rng.IntN(2) == 0 {
				o = append(o, w)
			}
		}
		switch rng.IntN(3) {
		case 0:
			o = append(o, "ASC")
		case 1:
			o = append(o, "DESC")
		}
		if rng.IntN(3) == 0 {
			o = append(o, "COUNT", strconv.Itoa(1+rng.IntN(20)))
			if rng.IntN(2) == 0 {
				o = append(o, "ANY")
			}
		}
		return o
	}
	for range 400 {
		unit := units[rng.IntN(len(units))]
		radius := strconv.Itoa(1 + rng.IntN(300))
		if unit == "m" || unit == "ft" {
			radius += "000"
		}
		switch rng.IntN(6) {
		case 0:
			cmds = append(cmds, append([]string{"GEORADIUS", "g", f(11, 15), f(40, 44), radius, unit}, options()...))
		case 1:
			cmds = append(cmds, append([]string{"GEORADIUSBYMEMBER", "g", member(), radius, unit}, options()...))
		case 2:
			cmds = append(cmds, append([]string{"GEOSEARCH", "g", "FROMMEMBER", member(), "BYBOX", radius, strconv.Itoa(1 + rng.IntN(300)), unit}, options()...))
		case 3:
			cmds = append(cmds, append([]string{"GEOSEARCH", "g", "FROMLONLAT", f(-180, 180), f(-85, 85), "BYRADIUS", radius + "00", unit}, options()...))
		case 4:
			cmds = append(cmds, []string{"GEODIST", "g", member(), member(), unit})
		default:
			cmds = append(cmds, []string{"GEOPOS", "g", member(), member()}, []string{"GEOHASH", "g", member(), member()})
		}
	}
	found := 0 // searches that found something: the test is not of empty replies
	againstRedis(t, cmds, func(cmd []string, want resp) {
		if cmd[0] != "GEODIST" && cmd[0] != "GEOPOS" && cmd[0] != "GEOHASH" && len(want.items) > 0 {
			found++
		}
	})
	if found < 150 {
		t.Fatalf("only %d searches found something", found)
	}
}
