package server

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// lolwut answers LOLWUT [VERSION v] [args]: as Redis 7.0's, the version
// line for this version (7), and for VERSION 5 and 6 the art of Redis 5
// and 6 (Georg Nees's Schotter; a skyline after Plaguemon), drawn as Redis
// draws them (lolwut.c, lolwut5.c, lolwut6.c), from the same sources of
// chance: where Redis's drawing has chance in it (Schotter's lower rows,
// the skyline's buildings) it differs from call to call, here as there.
func lolwut(args [][]byte) *messages.Reply {
	v := "7"
	rest := args[1:]
	if len(args) >= 3 && strings.EqualFold(string(args[1]), "version") {
		n, ok := kv.ParseInt(args[2])
		if !ok {
			return errorf("ERR value is not an integer or out of range")
		}
		v = strconv.FormatUint(uint64(uint32(n)), 10)
		rest = args[3:]
	}
	switch v {
	case "5":
		return lolwut5(rest)
	case "6":
		return lolwut6(rest)
	}
	return verbatim("Redis ver. " + redisVersion + "\n")
}

// lolwutArgs reads LOLWUT's numeric arguments over defaults, as longs.
func lolwutArgs(args [][]byte, defaults ...int64) ([]int64, *messages.Reply) {
	for i := range min(len(args), len(defaults)) {
		n, ok := kv.ParseInt(args[i])
		if !ok {
			return nil, errorf("ERR value is not an integer or out of range")
		}
		defaults[i] = n
	}
	return defaults, nil
}

// lolwut5 is Redis's lolwut5Command: LOLWUT [columns] [squares-per-row]
// [squares-per-col], 66, 8 and 12 by default, bounded.
func lolwut5(args [][]byte) *messages.Reply {
	p, r := lolwutArgs(args, 66, 8, 12)
	if r != nil {
		return r
	}
	cols := max(1, min(p[0], 1000))
	perRow := max(1, min(p[1], 200))
	perCol := max(1, min(p[2], 200))
	c := schotter(int(cols), int(perRow), int(perCol))
	return verbatim(c.renderBraille() + "\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. " + redisVersion + "\n")
}

// lolwut6 is Redis's lolwut6Command: LOLWUT [columns] [rows], 80 and 20
// by default, bounded.
func lolwut6(args [][]byte) *messages.Reply {
	p, r := lolwutArgs(args, 80, 20)
	if r != nil {
		return r
	}
	c := newCanvas(int(max(1, min(p[0], 1000))), int(max(1, min(p[1], 1000))), 3)
	c.skyline()
	return verbatim(c.renderGrays() + "\nDedicated to the 8 bit game developers of past and present.\n" +
		"Original 8 bit image from Plaguemon by hikikomori. Redis ver. " + redisVersion + "\n")
}

// lwCanvas is Redis's LOLWUT canvas: a color a pixel (0 to 3).
type lwCanvas struct {
	width, height int
	pixels        []byte
}

func newCanvas(width, height int, bg byte) *lwCanvas {
	c := &lwCanvas{width: width, height: height, pixels: make([]byte, width*height)}
	for i := range c.pixels {
		c.pixels[i] = bg
	}
	return c
}

func (c *lwCanvas) set(x, y int, color byte) {
	if x >= 0 && x < c.width && y >= 0 && y < c.height {
		c.pixels[x+y*c.width] = color
	}
}

func (c *lwCanvas) get(x, y int) byte {
	if x >= 0 && x < c.width && y >= 0 && y < c.height {
		return c.pixels[x+y*c.width]
	}
	return 0
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
		c.set(x1, y1, 1)
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
	c := newCanvas(width, height, 0)
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

// renderBraille is lolwut5.c's renderCanvas: each 2x4 pixels a Braille
// character.
func (c *lwCanvas) renderBraille() string {
	var b strings.Builder
	for y := 0; y < c.height; y += 4 {
		for x := 0; x < c.width; x += 2 {
			r := rune(0x2800)
			for bit, p := range [8][2]int{{0, 0}, {0, 1}, {0, 2}, {1, 0}, {1, 1}, {1, 2}, {0, 3}, {1, 3}} {
				if c.get(x+p[0], y+p[1]) != 0 {
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

// renderGrays is lolwut6.c's renderCanvas: a pixel a character, in the
// terminal's four grays.
func (c *lwCanvas) renderGrays() string {
	var b strings.Builder
	for y := range c.height {
		for x := range c.width {
			ce := "0;30;40m"
			switch c.get(x, y) {
			case 1:
				ce = "0;90;100m"
			case 2:
				ce = "0;37;47m"
			case 3:
				ce = "0;97;107m"
			}
			b.WriteString("\033[" + ce + " \033[0m")
		}
		if y != c.height-1 {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// crand is C's rand(): a non-negative int.
func crand() int { return int(rand.Int32()) }

type skyscraper struct {
	xoff, width, height int
	windows             bool
	color               byte
}

// skyscraper is generateSkyscraper.
func (c *lwCanvas) skyscraper(si skyscraper) {
	starty := c.height - 1
	endy := starty - si.height + 1
	for y := starty; y >= endy; y-- {
		for x := si.xoff; x < si.xoff+si.width; x++ {
			if y == endy && (x <= si.xoff+1 || x >= si.xoff+si.width-2) {
				continue // the roof is four pixels less wide
			}
			color := si.color
			if si.windows && x > si.xoff+1 && x < si.xoff+si.width-2 && y > endy+1 && y < starty-1 {
				relx, rely := x-(si.xoff+1), y-(endy+1)
				if (relx/2)%2 != 0 && rely%2 != 0 {
					for {
						color = byte(1 + crand()%2)
						if color != si.color {
							break
						}
					}
					if relx%2 != 0 {
						color = c.get(x-1, y)
					}
				}
			}
			c.set(x, y, color)
		}
	}
}

// skyline is generateSkyline.
func (c *lwCanvas) skyline() {
	for color := byte(2); color >= 1; color-- {
		for offset := -10; offset < c.width; {
			offset += crand() % 8
			si := skyscraper{xoff: offset, width: 10 + crand()%9, color: color}
			if color == 2 {
				si.height = c.height/2 + crand()%c.height/2
			} else {
				si.height = c.height/2 + crand()%c.height/3
			}
			c.skyscraper(si)
			if color == 2 {
				offset += si.width / 2
			} else {
				offset += si.width + 1
			}
		}
	}
	for offset := -10; offset < c.width; {
		offset += crand() % 8
		si := skyscraper{xoff: offset, width: 5 + crand()%14, windows: true}
		if si.width%4 != 0 {
			si.width += si.width % 3
		}
		si.height = c.height/3 + crand()%c.height/2
		c.skyscraper(si)
		offset += si.width + 5
	}
}
