package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/kv/kvmem"
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
	b := &floorBackend{log: &groupLog{f: f, open: newBatch()}, failed: make(chan error, 1)}
	b.log.cond = sync.NewCond(&b.log.mu)
	for range shards {
		b.shards = append(b.shards, &memShard{Store: kvmem.New()})
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
	batch := b.log.append(rec)
	s.mu.Unlock()
	return &floorWrite{batch: batch, r: r}
}

func (b *floorBackend) Read(shard int, cmd *messages.Command) server.Pending {
	s := b.shards[shard]
	s.mu.RLock()
	defer s.mu.RUnlock()
	return floorDone{kv.ReadCommand(s, cmd)}
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
	batch *logBatch
	r     *messages.Reply
}

func (w *floorWrite) Wait() *messages.Reply {
	<-w.batch.done
	if w.batch.err != nil {
		return floorError(w.batch.err)
	}
	return w.r
}

// groupLog appends records to one file; one goroutine writes the batch
// that has gathered and syncs it, while the next batch gathers. Each
// writer waits for its own batch only.
type groupLog struct {
	f    *os.File
	mu   sync.Mutex
	cond *sync.Cond // signalled when the open batch gets its first record
	open *logBatch
}

type logBatch struct {
	buf  []byte
	done chan struct{} // closed once buf is written and synced, or failed
	err  error
}

func newBatch() *logBatch { return &logBatch{done: make(chan struct{})} }

func (l *groupLog) append(rec []byte) *logBatch {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.open
	if len(b.buf) == 0 {
		l.cond.Signal()
	}
	b.buf = fmt.Appendf(b.buf, "%d\n", len(rec))
	b.buf = append(b.buf, rec...)
	return b
}

func (l *groupLog) run() error {
	for {
		l.mu.Lock()
		for len(l.open.buf) == 0 {
			l.cond.Wait()
		}
		b := l.open
		l.open = newBatch()
		l.mu.Unlock()
		_, err := l.f.Write(b.buf)
		if err == nil {
			err = syscall.Fdatasync(int(l.f.Fd())) // as Redis's appendfsync always
		}
		b.err = err
		close(b.done)
		if err != nil {
			// Later writers would wait forever: fail the open batch
			// too, and every one after it, by never resetting open.
			l.mu.Lock()
			l.open.err = err
			close(l.open.done)
			l.mu.Unlock()
			return err
		}
	}
}

// memShard is one shard's keys under a lock (kvmem.Store sorts the keys
// it scans, which is slow and only for the few commands that scan:
// DBSIZE, KEYS, FLUSHDB).
type memShard struct {
	mu sync.RWMutex
	*kvmem.Store
}
