package httpjson

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte(`{"n": 7}`))
		case "/gone":
			http.Error(w, "no such node\n", http.StatusNotFound)
		default:
			w.Write([]byte(`not json`))
		}
	}))
	defer srv.Close()
	hc := &http.Client{Timeout: 5 * time.Second}
	var v struct{ N int }
	if err := Get(hc, srv.URL+"/ok", &v); err != nil || v.N != 7 {
		t.Fatalf("GET /ok: %+v, %v", v, err)
	}
	if err := Do(hc, http.MethodDelete, srv.URL+"/gone", nil); err == nil || !strings.Contains(err.Error(), "404 Not Found: no such node") {
		t.Fatalf("DELETE /gone: %v", err)
	}
	if err := Get(hc, srv.URL+"/bad", &v); err == nil {
		t.Fatal("GET /bad: a body that is not JSON decoded without an error")
	}
	if err := Do(hc, http.MethodPost, srv.URL+"/bad", nil); err != nil {
		t.Fatalf("POST /bad with no answer wanted: %v", err)
	}
}
