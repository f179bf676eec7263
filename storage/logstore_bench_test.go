package storage

import (
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// BenchmarkLogStore compares Raft log stores as Raft uses them: StoreLogs
// of a batch of 64-byte entries, fsynced, then an occasional DeleteRange
// after a snapshot, by groups (shards) appending at once, each with a store
// of its own (raft-wal, raft-boltdb/v2: what DESIGN.md proposed) or each
// with its group of one RaftLogs (what coppice uses). The figures are in
// docs/storage.md; reproduce with
//
//	go test -run '^$' -bench LogStore -benchtime 2s ./storage/
func BenchmarkLogStore(b *testing.B) {
	// Each opens the stores of n groups under dir.
	stores := map[string]func(b *testing.B, dir string, n int) []raft.LogStore{
		"raft-wal": func(b *testing.B, dir string, n int) []raft.LogStore {
			var s []raft.LogStore
			for i := range n {
				w, closeWAL := openRaftWAL(b, filepath.Join(dir, fmt.Sprint(i)))
				b.Cleanup(func() { closeWAL() })
				s = append(s, w)
			}
			return s
		},
		"raft-boltdb-v2": func(b *testing.B, dir string, n int) []raft.LogStore {
			var s []raft.LogStore
			for i := range n {
				db, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, fmt.Sprintf("raft-%d.db", i))})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { db.Close() })
				s = append(s, db)
			}
			return s
		},
		"raftlogs": func(b *testing.B, dir string, n int) []raft.LogStore {
			r := testLogs(b, dir)
			var s []raft.LogStore
			for i := range n {
				s = append(s, testGroup(b, r, uint32(i)))
			}
			return s
		},
	}
	for _, groups := range []int{1, 4} {
		for _, batch := range []int{1, 16} {
			for _, name := range []string{"raft-wal", "raft-boltdb-v2", "raftlogs"} {
				b.Run(fmt.Sprintf("%s/groups=%d/batch=%d", name, groups, batch), func(b *testing.B) {
					s := stores[name](b, b.TempDir(), groups)
					b.SetBytes(int64(groups * batch * 64))
					cpu0 := cpuTime(b)
					b.ResetTimer()
					var wg sync.WaitGroup
					for _, st := range s {
						wg.Add(1)
						go func() {
							defer wg.Done()
							if err := appendBatches(st, b.N, batch); err != nil {
								b.Error(err)
							}
						}()
					}
					wg.Wait()
					n := float64(b.N * batch * groups)
					b.ReportMetric(n/b.Elapsed().Seconds(), "entries/s")
					b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/n, "cpu-us/entry")
				})
			}
		}
	}
}

// cpuTime is the process's CPU time so far (user and system).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// appendBatches stores n batches of batch 64-byte entries in s, deleting
// the head now and then as a snapshot's compaction does.
func appendBatches(s raft.LogStore, n, batch int) error {
	data := make([]byte, 64)
	logs := make([]*raft.Log, batch)
	idx := uint64(1)
	for range n {
		for j := range logs {
			logs[j] = &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data}
			idx++
		}
		if err := s.StoreLogs(logs); err != nil {
			return err
		}
		if idx%8192 < uint64(batch) && idx > 4096 {
			first, err := s.FirstIndex()
			if err != nil {
				return err
			}
			if err := s.DeleteRange(first, idx-4096); err != nil {
				return err
			}
		}
	}
	return nil
}

// BenchmarkRaftLogsRead compares reading a group's log entry by entry
// (GetLog: a seek each) with reading it as a range (ScanLogs: one
// iterator), as a restarted node reads it for its configuration and its
// replay: 20000 entries of 400 bytes (a batch of a few SETs), none cached.
//
//	go test -run '^$' -bench RaftLogsRead ./storage/
func BenchmarkRaftLogsRead(b *testing.B) {
	const n = 20000
	r := testLogs(b, b.TempDir())
	g := testGroup(b, r, 1)
	for i := uint64(1); i <= n; i += 100 {
		batch := make([]*raft.Log, 100)
		for j := range batch {
			batch[j] = &raft.Log{Index: i + uint64(j), Term: 1, Type: raft.LogCommand, Data: make([]byte, 400)}
		}
		if err := g.StoreLogs(batch); err != nil {
			b.Fatal(err)
		}
	}
	log := g.(*groupStore).groupLog // under the cache
	b.Run("GetLog", func(b *testing.B) {
		for range b.N {
			for i := uint64(1); i <= n; i++ {
				var l raft.Log
				if err := log.GetLog(i, &l); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
	})
	b.Run("ScanLogs", func(b *testing.B) {
		for range b.N {
			if err := log.ScanLogs(1, n, func(*raft.Log) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
	})
}
