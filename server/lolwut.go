package server

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/coppice-kv/coppice/messages"
)

// lolwut answers LOLWUT [VERSION v] [args]: as Redis 7.0's, the version
// line for this version (7), and for VERSION 5 Redis 5's art, Georg Nees's
// Schotter, drawn as Redis draws it (lolwut.c, lolwut5.c): the same
// squares, from the same sources of chance (the rows below the second are
// turned and moved at random, so those differ between calls, as they do
// in Redis). VERSION 6's art (Redis 6's skyline) is not drawn here: it
// gets the version line.
func lolwut(args [][]byte) *messages.Reply {
	v := "7"
	rest := args[1:]
	if len(args) >= 3 && strings.EqualFold(string(args[1]), "version") {
		n, err := strconv.ParseInt(string(args[2]), 10, 64)
		if err != nil || !canonicalInt(args[2]) {
			return errorf("ERR value is not an integer or out of range")
		}
		v = strconv.FormatUint(uint64(uint32(n)), 10)
		rest = args[3:]
	}
	if v == "5" {
		return lolwut5(rest)
	}
	return verbatim("Redis ver. " + redisVersion + "\n")
}

// canonicalInt reports whether b is an integer as Redis's string2ll reads
// one: no sign but '-', no leading zero, no spaces.
func canonicalInt(b []byte) bool {
	s := string(b)
	if s == "0" {
		return true
	}
	s = strings.TrimPrefix(s, "-")
	return s != "" && s[0] >= '1' && s[0] <= '9' && strings.Trim(s, "0123456789") == ""
}

// lolwut5 is Redis's lolwut5Command: LOLWUT [columns] [squares-per-row]
// [squares-per-col], 66, 8 and 12 by default, bounded.
func lolwut5(args [][]byte) *messages.Reply {
	params := []int64{66, 8, 12}
	for i := range min(len(args), 3) {
		n, err := strconv.ParseInt(string(args[i]), 10, 64)
		if err != nil || !canonicalInt(args[i]) {
			return errorf("ERR value is not an integer or out of range")
		}
		params[i] = n
	}
	cols := max(1, min(params[0], 1000))
	perRow := max(1, min(params[1], 200))
	perCol := max(1, min(params[2], 200))
	c := schotter(int(cols), int(perRow), int(perCol))
	return verbatim(c.render() + "\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. " + redisVersion + "\n")
}

// lwCanvas is Redis's LOLWUT canvas: pixels on or off.
type lwCanvas struct {
	width, height int
	pixels        []bool
}

func (c *lwCanvas) set(x, y int) {
	if x >= 0 && x < c.width && y >= 0 && y < c.height {
		c.pixels[x+y*c.width] = true
	}
}

func (c *lwCanvas) get(x, y int) bool {
	return x >= 0 && x < c.width && y >= 0 && y < c.height && c.pixels[x+y*c.width]
}

// line is Bresenham's, as lwDrawLine.
func (c *lwCanvas) line(x1, y1, x2, y2 int) {
	dx, dy := abs(x2-x1), abs(y2-y1)
	sx, sy := -1, -1
	if x1 < x2 {
		sx = 1
	}
	if y1 < y2 {
		sy = 1
	}
	err := dx - dy
	for {
		c.set(x1, y1)
		if x1 == x2 && y1 == y2 {
			return
		}
		e2 := err * 2
		if e2 > -dy {
			err -= dy
			x1 += sx
		}
		if e2 < dx {
			err += dx
			y1 += sy
		}
	}
}

func abs(n int) int { return max(n, -n) }

// square is lwDrawSquare, in C's float and double as Redis computes it.
func (c *lwCanvas) square(x, y int, size, angle float32) {
	size = float32(float64(size) / 1.4142135623)
	size = float32(math.Round(float64(size)))
	k := float32(math.Pi/4 + float64(angle))
	var px, py [4]int
	for j := range 4 {
		px[j] = int(math.Round(math.Sin(float64(k))*float64(size) + float64(x)))
		py[j] = int(math.Round(math.Cos(float64(k))*float64(size) + float64(y)))
		k = float32(float64(k) + math.Pi/2)
	}
	for j := range 4 {
		c.line(px[j], py[j], px[(j+1)%4], py[(j+1)%4])
	}
}

// schotter is lwDrawSchotter.
func schotter(cols, perRow, perCol int) *lwCanvas {
	width := cols * 2
	padding := 0
	if width > 4 {
		padding = 2
	}
	side := float32(width-padding*2) / float32(perRow)
	height := int(side*float32(perCol) + float32(padding*2))
	c := &lwCanvas{width: width, height: height, pixels: make([]bool, width*height)}
	for y := range perCol {
		for x := range perRow {
			sx := int(float32(x)*side + side/2 + float32(padding))
			sy := int(float32(y)*side + side/2 + float32(padding))
			angle := float32(0)
			if y > 1 {
				r := func() float32 { return rand.Float32() / float32(perCol) * float32(y) }
				r1, r2, r3 := r(), r(), r()
				if rand.IntN(2) == 1 {
					r1 = -r1
				}
				if rand.IntN(2) == 1 {
					r2 = -r2
				}
				if rand.IntN(2) == 1 {
					r3 = -r3
				}
				angle = r1
				sx = int(float32(sx) + r2*side/3)
				sy = int(float32(sy) + r3*side/3)
			}
			c.square(sx, sy, side, angle)
		}
	}
	return c
}

// render is renderCanvas: each 2x4 pixels a Braille character.
func (c *lwCanvas) render() string {
	var b strings.Builder
	for y := 0; y < c.height; y += 4 {
		for x := 0; x < c.width; x += 2 {
			r := rune(0x2800)
			for bit, p := range [8][2]int{{0, 0}, {0, 1}, {0, 2}, {1, 0}, {1, 1}, {1, 2}, {0, 3}, {1, 3}} {
				if c.get(x+p[0], y+p[1]) {
					r |= 1 << bit
				}
			}
			b.WriteRune(r)
		}
		if y != c.height-1 {
			b.WriteByte('\n')
		}
	}
	return b.String()
}
