package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// benchStores are the Raft log stores BenchmarkLogStore compares: the two
// DESIGN.md names, each group on a store of its own, and the NodeLog, one
// store every group of a node shares. Each returns groups stores.
var benchStores = map[string]func(dir string, groups int) ([]raft.LogStore, func(), error){
	"raft-wal": func(dir string, groups int) ([]raft.LogStore, func(), error) {
		return perGroup(dir, groups, func(dir string) (raft.LogStore, func(), error) {
			s, err := OpenLogStore(dir)
			if err != nil {
				return nil, nil, err
			}
			return s, func() { s.Close() }, nil
		})
	},
	"raft-boltdb-v2": func(dir string, groups int) ([]raft.LogStore, func(), error) {
		return perGroup(dir, groups, func(dir string) (raft.LogStore, func(), error) {
			s, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
			if err != nil {
				return nil, nil, err
			}
			return s, func() { s.Close() }, nil
		})
	},
	"node-log": func(dir string, groups int) ([]raft.LogStore, func(), error) {
		n, err := OpenNodeLog(dir)
		if err != nil {
			return nil, nil, err
		}
		var out []raft.LogStore
		for g := 0; g < groups; g++ {
			s, err := n.Group(uint32(g))
			if err != nil {
				n.Close()
				return nil, nil, err
			}
			out = append(out, s)
		}
		return out, func() { n.Close() }, nil
	},
}

func perGroup(dir string, groups int, open func(string) (raft.LogStore, func(), error)) ([]raft.LogStore, func(), error) {
	var out []raft.LogStore
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for g := 0; g < groups; g++ {
		d := filepath.Join(dir, fmt.Sprint(g))
		if err := os.MkdirAll(d, 0o755); err != nil {
			closeAll()
			return nil, nil, err
		}
		s, c, err := open(d)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		out, closers = append(out, s), append(closers, c)
	}
	return out, closeAll, nil
}

// BenchmarkLogStore compares the Raft log stores as Raft uses them:
// StoreLogs of a batch of 64-byte entries, fsynced, then an occasional
// DeleteRange as after a snapshot. groups=1 is one Raft group appending;
// groups=4 is four groups (a node's shards) appending at once, each from
// its own goroutine as their leader loops do. It measures entries per
// second and, as cpu-ns/entry, the process's CPU time (user and system,
// fsync included) per entry: on a node that shares its cores with
// clients and other nodes the CPU is what runs out. The figures are in
// docs/storage.md; reproduce with
//
//	go test -run '^$' -bench LogStore -benchtime 2s ./storage/
func BenchmarkLogStore(b *testing.B) {
	for _, groups := range []int{1, 4} {
		for _, batch := range []int{1, 16, 64} {
			for _, name := range []string{"raft-wal", "raft-boltdb-v2", "node-log"} {
				b.Run(fmt.Sprintf("groups=%d/batch=%d/%s", groups, batch, name), func(b *testing.B) {
					stores, closeFn, err := benchStores[name](b.TempDir(), groups)
					if err != nil {
						b.Fatal(err)
					}
					defer closeFn()
					b.SetBytes(int64(groups * batch * 64))
					cpu0 := cpuTime()
					b.ResetTimer()
					var wg sync.WaitGroup
					errs := make([]error, groups)
					for g, s := range stores {
						wg.Add(1)
						go func() {
							defer wg.Done()
							errs[g] = appendBatches(s, b.N, batch)
						}()
					}
					wg.Wait()
					b.StopTimer()
					for _, err := range errs {
						if err != nil {
							b.Fatal(err)
						}
					}
					n := float64(b.N * batch * groups)
					b.ReportMetric(n/b.Elapsed().Seconds(), "entries/s")
					b.ReportMetric(float64(cpuTime()-cpu0)/n, "cpu-ns/entry")
				})
			}
		}
	}
}

// appendBatches stores n batches of batch 64-byte entries in s, compacting
// its head as a snapshot would.
func appendBatches(s raft.LogStore, n, batch int) error {
	data := make([]byte, 64)
	logs := make([]*raft.Log, batch)
	idx := uint64(1)
	for i := 0; i < n; i++ {
		for j := range logs {
			logs[j] = &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data}
			idx++
		}
		if err := s.StoreLogs(logs); err != nil {
			return err
		}
		if idx%8192 < uint64(batch) && idx > 4096 {
			first, _ := s.FirstIndex()
			if err := s.DeleteRange(first, idx-4096); err != nil {
				return err
			}
		}
	}
	return nil
}
