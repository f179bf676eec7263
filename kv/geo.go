package kv

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/coppice-kv/coppice/messages"
)

// Geospatial commands (GEOADD, GEOPOS, GEODIST, GEOHASH, GEORADIUS,
// GEORADIUSBYMEMBER and their _RO forms, GEOSEARCH, GEOSEARCHSTORE), as
// Redis 7.0's geo.c: a place is a sorted set member whose score is its
// 52-bit geohash (26 bits of longitude and 26 of latitude, interleaved,
// over Web Mercator's latitude range); a search covers the shape with the
// geohash box of the center and its eight neighbours, at the step that
// fits the radius, and keeps the members of each box's score range that
// the exact distance puts inside.

const (
	geoLongMin = -180.0
	geoLongMax = 180.0
	geoLatMin  = -85.05112878
	geoLatMax  = 85.05112878
	geoStepMax = 26
	// earthRadius is Redis's (the Earth's quadratic mean radius, WGS-84).
	earthRadius = 6372797.560856
	mercatorMax = 20037726.37
)

type geoRange struct{ min, max float64 }

// geoHash is a geohash of step bits per axis.
type geoHash struct {
	bits uint64
	step uint
}

func (h geoHash) zero() bool { return h.bits == 0 && h.step == 0 }

// interleave puts x's bits at the even positions and y's at the odd.
func interleave(x, y uint32) uint64 {
	spread := func(v uint64) uint64 {
		v = (v | v<<16) & 0x0000FFFF0000FFFF
		v = (v | v<<8) & 0x00FF00FF00FF00FF
		v = (v | v<<4) & 0x0F0F0F0F0F0F0F0F
		v = (v | v<<2) & 0x3333333333333333
		return (v | v<<1) & 0x5555555555555555
	}
	return spread(uint64(x)) | spread(uint64(y))<<1
}

// deinterleave undoes interleave: x in the low 32 bits, y in the high.
func deinterleave(v uint64) uint64 {
	squash := func(v uint64) uint64 {
		v &= 0x5555555555555555
		v = (v | v>>1) & 0x3333333333333333
		v = (v | v>>2) & 0x0F0F0F0F0F0F0F0F
		v = (v | v>>4) & 0x00FF00FF00FF00FF
		v = (v | v>>8) & 0x0000FFFF0000FFFF
		return (v | v>>16) & 0x00000000FFFFFFFF
	}
	return squash(v) | squash(v>>1)<<32
}

var (
	mercatorLong = geoRange{geoLongMin, geoLongMax}
	mercatorLat  = geoRange{geoLatMin, geoLatMax}
)

// geoEncode is the geohash of (lon, lat) at step over the ranges; ok is
// false outside them.
func geoEncode(longR, latR geoRange, lon, lat float64, step uint) (geoHash, bool) {
	if lon > geoLongMax || lon < geoLongMin || lat > geoLatMax || lat < geoLatMin ||
		lat < latR.min || lat > latR.max || lon < longR.min || lon > longR.max {
		return geoHash{}, false
	}
	latOff := (lat - latR.min) / (latR.max - latR.min) * float64(uint64(1)<<step)
	longOff := (lon - longR.min) / (longR.max - longR.min) * float64(uint64(1)<<step)
	return geoHash{bits: interleave(uint32(latOff), uint32(longOff)), step: step}, true
}

// geoArea is a geohash's box.
type geoArea struct{ long, lat geoRange }

func geoDecode(h geoHash) geoArea {
	sep := deinterleave(h.bits)
	lat, long := uint32(sep), uint32(sep>>32)
	cells := float64(uint64(1) << h.step)
	latScale, longScale := geoLatMax-geoLatMin, geoLongMax-geoLongMin
	return geoArea{
		lat:  geoRange{geoLatMin + float64(lat)/cells*latScale, geoLatMin + float64(lat+1)/cells*latScale},
		long: geoRange{geoLongMin + float64(long)/cells*longScale, geoLongMin + float64(long+1)/cells*longScale},
	}
}

