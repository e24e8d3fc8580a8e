package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/internal/testenv"
)

// TestCheckpoint checks that the background checkpointer moves the WAL into
// the database file while the store stays open, with no help from the
// writer (automatic checkpoints are off).
func TestCheckpoint(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "chat.db")
	s := mustOpen(t, path)
	defer s.Close()
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	a, _ := s.CreateUser(ctx, "a", "x")
	b, _ := s.CreateUser(ctx, "b", "x")
	testenv.WaitFor(t, 10*time.Second, "first checkpoint", func() bool { return size() > 0 })
	before := size()
	for range 50 {
		msgs := make([]*clusterchat.Message, 20)
		for i := range msgs {
			msgs[i] = &clusterchat.Message{Conv: clusterchat.DirectConv(a, b), From: a, To: b, Body: "some text to fill a few pages of the log"}
		}
		if err := s.Append(ctx, msgs); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "messages checkpointed into "+path, func() bool { return size() > before })
	got, err := s.Since(ctx, clusterchat.DirectConv(a, b), 990, 100)
	if err != nil || len(got) != 10 || got[9].Seq != 1000 {
		t.Fatalf("Since after checkpoint: %d messages, %v", len(got), err)
	}
}
