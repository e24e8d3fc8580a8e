package storetest

import (
	"context"
	"testing"
	"time"

	"clusterchat"
)

// Reopen checks that everything a store holds survives a Close and a new
// open of the same database, that calls after Close fail with EUNAVAILABLE,
// and that seqs and ids continue where they were (stores that keep counters
// in memory recover them at open). open must return a store on the same
// database every time it is called; Reopen closes what it opens.
func Reopen(t *testing.T, open func(t *testing.T) clusterchat.Store) {
	ctx := context.Background()
	s := open(t)
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
	calls := []struct {
		name string
		call func() error
	}{
		{"User", func() error { _, err := s.User(ctx, a); return err }},
		{"Append", func() error { return s.Append(ctx, []*clusterchat.Message{{Conv: "g:1", From: a, GroupID: 1}}) }},
		{"Since", func() error { _, err := s.Since(ctx, "g:1", 0, 10); return err }},
		{"MarkRead", func() error { return s.MarkRead(ctx, []clusterchat.Cursor{{User: a, Conv: "g:1", Seq: 1}}) }},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, c := range calls {
		if err := c.call(); clusterchat.ErrorCode(err) != clusterchat.EUNAVAILABLE {
			t.Errorf("%s after Close: %v, want EUNAVAILABLE", c.name, err)
		}
	}

	s = open(t)
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
		{Conv: clusterchat.GroupConv(gid), LastSeq: 1, Read: 1}, // bob wrote it
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
	if !again[0].Dup || again[0].ID != first[0].ID || again[0].Seq != 1 || again[0].Body != "hi" {
		t.Errorf("resend after reopen: %+v, want a duplicate of %+v", *again[0], *first[0])
	}
	if again[1].Seq != 2 || again[2].Seq != 2 {
		t.Errorf("seqs after reopen: %d %d, want 2 2", again[1].Seq, again[2].Seq)
	}
	if again[1].ID <= first[1].ID || again[2].ID <= again[1].ID {
		t.Errorf("ids after reopen: %d %d, not above %d", again[1].ID, again[2].ID, first[1].ID)
	}
	if c, err := s.CreateUser(ctx, "carol", "hc"); err != nil || c != b+1 {
		t.Errorf("CreateUser after reopen: %d, %v, want %d", c, err, b+1)
	}
	if g, err := s.CreateGroup(ctx, a, "g2", ""); err != nil || g != gid+1 {
		t.Errorf("CreateGroup after reopen: %d, %v, want %d", g, err, gid+1)
	}
	if _, err := s.CreateUser(ctx, "alice", "x"); clusterchat.ErrorCode(err) != clusterchat.EEXISTS {
		t.Errorf("CreateUser(alice) after reopen: %v, want EEXISTS", err)
	}
}
