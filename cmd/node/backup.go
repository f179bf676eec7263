package main

// Backup and restore:
//
//	node backup --out FILE [--http 127.0.0.1:7381] [--token ...] [--tls-ca-file ...]
//	node restore --from FILE --data-dir DIR [--name NAME] [--check]
//
// backup fetches GET /v1/backup from a running node: every shard, each as
// it was once the node had applied every write its leader acknowledged
// before the request. It checks the stream as it arrives (each file's
// checksum, each shard's size) and writes FILE only once all of it is in
// and synced; "-" writes to stdout. restore (offline) makes a new data
// dir from a backup; the node started on it founds a new cluster holding
// the data. --check reads and checks a backup and writes nothing.

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"github.com/coppice-kv/coppice/storage"
)

// backupSummary is what backup and restore print.
type backupSummary struct {
	File    string              `json:"file,omitempty"`
	DataDir string              `json:"data_dir,omitempty"`
	Name    string              `json:"name,omitempty"`
	Bytes   int64               `json:"bytes"`
	Backup  *storage.BackupInfo `json:"backup"`
}

func printSummary(w io.Writer, s backupSummary) {
	b, _ := json.MarshalIndent(s, "", "  ")
	fmt.Fprintf(w, "%s\n", b)
}

// backupCmd runs node backup; it returns the exit code.
func backupCmd(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("node backup", flag.ContinueOnError)
	flags.SetOutput(stderr)
	hf := addHTTPFlags(flags, 0)
	out := flags.String("out", "", "the file to write (\"-\": stdout); it must not exist")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "node backup: %v\n", err)
		return code
	}
	switch {
	case flags.NArg() > 0:
		return fail(2, fmt.Errorf("unexpected arguments %q", flags.Args()))
	case *out == "":
		return fail(2, errors.New("--out: want the file to write, or - for stdout"))
	case *out != "-":
		if _, err := os.Lstat(*out); !errors.Is(err, fs.ErrNotExist) {
			return fail(2, fmt.Errorf("--out %q exists (or cannot be checked: %v): choose a new file", *out, err))
		}
	}
	base, hc, err := httpClient(*hf.addr, *hf.caFile, *hf.timeout)
	if err != nil {
		return fail(2, err)
	}
	req, err := http.NewRequest(http.MethodGet, base+"/v1/backup", nil)
	if err != nil {
		return fail(2, err)
	}
	hf.authorize(req)
	resp, err := hc.Do(req)
	if err != nil {
		return fail(1, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return fail(1, fmt.Errorf("%s: %s", resp.Status, errorText(b)))
	}
	var (
		dst  io.Writer = stdout
		file *os.File
		tmp  = *out + ".partial"
	)
	if *out != "-" {
		if file, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return fail(1, err)
		}
		defer os.Remove(tmp) // gone once renamed
		defer file.Close()
	}
	if file != nil {
		dst = file
	}
	bw := bufio.NewWriterSize(dst, 1<<20)
	counted := &countingWriter{w: bw}
	info, err := storage.VerifyBackup(io.TeeReader(bufio.NewReaderSize(resp.Body, 1<<20), counted))
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && file != nil {
		err = errors.Join(file.Sync(), file.Close())
		if err == nil {
			err = os.Rename(tmp, *out)
		}
		if err == nil {
			err = syncParent(*out)
		}
	}
	if err != nil {
		return fail(1, err)
	}
	summary := backupSummary{File: *out, Bytes: counted.n, Backup: &info}
	if *out == "-" {
		printSummary(stderr, summary)
	} else {
		printSummary(stdout, summary)
	}
	return 0
}

// restoreCmd runs node restore; it returns the exit code.
func restoreCmd(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("node restore", flag.ContinueOnError)
	flags.SetOutput(stderr)
	from := flags.String("from", "", "the backup file (\"-\": stdin)")
	dataDir := flags.String("data-dir", "", "the data dir to make: missing or empty")
	name := flags.String("name", defaultName(), "the name of the node that will run on it")
	check := flags.Bool("check", false, "only read and check the backup; write nothing")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "node restore: %v\n", err)
		return code
	}
	switch {
	case flags.NArg() > 0:
		return fail(2, fmt.Errorf("unexpected arguments %q", flags.Args()))
	case *from == "":
		return fail(2, errors.New("--from: want the backup file, or - for stdin"))
	case *dataDir == "" && !*check:
		return fail(2, errors.New("--data-dir: want the data dir to make (missing or empty)"))
	}
	if err := storage.ValidName(*name); err != nil && !*check {
		return fail(2, fmt.Errorf("--name: %w", err))
	}
	in := io.Reader(os.Stdin)
	if *from != "-" {
		f, err := os.Open(*from)
		if err != nil {
			return fail(1, err)
		}
		defer f.Close()
		in = f
	}
	counted := &countingReader{r: bufio.NewReaderSize(in, 1<<20)}
	var info storage.BackupInfo
	var err error
	summary := backupSummary{File: *from}
	if *check {
		info, err = storage.VerifyBackup(counted)
	} else {
		info, err = storage.RestoreBackup(counted, *dataDir, *name)
		summary.DataDir, summary.Name = *dataDir, *name
	}
	if err != nil {
		return fail(1, err)
	}
	summary.Bytes, summary.Backup = counted.n, &info
	printSummary(stdout, summary)
	if !*check {
		fmt.Fprintf(stderr, "node restore: start the node on it, without --join: node --data-dir %s --name %s --shards %d\n",
			*dataDir, *name, len(info.Shards))
	}
	return 0
}

// errorText is the error an answer's body carries, or the body.
func errorText(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	return string(b)
}

// syncParent syncs the directory that holds path.
func syncParent(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