// geoPoint is the center of a member's box: its position.
func geoPoint(score float64) (lon, lat float64) {
	a := geoDecode(geoHash{bits: uint64(score), step: geoStepMax})
	lon = min(max((a.long.min+a.long.max)/2, geoLongMin), geoLongMax)
	lat = min(max((a.lat.min+a.lat.max)/2, geoLatMin), geoLatMax)
	return lon, lat
}

// align52 is a geohash as a 52-bit score.
func (h geoHash) align52() uint64 { return h.bits << (52 - h.step*2) }

func (h geoHash) moved(dx, dy int) geoHash {
	move := func(bits uint64, d int, mask uint64) uint64 {
		if d == 0 {
			return bits
		}
		v, other := bits&mask, bits&^mask
		zz := ^mask >> (64 - h.step*2)
		if d > 0 {
			v += zz + 1
		} else {
			v |= zz
			v -= zz + 1
		}
		v &= mask >> (64 - h.step*2)
		return v | other
	}
	h.bits = move(h.bits, dx, 0xaaaaaaaaaaaaaaaa)
	h.bits = move(h.bits, dy, 0x5555555555555555)
	return h
}

func degRad(d float64) float64 { return d * (math.Pi / 180) }
func radDeg(r float64) float64 { return r / (math.Pi / 180) }

// geoDistance is the haversine distance in meters.
func geoDistance(lon1, lat1, lon2, lat2 float64) float64 {
	lat1r, lon1r, lat2r, lon2r := degRad(lat1), degRad(lon1), degRad(lat2), degRad(lon2)
	u := math.Sin((lat2r - lat1r) / 2)
	v := math.Sin((lon2r - lon1r) / 2)
	return 2 * earthRadius * math.Asin(math.Sqrt(u*u+math.Cos(lat1r)*math.Cos(lat2r)*v*v))
}

// geoShape is a search: around (lon, lat), a radius or a box (width and
// height), in units of conv meters.
type geoShape struct {
	lon, lat              float64
	box                   bool
	radius, width, height float64
	conv                  float64
}

// stepsFor is the step whose boxes fit a search of rangeM meters at lat.
func stepsFor(rangeM, lat float64) uint {
	if rangeM == 0 {
		return 26
	}
	step := 1
	for rangeM < mercatorMax {
		rangeM *= 2
		step++
	}
	step -= 2
	if lat > 66 || lat < -66 {
		step--
		if lat > 80 || lat < -80 {
			step--
		}
	}
	return uint(min(max(step, 1), 26))
}

// areas are the nine boxes (center first, then N, S, E, W, NE, NW, SE,
// SW) a search reads, the ones outside its bounds zeroed.
func (s *geoShape) areas() [9]geoHash {
	height, width := s.conv*s.radius, s.conv*s.radius
	radiusM := s.radius
	if s.box {
		height, width = s.conv*s.height/2, s.conv*s.width/2
		radiusM = math.Sqrt((s.width/2)*(s.width/2) + (s.height/2)*(s.height/2))
	}
	radiusM *= s.conv
	latDelta := radDeg(height / earthRadius)
	longDeltaTop := radDeg(width / earthRadius / math.Cos(degRad(s.lat+latDelta)))
	longDeltaBottom := radDeg(width / earthRadius / math.Cos(degRad(s.lat-latDelta)))
	minLon, maxLon := s.lon-longDeltaTop, s.lon+longDeltaTop
	if s.lat < 0 {
		minLon, maxLon = s.lon-longDeltaBottom, s.lon+longDeltaBottom
	}
	minLat, maxLat := s.lat-latDelta, s.lat+latDelta

	steps := stepsFor(radiusM, s.lat)
	hash, _ := geoEncode(mercatorLong, mercatorLat, s.lon, s.lat, steps)
	n := neighbours(hash)
	north, south, east, west := geoDecode(n[1]), geoDecode(n[2]), geoDecode(n[3]), geoDecode(n[4])
	if steps > 1 && (north.lat.max < maxLat || south.lat.min > minLat || east.long.max < maxLon || west.long.min > minLon) {
		steps--
		hash, _ = geoEncode(mercatorLong, mercatorLat, s.lon, s.lat, steps)
		n = neighbours(hash)
	}
	if steps >= 2 {
		area := geoDecode(hash)
		drop := func(i ...int) {
			for _, j := range i {
				n[j] = geoHash{}
			}
		}
		if area.lat.min < minLat {
			drop(2, 7, 8) // south, south-east, south-west
		}
		if area.lat.max > maxLat {
			drop(1, 5, 6) // north, north-east, north-west
		}
		if area.long.min < minLon {
			drop(4, 8, 6) // west, south-west, north-west
		}
		if area.long.max > maxLon {
			drop(3, 7, 5) // east, south-east, north-east
		}
	}
	return n
}

