package kv

// MatchGlob reports whether s matches the glob pattern p, with the
// semantics of Redis's stringmatchlen (KEYS, SCAN MATCH): '*' matches any
// run of bytes, also empty; '?' any one byte; "[abc]" one of the listed
// bytes, "[^abc]" any other; "[a-z]" a range (either order; ranges compare
// bytes as C's signed char); a backslash makes the next byte literal, also
// inside brackets.
//
// An unterminated '[' class ends at the end of the pattern; a trailing
// backslash matches a backslash. As in Redis, recursion on '*' is cut at
// 1000 levels (the match then fails) and a failed '*' stops earlier '*'s
// from trying longer matches.
func MatchGlob(p, s []byte) bool {
	skip := false
	return globImpl(p, s, &skip, 0)
}

// at returns b[i], or 0 past the end (the NUL that terminates Redis's sds).
func at(b []byte, i int) byte {
	if i < len(b) {
		return b[i]
	}
	return 0
}

func globImpl(p, s []byte, skipLonger *bool, nesting int) bool {
	if nesting > 1000 {
		return false
	}
	for len(p) > 0 && len(s) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 0 && at(p, 1) == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for len(s) > 0 {
				if globImpl(p[1:], s, skipLonger, nesting+1) {
					return true
				}
				if *skipLonger {
					return false
				}
				s = s[1:]
			}
			*skipLonger = true
			return false
		case '?':
			s = s[1:]
		case '[':
			p = p[1:]
			not := at(p, 0) == '^'
			if not {
				p = p[1:]
			}
			match := false
			for {
				if at(p, 0) == '\\' && len(p) >= 2 {
					p = p[1:]
					if p[0] == s[0] {
						match = true
					}
				} else if at(p, 0) == ']' {
					break
				} else if len(p) == 0 {
					// Unterminated: step back so the p[1:] below
					// leaves the pattern empty.
					p = []byte{0}
					break
				} else if len(p) >= 3 && p[1] == '-' {
					start, end, c := int8(p[0]), int8(p[2]), int8(s[0])
					if start > end {
						start, end = end, start
					}
					p = p[2:]
					if c >= start && c <= end {
						match = true
					}
				} else if p[0] == s[0] {
					match = true
				}
				p = p[1:]
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			s = s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if p[0] != s[0] {
				return false
			}
			s = s[1:]
		}
		p = p[1:]
		if len(s) == 0 {
			for at(p, 0) == '*' && len(p) > 0 {
				p = p[1:]
			}
			break
		}
	}
	return len(p) == 0 && len(s) == 0
}
