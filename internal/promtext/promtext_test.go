package promtext

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// Get gives every series of the exposition, labelled or not, and leaves
// out comments and lines that are not a series and a number; a status
// other than 200 is an error.
func TestGet(t *testing.T) {
	body := "# HELP a_total Things.\n# TYPE a_total counter\na_total 42\n" +
		`b_seconds_bucket{le="+Inf"} 7` + "\n" + `c{node="n1",shard="0"} 1.5e+09` + "\nnot a series\nbroken NaNx\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		w.Write([]byte(body))
	}))
	defer srv.Close()
	m, err := Get(srv.Client(), srv.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"a_total": 42, `b_seconds_bucket{le="+Inf"}`: 7, `c{node="n1",shard="0"}`: 1.5e9}
	if len(m) != len(want) {
		t.Errorf("got %v, want %v", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s: %v, want %v (all: %v)", k, m[k], v, m)
		}
	}
	if _, err := Get(srv.Client(), srv.URL+"/nope"); err == nil {
		t.Error("a 404 gave no error")
	}
}
