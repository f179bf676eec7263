package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// backupBarriers bounds the read barriers and checkpoints a backup takes
// before it sends a byte.
const backupBarriers = 2 * time.Minute

// backupStall is how long a write of the backup's stream may take: a
// client that stops reading for that long is cut off (the stream is
// otherwise as long as the data).
const backupStall = time.Minute

// backup streams a backup of every shard of the node (GET /v1/backup).
// An error before the stream starts is a 503 with its reason; one during
// it aborts the connection, so the client never takes a cut stream for a
// whole one (its reader checks the stream against the header, too).
func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Backup == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "application/octet-stream")
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(r.Context(), backupBarriers)
	b, err := s.cfg.Backup(ctx)
	cancel()
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	defer b.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="coppice-%s-%s.backup"`,
		s.cfg.Info.Name, start.UTC().Format("20060102T150405Z")))
	w.Header().Set("Cache-Control", "no-store")
	info, err := b.Write(&stallWriter{w: w, rc: http.NewResponseController(w)})
	if err != nil {
		s.log.Warn("backup: the stream failed", "remote", r.RemoteAddr, "err", err)
		panic(http.ErrAbortHandler)
	}
	idx := make([]uint64, len(info.Shards))
	for i, sh := range info.Shards {
		idx[i] = sh.AppliedIndex
	}
	s.log.Info("backup sent", "remote", r.RemoteAddr, "bytes", info.Bytes(), "applied", idx, "took", time.Since(start).Round(time.Millisecond))
}

// stallWriter moves the connection's write deadline before each write:
// the server's WriteTimeout bounds a whole answer, which a backup's
// stream outlasts.
type stallWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s *stallWriter) Write(p []byte) (int, error) {
	if err := s.rc.SetWriteDeadline(time.Now().Add(backupStall)); err != nil {
		return 0, err
	}
	return s.w.Write(p)
}
