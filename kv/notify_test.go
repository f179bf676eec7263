package kv

import "testing"

// notify-keyspace-events read and written back as Redis 7.0 does (the
// values CONFIG GET answered on redis-server after each CONFIG SET).
func TestEventClassesReadAndWrittenAsRedis(t *testing.T) {
	for _, c := range []struct{ in, out string }{
		{"", ""}, {"KEA", "AKE"}, {"AKEnm", "AKEm"}, {"nK", "nK"}, {"Kglsh$zxetdn", "AK"},
		{"E", "E"}, {"g", "g"}, {"Ex", "xE"}, {"KEg$lshzxetd", "AKE"}, {"KEAAA", "AKE"},
		{"mKEl$", "$lKEm"},
	} {
		classes, ok := ParseClasses(c.in)
		if !ok {
			t.Errorf("%q refused", c.in)
			continue
		}
		if got := classes.String(); got != c.out {
			t.Errorf("%q: %q, want %q", c.in, got, c.out)
		}
	}
	for _, bad := range []string{"Q", "KEA ", "k", "x1"} {
		if _, ok := ParseClasses(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
	if c, _ := ParseClasses("KEAn"); c&ClassNew == 0 {
		t.Error("n is kept after A, though not written back")
	}
	for in, fires := range map[string]bool{"": false, "K": false, "A": false, "KA": true, "Ex": true, "KEm": true} {
		if c, _ := ParseClasses(in); c.Fires() != fires {
			t.Errorf("%q fires: %v", in, c.Fires())
		}
	}
}
