package kv

import (
	"testing"

	"github.com/coppice-kv/coppice/messages"
)

// A transaction runs its commands in order, each seeing the ones before;
// a digest that no longer matches runs none of them; a malformed one, or
// one that smuggles an internal command, runs nothing of it.
func TestExecMulti(t *testing.T) {
	w := newMemStore()
	run := func(cmd *messages.Command) string { return render(Exec(w, cmd)) }
	digest := func(key string) []byte {
		return Read(w, bs(DigestName, key), 1000).GetArray().GetItems()[0].GetBulk()
	}
	empty := digest("k")
	if len(empty) != 0 {
		t.Fatalf("digest of a missing key: %x", empty)
	}
	tx := ExecCommand(1000, bs("k"), [][]byte{empty}, [][][]byte{bs("SET", "k", "1"), bs("INCR", "k"), bs("GET", "k")})
	if got := run(tx); got != `[+OK :2 "2"]` {
		t.Fatalf("transaction: %s", got)
	}
	// k changed since that digest: nothing runs.
	stale := ExecCommand(1000, bs("k"), [][]byte{empty}, [][][]byte{bs("SET", "k", "x"), bs("SET", "other", "y")})
	if got := run(stale); got != "nil" || Exec(w, stale).GetNullArray() != true {
		t.Fatalf("stale transaction: %s", got)
	}
	if got := render(Read(w, bs("MGET", "k", "other"), 1000)); got != `["2" nil]` {
		t.Fatalf("after the stale transaction: %s", got)
	}
	// The current digest lets it run; a hash's field changes its digest.
	d := digest("k")
	if got := run(ExecCommand(1000, bs("k"), [][]byte{d}, [][][]byte{bs("HSET", "h", "f", "1")})); got != "[:1]" {
		t.Fatalf("with the current digest: %s", got)
	}
	hd := digest("h")
	run(&messages.Command{Args: bs("HSET", "h", "f", "2"), NowMs: 1000})
	if string(digest("h")) == string(hd) {
		t.Fatal("a changed field left the hash's digest as it was")
	}
	for _, bad := range [][][]byte{
		bs(ExecName),
		bs(ExecName, "x"),
		bs(ExecName, "1", "k"),
		bs(ExecName, "0", "2", "GET"),
		bs(ExecName, "0", "0"),
		bs(ExecName, "0", "-1", "GET", "k"),
	} {
		if got := render(Exec(w, &messages.Command{Args: bad, NowMs: 1000})); got != "-ERR kv: malformed transaction" {
			t.Errorf("%q: %s", bad, got)
		}
	}
	nested := ExecCommand(1000, nil, nil, [][][]byte{bs(ExpireDueName, "10"), bs("SET", "n", "1")})
	if got := run(nested); got != "[-ERR kv: malformed transaction +OK]" {
		t.Fatalf("an internal command inside: %s", got)
	}
	if !AddsData(tx.Args) || AddsData(ExecCommand(0, nil, nil, [][][]byte{bs("DEL", "k")}).Args) {
		t.Fatal("AddsData of a transaction: want whether one of its commands adds data")
	}
}
