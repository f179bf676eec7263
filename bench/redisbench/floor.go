package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/server"
	"google.golang.org/protobuf/proto"
)

// The floor is the third server of every row: coppice's own client port
// (package server: connections, RESP, dispatch by shard) and its command
// code (package kv) on the cheapest durable backend there is, each shard a
// map under a lock, every write appended to one file and answered once a
// group-committed fdatasync covers it, as Redis's appendfsync always does.
// No Raft, no Pebble, no actors. What the node does over the floor is its
// storage and replication stack; what the floor does under Redis is Go's
// and the client port's.

// serveFloor runs the floor on addr with its log file in dir until
// SIGINT or SIGTERM.
func serveFloor(addr, dir string, shards int) error {
	f, err := os.OpenFile(filepath.Join(dir, "floor.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	b := newFloorBackend(f, shards)
	srv, err := server.Listen(server.Config{Addr: addr}, b)
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case <-sig:
	case err = <-b.failed:
	}
	srv.Close()
	return err
}

type floorBackend struct {
	shards []*memShard
	log    *groupLog
	failed chan error
}

func newFloorBackend(f *os.File, shards int) *floorBackend {
	b := &floorBackend{log: &groupLog{f: f}, failed: make(chan error, 1)}
	b.log.cond = sync.NewCond(&b.log.mu)
	for range shards {
		b.shards = append(b.shards, &memShard{m: map[string][]byte{}})
	}
	go func() { b.failed <- b.log.run() }()
	return b
}

func (b *floorBackend) Shards() int { return len(b.shards) }

// Propose runs cmd on the shard's map and answers once the command is in
// a synced write of the log. (A reader can see the write before it is
// synced; Redis's appendfsync always has the same window.)
func (b *floorBackend) Propose(shard int, cmd *messages.Command) server.Pending {
	rec, err := proto.Marshal(cmd)
	if err != nil {
		return floorDone{floorError(err)}
	}
	s := b.shards[shard]
	s.mu.Lock()
	r := kv.Exec(s, cmd)
	seq := b.log.append(rec)
	s.mu.Unlock()
	return &floorWrite{log: b.log, seq: seq, r: r}
}

func (b *floorBackend) Read(shard int, cmd *messages.Command) server.Pending {
	s := b.shards[shard]
	s.mu.RLock()
	defer s.mu.RUnlock()
	return floorDone{kv.Read(s, cmd.GetArgs(), cmd.GetNowMs())}
}

func (b *floorBackend) Scan(int, *messages.ScanShard) server.Pending {
	return floorDone{floorError(errors.New("SCAN is not served by the floor"))}
}

func floorError(err error) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Error{Error: "ERR floor: " + err.Error()}}
}

type floorDone struct{ r *messages.Reply }

func (d floorDone) Wait() *messages.Reply { return d.r }

type floorWrite struct {
	log *groupLog
	seq uint64
	r   *messages.Reply
}

func (w *floorWrite) Wait() *messages.Reply {
	if err := w.log.wait(w.seq); err != nil {
		return floorError(err)
	}
	return w.r
}

// groupLog appends records to one file; one goroutine writes what has
// gathered and syncs it, while the next records gather.
type groupLog struct {
	f      *os.File
	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	queued uint64 // records appended
	synced uint64 // records written and synced
	err    error
}

func (l *groupLog) append(rec []byte) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = fmt.Appendf(l.buf, "%d\n", len(rec))
	l.buf = append(l.buf, rec...)
	l.queued++
	l.cond.Broadcast()
	return l.queued
}

func (l *groupLog) wait(seq uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.synced < seq && l.err == nil {
		l.cond.Wait()
	}
	return l.err
}

func (l *groupLog) run() error {
	var out []byte
	for {
		l.mu.Lock()
		for l.queued == l.synced {
			l.cond.Wait()
		}
		out, l.buf = l.buf, out[:0]
		upto := l.queued
		l.mu.Unlock()
		_, err := l.f.Write(out)
		if err == nil {
			err = syscall.Fdatasync(int(l.f.Fd())) // as Redis's appendfsync always
		}
		l.mu.Lock()
		l.synced, l.err = upto, err
		l.cond.Broadcast()
		l.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// memShard is one shard's keys: kv.Writer on a map. Scan sorts the keys
// it visits, which is slow and only for the few commands that scan
// (DBSIZE, KEYS, FLUSHDB).
type memShard struct {
	mu sync.RWMutex
	m  map[string][]byte
}

func (s *memShard) Get(key []byte) ([]byte, bool, error) {
	v, ok := s.m[string(key)]
	return bytes.Clone(v), ok, nil
}

func (s *memShard) Scan(lower, upper []byte, fn func(k, v []byte) bool) error {
	var keys []string
	for k := range s.m {
		if k >= string(lower) && (upper == nil || k < string(upper)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !fn([]byte(k), s.m[k]) {
			break
		}
	}
	return nil
}

func (s *memShard) Set(key, value []byte) error {
	s.m[string(key)] = bytes.Clone(value)
	return nil
}

func (s *memShard) Delete(key []byte) error {
	delete(s.m, string(key))
	return nil
}

func (s *memShard) DeleteRange(lower, upper []byte) error {
	for k := range s.m {
		if k >= string(lower) && (upper == nil || k < string(upper)) {
			delete(s.m, k)
		}
	}
	return nil
}
