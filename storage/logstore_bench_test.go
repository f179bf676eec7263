package storage

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// BenchmarkLogStore compares the two Raft log stores DESIGN.md allows, as
// Raft uses them: StoreLogs of a batch of 64-byte entries, fsynced, then an
// occasional DeleteRange after a snapshot. The figures are in
// docs/storage.md; reproduce with
//
//	go test -run '^$' -bench LogStore -benchtime 2s ./storage/
func BenchmarkLogStore(b *testing.B) {
	stores := map[string]func(dir string) (raft.LogStore, func(), error){
		"raft-wal": func(dir string) (raft.LogStore, func(), error) {
			s, err := OpenLogStore(dir)
			if err != nil {
				return nil, nil, err
			}
			return s, func() { s.Close() }, nil
		},
		"raft-boltdb-v2": func(dir string) (raft.LogStore, func(), error) {
			s, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
			if err != nil {
				return nil, nil, err
			}
			return s, func() { s.Close() }, nil
		},
	}
	for _, batch := range []int{1, 16, 64} {
		for _, name := range []string{"raft-wal", "raft-boltdb-v2"} {
			b.Run(fmt.Sprintf("%s/batch=%d", name, batch), func(b *testing.B) {
				s, closeFn, err := stores[name](b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				defer closeFn()
				data := make([]byte, 64)
				logs := make([]*raft.Log, batch)
				idx := uint64(1)
				b.SetBytes(int64(batch * len(data)))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					for j := range logs {
						logs[j] = &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data}
						idx++
					}
					if err := s.StoreLogs(logs); err != nil {
						b.Fatal(err)
					}
					if idx%8192 < uint64(batch) && idx > 4096 {
						first, _ := s.FirstIndex()
						if err := s.DeleteRange(first, idx-4096); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}
