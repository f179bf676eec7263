package kv

import (
	"strings"
	"testing"
)

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"*", "", false}, // as in Redis: KEYS and SCAN skip the pattern "*"
		{"*", "abc", true},
		{"", "", true},
		{"", "a", false},
		{"a", "", false},
		{"a*", "abc", true},
		{"a*c", "abc", true},
		{"a*c", "abd", false},
		{"*b*", "abc", true},
		{"a**c", "ac", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"?", "", false},
		{"[abc]", "b", true},
		{"[abc]", "d", false},
		{"[^abc]", "d", true},
		{"[^abc]", "a", false},
		{"[a-c]x", "bx", true},
		{"[c-a]x", "bx", true}, // reversed range
		{"[a-c]", "d", false},
		{`[\]]`, "]", true},
		{`[\-]`, "-", true},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{`a\`, `a\`, true},  // a trailing backslash is literal
		{"[abc", "a", true}, // unterminated: ends the pattern
		{"[abc", "ab", false},
		{"[a-]", "_", true}, // "a-]" is the range ']'..'a'
		{"[a-]", "b", false},
		{"[]", "a", false},
		{"h[ae]llo", "hello", true},
		{"h[^e]llo", "hallo", true},
		{"h*llo", "heeeello", true},
		{"\xff", "\xff", true},
		{"[\x01-\xff]", "a", false}, // signed char: the range is -1..1
		{"[\x01-\xff]", "\x00", true},
		{"[\xf0-\xff]", "\xf5", true},
		{"a*b*c*d", "aXbXcXd", true},
		{"a*b*c*d", "aXbXcXe", false},
		{"*a", "bbba", true},
		{"abc*", "ab", false},
		{"ab*", "ab", true},
		{"ab?*", "ab", false},
	} {
		if got := MatchGlob([]byte(c.p), []byte(c.s)); got != c.want {
			t.Errorf("match(%q, %q) = %v, want %v", c.p, c.s, got, c.want)
		}
	}
	// Abusive patterns end quickly: nesting beyond 1000 fails, and a failed
	// '*' stops earlier ones from retrying.
	p := strings.Repeat("*a", 2000) + "b"
	if MatchGlob([]byte(p), []byte(strings.Repeat("a", 5000))) {
		t.Error("abusive pattern matched")
	}
}
