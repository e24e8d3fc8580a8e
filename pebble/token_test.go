package pebble

import (
	"context"
	"log/slog"
	"testing"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"
)

// TestTokenIndexMigration: a store made before the T index (tokens without
// index rows, no meta marker) gets its index at Open, so that revoking a
// user's tokens also revokes the tokens it had before the upgrade.
func TestTokenIndexMigration(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	uid, err := s.CreateUser(ctx, "old", "h")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutToken(ctx, "tok", uid, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Make it look like the previous version wrote it.
	b := s.db.NewBatch()
	b.Delete(keyIntStr(nil, pUserToken, uid, "tok"), nil)
	b.Delete(metaTokenIndex, nil)
	if err := b.Commit(pdb.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.DeleteUserTokens(ctx, uid); err != nil {
		t.Fatal(err)
	}
	if got, err := s.TokenUser(ctx, "tok"); err == nil {
		t.Fatalf("a token from before the index survived DeleteUserTokens (user %d)", got)
	}
}