// neighbours is the box and its eight neighbours, in the order the
// search reads them.
func neighbours(h geoHash) [9]geoHash {
	return [9]geoHash{h, h.moved(0, 1), h.moved(0, -1), h.moved(1, 0), h.moved(-1, 0),
		h.moved(1, 1), h.moved(-1, 1), h.moved(1, -1), h.moved(-1, -1)}
}

// contains tells whether the member at score is in the shape, and its
// distance from the center.
func (s *geoShape) contains(score float64) (lon, lat, dist float64, ok bool) {
	lon, lat = geoPoint(score)
	if !s.box {
		dist = geoDistance(s.lon, s.lat, lon, lat)
		return lon, lat, dist, dist <= s.radius*s.conv
	}
	if geoDistance(lon, lat, s.lon, lat) > s.width*s.conv/2 || geoDistance(lon, lat, lon, s.lat) > s.height*s.conv/2 {
		return lon, lat, 0, false
	}
	return lon, lat, geoDistance(s.lon, s.lat, lon, lat), true
}

type geoFound struct {
	member         []byte
	score          float64
	lon, lat, dist float64
}

// search lists the members of z in the shape, box by box, up to limit
// (0: all).
func (t *txn) geoSearch(z *zset, s *geoShape, limit int) []geoFound {
	var out []geoFound
	boxes := s.areas()
	last := 0
	for i, h := range boxes {
		if h.zero() {
			continue
		}
		if last != 0 && h == boxes[last] {
			continue // a huge radius: neighbours may be the same box
		}
		if len(out) > 0 && limit > 0 && len(out) >= limit {
			break
		}
		lo := float64(h.align52())
		h.bits++
		hi := float64(h.align52())
		t.each(z, &lo, func(m scored) bool {
			if m.score >= hi {
				return false
			}
			if lon, lat, dist, ok := s.contains(m.score); ok {
				out = append(out, geoFound{member: m.member, score: m.score, lon: lon, lat: lat, dist: dist})
				if limit > 0 && len(out) >= limit {
					return false
				}
			}
			return true
		})
		last = i
	}
	return out
}

var errGeoUnit = errReply("ERR unsupported unit provided. please use M, KM, FT, MI")

// geoUnit is the meters in unit, or 0.
func geoUnit(unit []byte) float64 {
	switch strings.ToLower(string(unit)) {
	case "m":
		return 1
	case "km":
		return 1000
	case "ft":
		return 0.3048
	case "mi":
		return 1609.34
	}
	return 0
}

// lonLat reads a longitude and a latitude.
func lonLat(lon, lat []byte) (float64, float64, *messages.Reply) {
	x, ok1 := parseScore(lon)
	y, ok2 := parseScore(lat)
	if !ok1 || !ok2 {
		return 0, 0, errNotFloat
	}
	if x < geoLongMin || x > geoLongMax || y < geoLatMin || y > geoLatMax {
		return 0, 0, errReply(fmt.Sprintf("ERR invalid longitude,latitude pair %f,%f", x, y))
	}
	return x, y, nil
}

// distanceArg reads a radius and its unit.
func distanceArg(n, unit []byte) (float64, float64, *messages.Reply) {
	d, ok := parseScore(n)
	switch {
	case !ok:
		return 0, 0, errReply("ERR need numeric radius")
	case d < 0:
		return 0, 0, errReply("ERR radius cannot be negative")
	}
	conv := geoUnit(unit)
	if conv == 0 {
		return 0, 0, errGeoUnit
	}
	return d, conv, nil
}

