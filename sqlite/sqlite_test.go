package sqlite_test

import (
	"log/slog"
	"path/filepath"
	"testing"

	"clusterchat"
	"clusterchat/sqlite"
	"clusterchat/storetest"
)

// mustOpen opens a store on path, failing the test on error.
func mustOpen(tb testing.TB, path string) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(path, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) clusterchat.Store {
		return mustOpen(t, filepath.Join(t.TempDir(), "chat.db"))
	})
}

func BenchmarkAppend(b *testing.B) {
	storetest.BenchmarkAppend(b, func(b *testing.B) clusterchat.Store {
		return mustOpen(b, filepath.Join(b.TempDir(), "chat.db"))
	})
}

// TestReopen runs the shared reopen checks on one file.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	storetest.Reopen(t, func(t *testing.T) clusterchat.Store { return mustOpen(t, path) })
}
