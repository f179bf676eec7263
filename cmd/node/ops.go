package main

// Operator subcommands: they talk to a running node's HTTP port.
//
//	node status [--http 127.0.0.1:7381]
//	node add NAME [--role voter|replica|readonly] [--http ...]
//	node remove NAME [--http ...]
//	node leave [--http ...]
//
// Any node forwards an operation to the cluster's coordinator. The answer
// is printed as JSON; a refusal exits 1 with its reason.

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

var subcommands = map[string]bool{"status": true, "add": true, "remove": true, "leave": true}

// operate runs subcommand cmd with args; it returns the exit code.
func operate(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("node "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("http", "127.0.0.1:7381", "the node's HTTP address")
	role := fs.String("role", "voter", "role of the added node: voter, replica or readonly")
	timeout := fs.Duration("timeout", time.Minute, "how long to wait for the answer")
	// Flags may come before or after the node name.
	var names []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		args = fs.Args()
		if len(args) > 0 {
			names, args = append(names, args[0]), args[1:]
		}
	}
	want := map[string]int{"status": 0, "add": 1, "remove": 1, "leave": 0}[cmd]
	if len(names) != want {
		fmt.Fprintf(stderr, "node %s: want %d node name(s), got %q\n", cmd, want, names)
		return 2
	}
	base := "http://" + *addr
	var req *http.Request
	var err error
	switch cmd {
	case "status":
		req, err = http.NewRequest(http.MethodGet, base+"/v1/nodes", nil)
	case "add":
		body, _ := json.Marshal(map[string]string{"name": names[0], "role": *role})
		req, err = http.NewRequest(http.MethodPost, base+"/v1/nodes", bytes.NewReader(body))
	case "remove":
		req, err = http.NewRequest(http.MethodDelete, base+"/v1/nodes/"+url.PathEscape(names[0]), nil)
	case "leave":
		req, err = http.NewRequest(http.MethodPost, base+"/v1/leave", nil)
	}
	if err != nil {
		fmt.Fprintf(stderr, "node %s: %v\n", cmd, err)
		return 2
	}
	resp, err := (&http.Client{Timeout: *timeout}).Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "node %s: %v\n", cmd, err)
		return 1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	stdout.Write(b)
	if len(b) > 0 && b[len(b)-1] != '\n' {
		fmt.Fprintln(stdout)
	}
	if resp.StatusCode >= 300 {
		fmt.Fprintf(stderr, "node %s: %s\n", cmd, resp.Status)
		return 1
	}
	return 0
}
