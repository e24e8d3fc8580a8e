package sqlite_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

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

// TestReopen checks that everything survives a close and reopen of the same
// file, and that seqs and ids continue where they were (the in-memory
// counters are reloaded from the file).
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "chat.db")
	s := mustOpen(t, path)
	a, err := s.CreateUser(ctx, "alice", "ha")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateUser(ctx, "bob", "hb")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddFriend(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	gid, err := s.CreateGroup(ctx, a, "g", "desc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.JoinGroup(ctx, gid, b); err != nil {
		t.Fatal(err)
	}
	first := []*clusterchat.Message{
		{Conv: clusterchat.DirectConv(a, b), From: a, FromName: "alice", To: b, Body: "hi", CMID: "m1"},
		{Conv: clusterchat.GroupConv(gid), From: b, FromName: "bob", GroupID: gid, Body: "yo"},
	}
	if err := s.Append(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRead(ctx, []clusterchat.Cursor{{User: b, Conv: clusterchat.DirectConv(a, b), Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutToken(ctx, "tok", a, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.User(ctx, a); clusterchat.ErrorCode(err) != clusterchat.EUNAVAILABLE {
		t.Errorf("User after Close: %v, want EUNAVAILABLE", err)
	}

	s = mustOpen(t, path)
	defer s.Close()
	if u, err := s.User(ctx, b); err != nil || u.Name != "bob" || u.PassHash != "hb" {
		t.Errorf("User(bob) after reopen: %+v, %v", u, err)
	}
	if f, err := s.Friends(ctx, a); err != nil || len(f) != 1 || f[0].ID != b {
		t.Errorf("Friends after reopen: %+v, %v", f, err)
	}
	if g, err := s.Group(ctx, gid); err != nil || len(g.Members) != 2 {
		t.Errorf("Group after reopen: %+v, %v", g, err)
	}
	if uid, err := s.TokenUser(ctx, "tok"); err != nil || uid != a {
		t.Errorf("TokenUser after reopen: %d, %v", uid, err)
	}
	convs, err := s.Convs(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	want := []clusterchat.ConvState{
		{Conv: clusterchat.DirectConv(a, b), LastSeq: 1, Delivered: 1, Read: 1},
		{Conv: clusterchat.GroupConv(gid), LastSeq: 1},
	}
	if len(convs) != len(want) || convs[0] != want[0] || convs[1] != want[1] {
		t.Errorf("Convs after reopen: %+v, want %+v", convs, want)
	}

	// A resend is still a duplicate; new messages continue the seqs and ids.
	again := []*clusterchat.Message{
		{Conv: clusterchat.DirectConv(a, b), From: a, FromName: "alice", To: b, Body: "hi", CMID: "m1"},
		{Conv: clusterchat.DirectConv(a, b), From: b, FromName: "bob", To: a, Body: "hey"},
		{Conv: clusterchat.GroupConv(gid), From: a, FromName: "alice", GroupID: gid, Body: "back"},
	}
	if err := s.Append(ctx, again); err != nil {
		t.Fatal(err)
	}
	if !again[0].Dup || again[0].ID != first[0].ID || again[0].Seq != 1 {
		t.Errorf("resend after reopen: %+v, want a duplicate of %+v", *again[0], *first[0])
	}
	if again[1].Seq != 2 || again[2].Seq != 2 {
		t.Errorf("seqs after reopen: %d %d, want 2 2", again[1].Seq, again[2].Seq)
	}
	if again[1].ID <= first[1].ID || again[2].ID <= again[1].ID {
		t.Errorf("ids after reopen: %d %d, not above %d", again[1].ID, again[2].ID, first[1].ID)
	}
	if c, err := s.CreateUser(ctx, "carol", "hc"); err != nil || c <= b {
		t.Errorf("CreateUser after reopen: %d, %v", c, err)
	}
}
