package resp

// splitArgs splits an inline request line into r.args, as Redis's
// sdssplitargs (sds.c) does, and reports false for unbalanced quotes:
//
//   - arguments are separated by spaces, tabs, CRs and LFs; blanks before an
//     argument also include VT and FF (C's isspace);
//   - "double quotes" take the escapes \n \r \t \b \a \xHH (two hex digits)
//     and \<any other byte> for that byte;
//   - 'single quotes' take only \' for a quote; any other backslash is kept;
//   - quotes may start in the middle of an argument (a"b c" is `ab c`), but a
//     closing quote must be followed by a blank or the end of the line;
//   - a pair of quotes with nothing between is an empty argument.
//
// The line holds no NUL byte: line stops at one.
func (r *Reader) splitArgs(line []byte) bool {
	// at returns line[i], or 0 past its end: the C string's terminator.
	at := func(i int) byte {
		if i < len(line) {
			return line[i]
		}
		return 0
	}
	p := 0
	for {
		for p < len(line) && isSpace(line[p]) {
			p++
		}
		if p == len(line) {
			return true
		}
		start := len(r.arena)
		inq, insq := false, false
		for done := false; !done; {
			c := at(p)
			switch {
			case inq:
				switch {
				case c == '\\' && at(p+1) == 'x' && isHex(at(p+2)) && isHex(at(p+3)):
					r.arena = append(r.arena, unhex(at(p+2))<<4|unhex(at(p+3)))
					p += 3
				case c == '\\' && at(p+1) != 0:
					p++
					switch e := line[p]; e {
					case 'n':
						r.arena = append(r.arena, '\n')
					case 'r':
						r.arena = append(r.arena, '\r')
					case 't':
						r.arena = append(r.arena, '\t')
					case 'b':
						r.arena = append(r.arena, '\b')
					case 'a':
						r.arena = append(r.arena, '\a')
					default:
						r.arena = append(r.arena, e)
					}
				case c == '"':
					if n := at(p + 1); n != 0 && !isSpace(n) {
						return false
					}
					done = true
				case c == 0:
					return false
				default:
					r.arena = append(r.arena, c)
				}
			case insq:
				switch {
				case c == '\\' && at(p+1) == '\'':
					p++
					r.arena = append(r.arena, '\'')
				case c == '\'':
					if n := at(p + 1); n != 0 && !isSpace(n) {
						return false
					}
					done = true
				case c == 0:
					return false
				default:
					r.arena = append(r.arena, c)
				}
			default:
				switch c {
				case ' ', '\n', '\r', '\t', 0:
					done = true
				case '"':
					inq = true
				case '\'':
					insq = true
				default:
					r.arena = append(r.arena, c)
				}
			}
			if p < len(line) {
				p++
			}
		}
		r.args = append(r.args, r.arena[start:len(r.arena):len(r.arena)])
	}
}

// SplitArgs splits line as Redis's sdssplitargs does (see splitArgs);
// ok is false for unbalanced quotes.
func SplitArgs(line []byte) (args [][]byte, ok bool) {
	var r Reader
	ok = r.splitArgs(line)
	return r.args, ok
}

// isSpace is C's isspace in the C locale.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}
