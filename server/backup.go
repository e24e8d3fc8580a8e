package server

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"clusterchat"
)

// serveBackup answers POST /debug/backup: a copy of the running store
// under Config.BackupDir (`chatserver backup -http ADDR`). The destination
// is chosen here, never by the request: whoever reaches the endpoint can
// only make copies where the operator said. One copy is written at a time
// (another request meanwhile gets 409): copies side by side would only
// compete for the same disk and slow the server's own writes.
func (s *Server) serveBackup(w http.ResponseWriter, r *http.Request, b clusterchat.BackupStore) {
	if !s.backupMu.TryLock() {
		http.Error(w, "a backup is being written; try again when it is done", http.StatusConflict)
		return
	}
	defer s.backupMu.Unlock()
	if err := os.MkdirAll(s.cfg.BackupDir, 0o700); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	dest := filepath.Join(s.cfg.BackupDir, "clusterchat-"+time.Now().UTC().Format("20060102T150405.000Z"))
	start := time.Now()
	if err := b.Backup(r.Context(), dest); err != nil {
		s.log.Error("backup failed", "dest", dest, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.log.Info("backup written", "dest", dest, "took", time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(w, dest)
}
