// Package httpjson is the one way the tests and benchmarks ask a node's
// HTTP API: a request without a body, a JSON answer.
package httpjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Do sends one request without a body through hc and decodes a JSON answer
// into v (unless v is nil). A status other than 2xx is an error carrying
// the answer's body.
func Do(hc *http.Client, method, url string, v any) error {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(b, v)
}

// Get is Do with GET.
func Get(hc *http.Client, url string, v any) error { return Do(hc, http.MethodGet, url, v) }