// GEOADD key [NX|XX] [CH] longitude latitude member [...]
func cmdGeoAdd(t *txn, a [][]byte) *messages.Reply {
	i := 2
	nx, xx := false, false
	for ; i < len(a); i++ {
		if isOpt(a[i], "nx") {
			nx = true
		} else if isOpt(a[i], "xx") {
			xx = true
		} else if !isOpt(a[i], "ch") {
			break
		}
	}
	if (len(a)-i)%3 != 0 || (nx && xx) {
		return errSyntax
	}
	zadd := append([][]byte{[]byte("zadd")}, a[1:i]...)
	for ; i < len(a); i += 3 {
		lon, lat, r := lonLat(a[i], a[i+1])
		if r != nil {
			return r
		}
		h, _ := geoEncode(mercatorLong, mercatorLat, lon, lat, geoStepMax)
		zadd = append(zadd, strconv.AppendUint(nil, h.align52(), 10), a[i+2])
	}
	return t.zadd(zadd, false)
}

// geoZSet is key's sorted set for a geo read (nil if missing).
func (t *txn) geoZSet(key []byte) (*zset, *messages.Reply) {
	z, r := t.zsetFor(key)
	if r != nil || !z.e.exists {
		return nil, r
	}
	return z, nil
}

// GEOPOS key member [...]
func cmdGeoPos(t *txn, a [][]byte) *messages.Reply {
	return t.eachPlace(a, nullArray, func(lon, lat float64) *messages.Reply {
		return array([]*messages.Reply{humanDouble(lon), humanDouble(lat)})
	})
}

// eachPlace answers GEOPOS and GEOHASH (key member [...]): each member's
// answer from its position, missing for a member (or key) that is not.
func (t *txn) eachPlace(a [][]byte, missing *messages.Reply, answer func(lon, lat float64) *messages.Reply) *messages.Reply {
	z, r := t.geoZSet(a[1])
	if r != nil {
		return r
	}
	out := make([]*messages.Reply, 0, len(a)-2)
	for _, m := range a[2:] {
		s, ok := 0.0, false
		if z != nil {
			s, ok = t.score(z, m)
		}
		if !ok {
			out = append(out, missing)
			continue
		}
		out = append(out, answer(geoPoint(s)))
	}
	return array(out)
}

// humanDouble is Redis's addReplyHumanLongDouble: 17 decimals, trailing
// zeros dropped.
func humanDouble(f float64) *messages.Reply {
	s := strconv.FormatFloat(f, 'f', 17, 64)
	s = strings.TrimRight(s, "0")
	s = strings.TrimSuffix(s, ".")
	if s == "-0" {
		s = "0"
	}
	return bulkString(s)
}

func distanceReply(d float64) *messages.Reply { return bulkString(strconv.FormatFloat(d, 'f', 4, 64)) }

// GEODIST key member1 member2 [unit]
func cmdGeoDist(t *txn, a [][]byte) *messages.Reply {
	conv := 1.0
	switch {
	case len(a) == 5:
		if conv = geoUnit(a[4]); conv == 0 {
			return errGeoUnit
		}
	case len(a) > 5:
		return errSyntax
	}
	z, r := t.geoZSet(a[1])
	if r != nil || z == nil {
		return orNull(r)
	}
	s1, ok1 := t.score(z, a[2])
	s2, ok2 := t.score(z, a[3])
	if !ok1 || !ok2 {
		return nullBulk
	}
	lon1, lat1 := geoPoint(s1)
	lon2, lat2 := geoPoint(s2)
	return distanceReply(geoDistance(lon1, lat1, lon2, lat2) / conv)
}

func orNull(r *messages.Reply) *messages.Reply {
	if r != nil {
		return r
	}
	return nullBulk
}

