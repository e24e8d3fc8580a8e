package storetest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/internal/testenv"
)

// DiskFull runs a store on a small file system (testenv.SmallFS), fills it
// and appends until an append fails: the failure must be EUNAVAILABLE
// (errno 9), nothing acknowledged before it may be lost, and once the space
// is back the store must take appends again by itself, with the seqs going
// on without a gap; all of it again after a Close and a new open. open
// opens the store on a database in dir, the same one every time.
func DiskFull(t *testing.T, open func(dir string) (clusterchat.Store, error)) {
	dir := testenv.SmallFS(t, 8<<20)
	ctx := context.Background()
	s, err := open(dir)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer func() { s.Close() }()
	a, err := s.CreateUser(ctx, "alice", "ha")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateUser(ctx, "bob", "hb")
	if err != nil {
		t.Fatal(err)
	}
	conv := clusterchat.DirectConv(a, b)
	pad := strings.Repeat("x", 1000)
	var acked []clusterchat.Message
	n := 0
	send := func() error {
		n++
		m := &clusterchat.Message{Conv: conv, From: a, FromName: "alice", To: b,
			Body: fmt.Sprintf("#%d %s", n, pad), CMID: fmt.Sprintf("m%d", n)}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := s.Append(ctx, []*clusterchat.Message{m})
		if err == nil {
			acked = append(acked, *m)
		}
		return err
	}
	for range 20 {
		if err := send(); err != nil {
			t.Fatalf("append with room: %v", err)
		}
	}

	ballast := testenv.Fill(t, dir)
	var failed error
	for range 5000 {
		if failed = send(); failed != nil {
			break
		}
	}
	if failed == nil {
		t.Fatalf("5000 appends on a full disk all succeeded")
	}
	if code := clusterchat.ErrorCode(failed); code != clusterchat.EUNAVAILABLE {
		t.Errorf("append on a full disk: %v (errno %d), want EUNAVAILABLE (9)", failed, code)
	}
	t.Logf("disk full after %d acknowledged appends: %v", len(acked), failed)
	// Still full: refused again (or, if a page freed up, accepted).
	for range 3 {
		if err := send(); err != nil && clusterchat.ErrorCode(err) != clusterchat.EUNAVAILABLE {
			t.Errorf("append on a full disk: %v, want EUNAVAILABLE", err)
		}
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "an append once the space is back", func() bool { return send() == nil })
	check := func(when string) {
		t.Helper()
		got, err := s.Since(ctx, conv, 0, clusterchat.MaxPageSize)
		if err != nil {
			t.Fatalf("%s: Since: %v", when, err)
		}
		bySeq := map[int64]*clusterchat.Message{}
		bodies := map[string]int{}
		for i, m := range got {
			if m.Seq != int64(i+1) {
				t.Fatalf("%s: seq %d at position %d: a gap or a repeat", when, m.Seq, i)
			}
			bySeq[m.Seq] = m
			bodies[m.Body]++
		}
		for _, w := range acked {
			g := bySeq[w.Seq]
			if g == nil || g.ID != w.ID || g.Body != w.Body {
				t.Fatalf("%s: acknowledged seq %d (id %d, %.8q) lost: the store has %+v", when, w.Seq, w.ID, w.Body, g)
			}
		}
		for body, k := range bodies {
			if k > 1 {
				t.Errorf("%s: %.8q stored %d times", when, body, k)
			}
		}
		t.Logf("%s: %d acknowledged, %d stored", when, len(acked), len(got))
	}
	check("after the space came back")
	if err := s.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	if s, err = open(dir); err != nil {
		t.Fatalf("open again: %v", err)
	}
	check("after a reopen")
	if err := send(); err != nil {
		t.Fatalf("append after a reopen: %v", err)
	}
	check("after one more append")
}
