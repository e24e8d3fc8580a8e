package pebble

import (
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// walFS decides what a sync of the write-ahead log costs.
//
// Why it exists: Pebble's WAL writer copies a commit made with NoSync into a
// buffer of its own process and writes it to the file later (when a 32 KiB
// block fills or someone asks for a sync), so a NoSync commit does not
// survive a SIGKILL. A commit made with Sync is written to the file and then
// synced before it returns. Every commit of the store is therefore a Sync
// commit, and this file system turns the WAL's fsync into a no-op unless an
// fsync is wanted: all syncs (Options.Sync), or the next sync of each WAL
// file after the periodic syncer asked for one (want). Data and manifest files are never
// affected: flushes and compactions stay fully durable.
//
// The result is SQLite's synchronous=NORMAL in WAL mode: a commit is handed
// to the kernel before Append returns (it survives the process dying), and
// a power loss loses at most the commits of the last sync interval.
type walFS struct {
	vfs.FS
	syncAll bool         // every WAL sync is a real fsync
	want    atomic.Int64 // raised to ask each WAL file for one real fsync
}

// isWAL tells whether name is a write-ahead log file ("000123.log", or
// "000123-001.log" with WAL failover, which we do not configure).
func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

func (fs *walFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !isWAL(name) {
		return f, err
	}
	return &walFile{File: f, fs: fs}, nil
}

// Create implements vfs.FS.
func (fs *walFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.wrap(name, f, err)
}

// ReuseForWrite implements vfs.FS: Pebble recycles old WAL files this way.
func (fs *walFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(newname, f, err)
}

// OpenReadWrite implements vfs.FS.
func (fs *walFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, category, opts...)
	return fs.wrap(name, f, err)
}

// requestFsync makes the next sync of every WAL file a real fsync.
func (fs *walFS) requestFsync() { fs.want.Add(1) }

// walFile is a WAL file whose syncs walFS decides. A request is honoured
// per file: when Pebble switches to a new WAL, the old one's final sync (on
// close) and the new one's next sync both reach the disk.
type walFile struct {
	vfs.File
	fs   *walFS
	done atomic.Int64 // the last request this file has honoured
}

// fsync tells whether this sync must reach the disk.
func (f *walFile) fsync() bool {
	if f.fs.syncAll {
		return true
	}
	w := f.fs.want.Load()
	if f.done.Load() >= w {
		return false
	}
	f.done.Store(w)
	return true
}

// Sync implements vfs.File.
func (f *walFile) Sync() error {
	if f.fsync() {
		return f.File.Sync()
	}
	return nil
}

// SyncData implements vfs.File (what Pebble's syncing wrapper calls).
func (f *walFile) SyncData() error {
	if f.fsync() {
		return f.File.SyncData()
	}
	return nil
}

// SyncTo implements vfs.File.
func (f *walFile) SyncTo(length int64) (bool, error) {
	if f.fsync() {
		return f.File.SyncTo(length)
	}
	return false, nil
}