// GEOHASH key member [...]: the standard 11-character geohash (over
// latitudes -90 to 90, where the score's are Mercator's).
func cmdGeoHash(t *txn, a [][]byte) *messages.Reply {
	const alphabet = "0123456789bcdefghjkmnpqrstuvwxyz"
	return t.eachPlace(a, nullBulk, func(lon, lat float64) *messages.Reply {
		h, _ := geoEncode(geoRange{-180, 180}, geoRange{-90, 90}, lon, lat, 26)
		buf := make([]byte, 11)
		for i := range buf {
			idx := uint64(0) // only 52 bits: the 11th character is 0
			if i < 10 {
				idx = h.bits >> (52 - (i+1)*5) & 0x1f
			}
			buf[i] = alphabet[idx]
		}
		return bulk(buf)
	})
}

// The forms of the search commands.
const (
	geoByCoords    = 1 << iota // GEORADIUS: key lon lat radius unit
	geoByMember                // GEORADIUSBYMEMBER: key member radius unit
	geoNoStore                 // the _RO forms
	geoSearch                  // GEOSEARCH: key FROM... BY...
	geoSearchStore             // GEOSEARCHSTORE: dest src FROM... BY...
)

func geoCmd(flags int) func(*txn, [][]byte) *messages.Reply {
	return func(t *txn, a [][]byte) *messages.Reply { return t.georadius(a, flags) }
}

