package server

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// SCAN's cursor is a number the server maps to where the scan stands: a
// shard and the last key returned in it. Cursors live for cursorTTL and at
// most maxCursors are kept (the oldest go first); an unknown cursor is an
// error rather than a silent restart.
const (
	cursorTTL  = 10 * time.Minute
	maxCursors = 10000
)

type scanState struct {
	shard int
	after []byte // nil: from the first key (field); "": after the empty one
	// key is HSCAN's, SSCAN's or ZSCAN's key (nil for SCAN), and cmd
	// which of them: a cursor serves the scan that made it only.
	key     []byte
	cmd     string
	created time.Time
}

// nonNil is b, or an empty slice for nil: a position after the empty key.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

type scanCursors struct {
	mu   sync.Mutex
	next uint64
	m    map[uint64]scanState
	fifo []uint64
}

func newScanCursors() *scanCursors { return &scanCursors{next: 1, m: map[uint64]scanState{}} }

func (sc *scanCursors) put(st scanState) uint64 {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for len(sc.fifo) > 0 && (len(sc.m) >= maxCursors || time.Since(sc.m[sc.fifo[0]].created) > cursorTTL) {
		delete(sc.m, sc.fifo[0])
		sc.fifo = sc.fifo[1:]
	}
	id := sc.next
	sc.next++
	st.created = time.Now()
	sc.m[id] = st
	sc.fifo = append(sc.fifo, id)
	return id
}

func (sc *scanCursors) get(id uint64) (scanState, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	st, ok := sc.m[id]
	return st, ok && time.Since(st.created) <= cursorTTL
}

// scan: SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
func (s *Server) scan(args [][]byte) *messages.Reply {
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		return errorf("ERR invalid cursor")
	}
	count, match, typ := 10, []byte(nil), ""
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return errorf("ERR syntax error")
		}
		switch string(bytes.ToLower(args[i])) {
		case "match":
			match = args[i+1]
		case "count":
			n, err := strconv.ParseInt(string(args[i+1]), 10, 64)
			if err != nil {
				return errorf("ERR value is not an integer or out of range")
			}
			if n < 1 {
				return errorf("ERR syntax error")
			}
			count = int(min(n, 100000))
		case "type":
			typ = string(bytes.ToLower(args[i+1]))
		default:
			return errorf("ERR syntax error")
		}
	}
	st := scanState{}
	if cursor != 0 {
		var ok bool
		if st, ok = s.scans.get(cursor); !ok || st.key != nil {
			return errorf("ERR invalid cursor")
		}
	}
	var keys []*messages.Reply
	now := nowMs()
	for st.shard < s.backend.Shards() && len(keys) < count {
		r := s.backend.Scan(st.shard, &messages.ScanShard{After: st.after, Count: uint32(count - len(keys)),
			Match: match, Type: typ, NowMs: now}).Wait()
		if r.GetError() != "" {
			return r
		}
		items := r.GetArray().GetItems()
		if len(items) == 0 {
			return errorf(fmt.Sprintf("ERR shard %d: malformed scan reply", st.shard))
		}
		keys = append(keys, items[1:]...)
		if items[0].GetNullBulk() {
			st = scanState{shard: st.shard + 1}
		} else {
			st.after = nonNil(items[0].GetBulk()) // "" is the empty key
		}
	}
	out := "0"
	if st.shard < s.backend.Shards() {
		out = strconv.FormatUint(s.scans.put(st), 10)
	}
	return array(bulkString(out), array(keys...))
}

// elementScan: HSCAN, SSCAN or ZSCAN (cmd) key cursor [MATCH pattern] [COUNT count],
// paged with the node's cursors as SCAN is, on the key's shard.
func (c *conn) elementScan(args [][]byte, cmd string) *messages.Reply {
	sa, r := kv.ParseHScanArgs(args)
	if r != nil {
		return r
	}
	key := bytes.Clone(args[1])
	st := scanState{key: key, cmd: cmd}
	if sa.Cursor != 0 {
		var ok bool
		if st, ok = c.s.scans.get(sa.Cursor); !ok || st.key == nil || st.cmd != cmd || !bytes.Equal(st.key, key) {
			return errorf("ERR invalid cursor")
		}
	}
	shard := c.shardOf(key)
	req := &messages.ScanShard{After: st.after, Count: uint32(min(sa.Count, 100000)), Match: sa.Match, NowMs: nowMs()}
	switch cmd {
	case "sscan":
		req.Set = key
	case "zscan":
		req.Zset = key
	default:
		req.Hash = key
	}
	r = c.s.backend.Scan(shard, req).Wait()
	if r.GetError() != "" {
		return r
	}
	items := r.GetArray().GetItems()
	if len(items) == 0 {
		return errorf(fmt.Sprintf("ERR shard %d: malformed scan reply", shard))
	}
	out := "0"
	if !items[0].GetNullBulk() {
		st.after = nonNil(items[0].GetBulk())
		out = strconv.FormatUint(c.s.scans.put(st), 10)
	}
	return array(bulkString(out), array(items[1:]...))
}
