package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// --proto-max-bulk-len is the clients' limit, as in Redis: an argument
// longer than it is refused with Redis's error, the connection closed and
// nothing written, while other clients go on. --max-write-mib bounds a
// write: a bigger one gets an error, nothing is written, and the
// connection goes on. A value under both, tens of MB (read straight into
// memory of its own, not copied again on the way to its shard), is
// written and read back whole.
func TestBulkLimitAndBigValues(t *testing.T) {
	const limit = 48 << 20
	n := newNode(t, "n1", t.TempDir(), "--proto-max-bulk-len", strconv.Itoa(limit), "--max-write-mib", "40")
	n.start()
	defer n.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rc := redis.NewClient(&redis.Options{Addr: n.client, MaxRetries: -1, DialTimeout: time.Second,
		ReadTimeout: time.Minute, WriteTimeout: time.Minute, Protocol: 2})
	defer rc.Close()

	got, err := rc.ConfigGet(ctx, "proto-max-bulk-len").Result()
	if err != nil || got["proto-max-bulk-len"] != strconv.Itoa(limit) {
		t.Fatalf("CONFIG GET proto-max-bulk-len: %v, %v", got, err)
	}

	big := make([]byte, 40<<20-len("SET")-len("big"))
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(big)
	if err := rc.Set(ctx, "big", big, 0).Err(); err != nil {
		t.Fatalf("SET of %d bytes: %v", len(big), err)
	}
	checkBig := func(when string) {
		t.Helper()
		v, err := rc.Get(ctx, "big").Bytes()
		if err != nil || !bytes.Equal(v, big) {
			t.Fatalf("%s: GET big: %d bytes (want %d), equal %v, %v", when, len(v), len(big), bytes.Equal(v, big), err)
		}
	}
	checkBig("after the SET")

	// One byte over --max-write-mib: an error, nothing written, and the
	// connection goes on.
	err = rc.Set(ctx, "big", append(big, 'x'), 0).Err()
	if err == nil || err.Error() != fmt.Sprintf("ERR write of %d bytes is over this node's limit of %d bytes (--max-write-mib)", 40<<20+1, 40<<20) {
		t.Fatalf("a write over the limit: %v", err)
	}
	checkBig("after the refused write")

	// One byte over: refused from the header, before the bytes come.
	c, err := net.DialTimeout("tcp", n.client, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "*3\r\n$3\r\nSET\r\n$4\r\nover\r\n$%d\r\nxxxx", limit+1)
	rd := bufio.NewReader(c)
	line, err := rd.ReadString('\n')
	if err != nil || line != "-ERR Protocol error: invalid bulk length\r\n" {
		t.Fatalf("over the limit: reply %q, %v", line, err)
	}
	if rest, err := rd.ReadByte(); err != io.EOF {
		t.Fatalf("over the limit: connection still open (%q, %v)", rest, err)
	}

	// Nothing written; the other client was not disturbed.
	if n, err := rc.Exists(ctx, "over").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS over: %d, %v", n, err)
	}
	checkBig("after the refusal")
}