func (t *txn) georadius(a [][]byte, flags int) *messages.Reply {
	src := 1
	if flags&geoSearchStore != 0 {
		src = 2
	}
	z, r := t.geoZSet(a[src])
	if r != nil {
		return r
	}
	var shape geoShape
	var store []byte
	base := 2
	switch {
	case flags&geoByCoords != 0:
		base = 6
		if shape.lon, shape.lat, r = lonLat(a[2], a[3]); r != nil {
			return r
		}
		if shape.radius, shape.conv, r = distanceArg(a[4], a[5]); r != nil {
			return r
		}
	case flags&geoByMember != 0:
		base = 5
		if z != nil {
			s, ok := t.score(z, a[2])
			if !ok {
				return errReply("ERR could not decode requested zset member")
			}
			shape.lon, shape.lat = geoPoint(s)
			if shape.radius, shape.conv, r = distanceArg(a[3], a[4]); r != nil {
				return r
			}
		}
	case flags&geoSearchStore != 0:
		base = 3
		store = a[1]
	}
	var withDist, withHash, withCoord, any, fromMember, fromLoc, byRadius, byBox, storeDist bool
	sort, count := 0, int64(0) // sort: 1 ASC, -1 DESC
	search := flags&geoSearch != 0
	for i := base; i < len(a); i++ {
		left := len(a) - i - 1 // arguments after this one
		switch {
		case isOpt(a[i], "withdist"):
			withDist = true
		case isOpt(a[i], "withhash"):
			withHash = true
		case isOpt(a[i], "withcoord"):
			withCoord = true
		case isOpt(a[i], "any"):
			any = true
		case isOpt(a[i], "asc"):
			sort = 1
		case isOpt(a[i], "desc"):
			sort = -1
		case isOpt(a[i], "count") && left >= 1:
			n, ok := parseInt(a[i+1])
			if !ok {
				return errNotInteger
			}
			if n <= 0 {
				return errReply("ERR COUNT must be > 0")
			}
			count = n
			i++
		case (isOpt(a[i], "store") || isOpt(a[i], "storedist")) && left >= 1 && flags&(geoNoStore|geoSearch) == 0:
			store, storeDist = a[i+1], isOpt(a[i], "storedist")
			i++
		case isOpt(a[i], "storedist") && flags&geoSearchStore != 0:
			storeDist = true
		case isOpt(a[i], "frommember") && left >= 1 && search && !fromLoc:
			if z != nil {
				s, ok := t.score(z, a[i+1])
				if !ok {
					return errReply("ERR could not decode requested zset member")
				}
				shape.lon, shape.lat = geoPoint(s)
			}
			fromMember = true
			i++
		case isOpt(a[i], "fromlonlat") && left >= 2 && search && !fromMember:
			if shape.lon, shape.lat, r = lonLat(a[i+1], a[i+2]); r != nil {
				return r
			}
			fromLoc = true
			i += 2
		case isOpt(a[i], "byradius") && left >= 2 && search && !byBox:
			if shape.radius, shape.conv, r = distanceArg(a[i+1], a[i+2]); r != nil {
				return r
			}
			byRadius = true
			i += 2
		case isOpt(a[i], "bybox") && left >= 3 && search && !byRadius:
			w, ok1 := parseScore(a[i+1])
			h, ok2 := parseScore(a[i+2])
			switch {
			case !ok1:
				return errReply("ERR need numeric width")
			case !ok2:
				return errReply("ERR need numeric height")
			case w < 0 || h < 0:
				return errReply("ERR height or width cannot be negative")
			}
			if shape.conv = geoUnit(a[i+3]); shape.conv == 0 {
				return errGeoUnit
			}
			shape.box, shape.width, shape.height = true, w, h
			byBox = true
			i += 3
		default:
			return errSyntax
		}
	}
	name := string(a[0])
	switch {
	case store != nil && (withDist || withHash || withCoord):
		which := "STORE option in GEORADIUS"
		if flags&geoSearchStore != 0 {
			which = "GEOSEARCHSTORE"
		}
		return errReply("ERR " + which + " is not compatible with WITHDIST, WITHHASH and WITHCOORD options")
	case search && !fromMember && !fromLoc:
		return errReply("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for " + name)
	case search && !byRadius && !byBox:
		return errReply("ERR exactly one of BYRADIUS and BYBOX can be specified for " + name)
	case any && count == 0:
		return errReply("ERR the ANY argument requires COUNT argument")
	}
	storeEvent := "georadiusstore"
	if flags&geoSearchStore != 0 {
		storeEvent = "geosearchstore"
	}
	if z == nil {
		if store != nil {
			return t.storeZSet(store, nil, storeEvent)
		}
		return array(nil)
	}
	if count != 0 && sort == 0 && !any {
		sort = 1
	}
	limit := 0
	if any {
		limit = int(count)
	}
	found := t.geoSearch(z, &shape, limit)
	if sort != 0 {
		slices.SortStableFunc(found, func(x, y geoFound) int {
			c := 0
			if x.dist < y.dist {
				c = -1
			} else if x.dist > y.dist {
				c = 1
			}
			return c * sort
		})
	}
	if count != 0 && int64(len(found)) > count {
		found = found[:count]
	}
	if store != nil {
		out := make([]scored, len(found))
		for i, f := range found {
			out[i] = scored{member: f.member, score: f.score}
			if storeDist {
				out[i].score = f.dist / shape.conv
			}
		}
		return t.storeZSet(store, out, storeEvent)
	}
	items := make([]*messages.Reply, len(found))
	for i, f := range found {
		if !withDist && !withHash && !withCoord {
			items[i] = bulk(f.member)
			continue
		}
		item := []*messages.Reply{bulk(f.member)}
		if withDist {
			item = append(item, distanceReply(f.dist/shape.conv))
		}
		if withHash {
			item = append(item, integer(int64(f.score)))
		}
		if withCoord {
			item = append(item, array([]*messages.Reply{humanDouble(f.lon), humanDouble(f.lat)}))
		}
		items[i] = array(item)
	}
	return array(items)
}

// geoStoreKeys gives s GEORADIUS's or GEORADIUSBYMEMBER's keys: the
// source, and the destination after a STORE or STOREDIST among the
// options, which start at args[base].
func geoStoreKeys(base int, s *Spec) *Spec {
	s.FirstKey, s.LastKey, s.Step = 1, 1, 1 // as COMMAND reports them
	s.keysFn = func(a [][]byte) [][]byte {
		if len(a) < 2 {
			return nil
		}
		keys := [][]byte{a[1]}
		for i := base; i+1 < len(a); i++ {
			if isOpt(a[i], "store") || isOpt(a[i], "storedist") {
				keys = append(keys, a[i+1])
				i++
			}
		}
		return keys
	}
	return s
}
