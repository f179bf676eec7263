// Package promtext reads a node's /metrics for tests and benchmarks.
package promtext

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Get reads the Prometheus text exposition at url: each series, as its
// line names it (`name` or `name{label="v",...}`), with its value.
// Comments and lines that are not a series and a number are left out.
func Get(hc *http.Client, url string) (map[string]float64, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return out, nil
}
