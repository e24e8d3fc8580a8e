// Package storetest is the conformance suite of clusterchat.Store: every
// guarantee written in the Store doc comments, checked against a real
// implementation. Each store package runs it from its own tests:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) clusterchat.Store { return mustOpen(t) })
//	}
//
// so sqlite and postgres are held to exactly the same contract.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"clusterchat"
)

// Run runs the conformance suite as sub-tests. open must return a fresh,
// empty store for each call; the suite closes it when the sub-test ends.
func Run(t *testing.T, open func(t *testing.T) clusterchat.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s clusterchat.Store)
	}{
		{"Users", testUsers},
		{"Friends", testFriends},
		{"Groups", testGroups},
		{"JoinCursors", testJoinCursors},
		{"AppendSeqIDTime", testAppendSeqIDTime},
		{"AppendDedup", testAppendDedup},
		{"AppendDedupInBatch", testAppendDedupInBatch},
		{"AppendMixedBatch", testAppendMixedBatch},
		{"SinceBefore", testSinceBefore},
		{"Convs", testConvs},
		{"Undelivered", testUndelivered},
		{"MarkCursors", testMarkCursors},
		{"AppendMovesSenderCursor", testAppendMovesSenderCursor},
		{"Tokens", testTokens},
		{"TokenRenew", testTokenRenew},
		{"TokenRevoke", testTokenRevoke},
		{"TokenSweep", testTokenSweep},
		{"SetPassword", testSetPassword},
		{"Ping", testPing},
		{"ConcurrentAppend", testConcurrentAppend},
	}
	for _, tc := range append(tests, socialTests...) {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// ctx bounds every call of the suite so that a hung store fails the test
// instead of hanging it.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func wantCode(t testing.TB, what string, err error, code int) {
	t.Helper()
	if got := clusterchat.ErrorCode(err); got != code {
		t.Fatalf("%s: error code %d (%v), want %d", what, got, err, code)
	}
}

func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func mkUser(t testing.TB, s clusterchat.Store, name string) int64 {
	t.Helper()
	id, err := s.CreateUser(ctx(t), name, "hash-"+name)
	must(t, "CreateUser "+name, err)
	return id
}

func mkGroup(t testing.TB, s clusterchat.Store, creator int64, name string) int64 {
	t.Helper()
	id, err := s.CreateGroup(ctx(t), creator, name, "about "+name)
	must(t, "CreateGroup "+name, err)
	return id
}

// direct builds a 1:1 message as the server would before Append.
func direct(from, to int64, body, cmid string) *clusterchat.Message {
	return &clusterchat.Message{
		Conv: clusterchat.DirectConv(from, to), From: from, FromName: "u" + strconv.FormatInt(from, 10),
		To: to, Body: body, CTime: "2024-01-02 03:04:05", CMID: cmid,
	}
}

// group builds a group message as the server would before Append.
func group(from, gid int64, body, cmid string) *clusterchat.Message {
	return &clusterchat.Message{
		Conv: clusterchat.GroupConv(gid), From: from, FromName: "u" + strconv.FormatInt(from, 10),
		GroupID: gid, Body: body, CTime: "2024-01-02 03:04:05", CMID: cmid,
	}
}

func appendAll(t testing.TB, s clusterchat.Store, msgs ...*clusterchat.Message) {
	t.Helper()
	must(t, "Append", s.Append(ctx(t), msgs))
}

// sameMsg compares everything a store keeps (Dup is the caller's flag).
func sameMsg(t testing.TB, what string, got, want *clusterchat.Message) {
	t.Helper()
	g, w := *got, *want
	if !g.Time.Equal(w.Time) {
		t.Errorf("%s: Time %v, want %v", what, g.Time, w.Time)
	}
	g.Time, w.Time, g.Dup, w.Dup = time.Time{}, time.Time{}, false, false
	if g != w {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func seqs(msgs []*clusterchat.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func span(from, to int64) []int64 {
	out := []int64{}
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func wantSeqs(t testing.TB, what string, msgs []*clusterchat.Message, want []int64) {
	t.Helper()
	if got := seqs(msgs); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("%s: seqs %v, want %v", what, got, want)
	}
}

func convState(t testing.TB, s clusterchat.Store, uid int64, conv string) (clusterchat.ConvState, bool) {
	t.Helper()
	cs, err := s.Convs(ctx(t), uid)
	must(t, "Convs", err)
	for _, c := range cs {
		if c.Conv == conv {
			return c, true
		}
	}
	return clusterchat.ConvState{}, false
}

func testUsers(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	for i, name := range []string{"alice", "bob", "carol"} {
		id, err := s.CreateUser(c, name, "hash-"+name)
		must(t, "CreateUser", err)
		if id != int64(i+1) {
			t.Errorf("CreateUser %s: id %d, want %d (ids start at 1)", name, id, i+1)
		}
	}
	u, err := s.User(c, 2)
	must(t, "User", err)
	if *u != (clusterchat.User{ID: 2, Name: "bob", PassHash: "hash-bob"}) {
		t.Errorf("User(2) = %+v", *u)
	}
	_, err = s.CreateUser(c, "bob", "other")
	wantCode(t, "CreateUser taken name", err, clusterchat.EEXISTS)
	u, err = s.User(c, 2)
	must(t, "User after failed create", err)
	if u.PassHash != "hash-bob" {
		t.Errorf("failed CreateUser changed the account: %+v", *u)
	}
	for _, id := range []int64{0, -1, 999} {
		_, err = s.User(c, id)
		wantCode(t, fmt.Sprintf("User(%d)", id), err, clusterchat.ENOTFOUND)
	}
	id, err := s.CreateUser(c, "dave", "hash-dave")
	must(t, "CreateUser after failure", err)
	if id <= 3 {
		t.Errorf("CreateUser after failure: id %d reuses an existing one", id)
	}
}

func testFriends(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	a, b, d, e := mkUser(t, s, "a"), mkUser(t, s, "b"), mkUser(t, s, "d"), mkUser(t, s, "e")
	must(t, "AddFriend a d", s.AddFriend(c, a, d))
	must(t, "AddFriend b a", s.AddFriend(c, b, a))

	tests := []struct {
		uid  int64
		want []clusterchat.User
	}{
		{a, []clusterchat.User{{ID: b, Name: "b"}, {ID: d, Name: "d"}}},
		{b, []clusterchat.User{{ID: a, Name: "a"}}},
		{d, []clusterchat.User{{ID: a, Name: "a"}}},
		{e, nil},
	}
	for _, tc := range tests {
		got, err := s.Friends(c, tc.uid)
		must(t, "Friends", err)
		if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("Friends(%d) = %+v, want %+v", tc.uid, got, tc.want)
		}
	}

	errs := []struct {
		name string
		a, b int64
		code int
	}{
		{"again", a, d, clusterchat.EEXISTS},
		{"again reversed", d, a, clusterchat.EEXISTS},
		{"missing b", a, 999, clusterchat.ENOTFOUND},
		{"missing a", 999, a, clusterchat.ENOTFOUND},
	}
	for _, tc := range errs {
		wantCode(t, "AddFriend "+tc.name, s.AddFriend(c, tc.a, tc.b), tc.code)
	}
	got, err := s.Friends(c, a)
	must(t, "Friends", err)
	if len(got) != 2 {
		t.Errorf("failed AddFriend changed friends of a: %+v", got)
	}
}

func testGroups(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1, u2, u3 := mkUser(t, s, "u1"), mkUser(t, s, "u2"), mkUser(t, s, "u3")
	g1, err := s.CreateGroup(c, u2, "g1", "first")
	must(t, "CreateGroup", err)
	g2 := mkGroup(t, s, u1, "g2")
	if g1 == g2 {
		t.Fatalf("two groups with id %d", g1)
	}

	_, err = s.CreateGroup(c, u1, "g1", "again")
	wantCode(t, "CreateGroup taken name", err, clusterchat.EEXISTS)
	_, err = s.CreateGroup(c, 999, "g3", "")
	wantCode(t, "CreateGroup missing creator", err, clusterchat.ENOTFOUND)
	// The failed call left nothing behind: the name is still free.
	g3 := mkGroup(t, s, u3, "g3")

	joins := []struct {
		name     string
		gid, uid int64
		added    bool
		code     int
	}{
		{"new member", g1, u1, true, 0},
		{"again", g1, u1, false, 0},
		{"creator", g1, u2, false, 0},
		{"other group", g2, u3, true, 0},
		{"missing group", 999, u1, false, clusterchat.ENOTFOUND},
		{"missing user", g1, 999, false, clusterchat.ENOTFOUND},
	}
	for _, tc := range joins {
		added, err := s.JoinGroup(c, tc.gid, tc.uid)
		wantCode(t, "JoinGroup "+tc.name, err, tc.code)
		if added != tc.added {
			t.Errorf("JoinGroup %s: added %v, want %v", tc.name, added, tc.added)
		}
	}

	wantG1 := clusterchat.Group{ID: g1, Name: "g1", Desc: "first", Members: []clusterchat.Member{
		{UserID: u1, Name: "u1", Role: clusterchat.RoleNormal},
		{UserID: u2, Name: "u2", Role: clusterchat.RoleCreator},
	}}
	wantG2 := clusterchat.Group{ID: g2, Name: "g2", Desc: "about g2", Members: []clusterchat.Member{
		{UserID: u1, Name: "u1", Role: clusterchat.RoleCreator},
		{UserID: u3, Name: "u3", Role: clusterchat.RoleNormal},
	}}
	wantG3 := clusterchat.Group{ID: g3, Name: "g3", Desc: "about g3", Members: []clusterchat.Member{
		{UserID: u3, Name: "u3", Role: clusterchat.RoleCreator},
	}}
	sameGroup := func(what string, got, want clusterchat.Group) {
		t.Helper()
		if got.ID != want.ID || got.Name != want.Name || got.Desc != want.Desc || !slices.Equal(got.Members, want.Members) {
			t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
		}
	}
	g, err := s.Group(c, g1)
	must(t, "Group", err)
	sameGroup("Group(g1)", *g, wantG1)
	_, err = s.Group(c, 999)
	wantCode(t, "Group(999)", err, clusterchat.ENOTFOUND)

	roles := []struct {
		gid, uid int64
		want     string
		code     int
	}{
		{g1, u2, clusterchat.RoleCreator, 0},
		{g1, u1, clusterchat.RoleNormal, 0},
		{g1, u3, "", 0},
		{g1, 999, "", 0},
		{999, u1, "", clusterchat.ENOTFOUND},
	}
	for _, tc := range roles {
		role, err := s.Role(c, tc.gid, tc.uid)
		wantCode(t, fmt.Sprintf("Role(%d, %d)", tc.gid, tc.uid), err, tc.code)
		if role != tc.want {
			t.Errorf("Role(%d, %d) = %q, want %q", tc.gid, tc.uid, role, tc.want)
		}
	}

	ugs := []struct {
		uid  int64
		want []clusterchat.Group
	}{
		{u1, []clusterchat.Group{wantG1, wantG2}},
		{u2, []clusterchat.Group{wantG1}},
		{u3, []clusterchat.Group{wantG2, wantG3}},
		{999, nil},
	}
	for _, tc := range ugs {
		got, err := s.UserGroups(c, tc.uid)
		must(t, "UserGroups", err)
		if len(got) != len(tc.want) {
			t.Errorf("UserGroups(%d): %d groups %+v, want %+v", tc.uid, len(got), got, tc.want)
			continue
		}
		for i := range got {
			sameGroup(fmt.Sprintf("UserGroups(%d)[%d]", tc.uid, i), got[i], tc.want[i])
		}
	}
}

func testJoinCursors(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1, u2 := mkUser(t, s, "u1"), mkUser(t, s, "u2")
	gid := mkGroup(t, s, u1, "g")
	conv := clusterchat.GroupConv(gid)

	if cs, ok := convState(t, s, u1, conv); !ok || cs != (clusterchat.ConvState{Conv: conv}) {
		t.Errorf("creator's state before any message: %+v (listed %v)", cs, ok)
	}
	appendAll(t, s, group(u1, gid, "1", ""), group(u1, gid, "2", ""), group(u1, gid, "3", ""))
	added, err := s.JoinGroup(c, gid, u2)
	must(t, "JoinGroup", err)
	if !added {
		t.Fatal("JoinGroup: not added")
	}
	if cs, _ := convState(t, s, u2, conv); cs != (clusterchat.ConvState{Conv: conv, LastSeq: 3, Delivered: 3, Read: 3}) {
		t.Errorf("new member's state: %+v, want cursors at the last seq 3", cs)
	}
	un, err := s.Undelivered(c, u2, 100)
	must(t, "Undelivered", err)
	wantSeqs(t, "new member's undelivered", un, nil)

	appendAll(t, s, group(u1, gid, "4", ""))
	un, err = s.Undelivered(c, u2, 100)
	must(t, "Undelivered", err)
	wantSeqs(t, "undelivered after joining", un, []int64{4})
	if cs, _ := convState(t, s, u1, conv); cs != (clusterchat.ConvState{Conv: conv, LastSeq: 4, Read: 4}) {
		t.Errorf("creator's state: %+v, want read up to its own last message", cs)
	}
}

func testAppendSeqIDTime(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1, u2, u3 := mkUser(t, s, "u1"), mkUser(t, s, "u2"), mkUser(t, s, "u3")
	gid := mkGroup(t, s, u1, "g")

	before := time.Now().Add(-time.Second)
	var all []*clusterchat.Message
	// Several appends of several sizes to three conversations.
	batches := [][]*clusterchat.Message{
		{direct(u1, u2, "a", "")},
		{direct(u2, u1, "b", ""), direct(u1, u2, "c", "")},
		{group(u1, gid, "d", ""), direct(u1, u3, "e", ""), group(u1, gid, "f", "")},
		{direct(u3, u1, "g", ""), direct(u1, u2, "h", "")},
	}
	for _, b := range batches {
		appendAll(t, s, b...)
		all = append(all, b...)
	}
	after := time.Now().Add(time.Second)

	wantSeq := map[string][]int64{
		clusterchat.DirectConv(u1, u2): {1, 2, 3, 4},
		clusterchat.DirectConv(u1, u3): {1, 2},
		clusterchat.GroupConv(gid):     {1, 2},
	}
	gotSeq := map[string][]int64{}
	ids := map[int64]bool{}
	var lastID int64
	for _, m := range all {
		gotSeq[m.Conv] = append(gotSeq[m.Conv], m.Seq)
		if m.ID <= 0 || ids[m.ID] {
			t.Errorf("message %q: id %d not new", m.Body, m.ID)
		}
		if m.ID <= lastID {
			t.Errorf("message %q: id %d not above the previous %d", m.Body, m.ID, lastID)
		}
		ids[m.ID], lastID = true, m.ID
		if m.Time.Before(before) || m.Time.After(after) {
			t.Errorf("message %q: Time %v not now", m.Body, m.Time)
		}
		if !m.Time.Equal(m.Time.Truncate(time.Millisecond)) {
			t.Errorf("message %q: Time %v finer than a millisecond", m.Body, m.Time)
		}
		if m.CTime != "2024-01-02 03:04:05" || m.Dup {
			t.Errorf("message %q: CTime %q Dup %v", m.Body, m.CTime, m.Dup)
		}
	}
	for conv, want := range wantSeq {
		if !slices.Equal(gotSeq[conv], want) {
			t.Errorf("%s: seqs %v, want %v", conv, gotSeq[conv], want)
		}
	}

	// What Since returns is what Append assigned.
	for conv := range wantSeq {
		got, err := s.Since(c, conv, 0, 100)
		must(t, "Since", err)
		var want []*clusterchat.Message
		for _, m := range all {
			if m.Conv == conv {
				want = append(want, m)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("Since(%s): %d messages, want %d", conv, len(got), len(want))
		}
		for i := range got {
			sameMsg(t, "Since("+conv+")", got[i], want[i])
		}
	}

	// An empty append is a no-op.
	must(t, "Append(nil)", s.Append(c, nil))
}

func testAppendDedup(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1, u2, u3 := mkUser(t, s, "u1"), mkUser(t, s, "u2"), mkUser(t, s, "u3")
	gid := mkGroup(t, s, u1, "g")
	d12 := clusterchat.DirectConv(u1, u2)

	orig := direct(u1, u2, "hello", "cm-1")
	appendAll(t, s, orig)
	if orig.Dup {
		t.Fatal("first message marked Dup")
	}
	origCopy := *orig

	tests := []struct {
		name string
		msg  *clusterchat.Message
		dup  bool
	}{
		{"same sender and cmid", direct(u1, u2, "hello again", "cm-1"), true},
		{"same cmid to another conv", direct(u1, u3, "elsewhere", "cm-1"), true},
		{"same cmid as group message", group(u1, gid, "in group", "cm-1"), true},
		{"same cmid other sender", direct(u2, u1, "reply", "cm-1"), false},
		{"other cmid", direct(u1, u2, "next", "cm-2"), false},
		{"no cmid", direct(u1, u2, "hello", ""), false},
		{"no cmid again", direct(u1, u2, "hello", ""), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			appendAll(t, s, tc.msg)
			if tc.msg.Dup != tc.dup {
				t.Fatalf("Dup %v, want %v", tc.msg.Dup, tc.dup)
			}
			if tc.dup {
				sameMsg(t, "duplicate", tc.msg, &origCopy)
			} else if tc.msg.ID == origCopy.ID {
				t.Errorf("new message got the original's id %d", tc.msg.ID)
			}
		})
	}

	// The duplicates stored nothing: d12 holds the original, the reply,
	// next and the two cmid-less messages; the other conversations nothing.
	got, err := s.Since(c, d12, 0, 100)
	must(t, "Since", err)
	wantSeqs(t, "d12", got, span(1, 5))
	if len(got) > 0 {
		sameMsg(t, "stored original", got[0], &origCopy)
	}
	for _, conv := range []string{clusterchat.DirectConv(u1, u3), clusterchat.GroupConv(gid)} {
		got, err := s.Since(c, conv, 0, 100)
		must(t, "Since", err)
		wantSeqs(t, conv+" after duplicates only", got, nil)
	}
	if _, ok := convState(t, s, u3, clusterchat.DirectConv(u1, u3)); ok {
		t.Error("a duplicate made u3 a participant of a conversation without messages")
	}
}

func testAppendDedupInBatch(t *testing.T, s clusterchat.Store) {
	u1, u2 := mkUser(t, s, "u1"), mkUser(t, s, "u2")
	d12 := clusterchat.DirectConv(u1, u2)
	appendAll(t, s, direct(u1, u2, "earlier", "old"))

	batch := []*clusterchat.Message{
		direct(u1, u2, "first", "x"),
		direct(u1, u2, "first resent", "x"),
		direct(u2, u1, "other sender", "x"),
		direct(u1, u2, "old resent", "old"),
		direct(u1, u2, "second", "y"),
		direct(u1, u2, "first resent again", "x"),
	}
	appendAll(t, s, batch...)
	wantDup := []bool{false, true, false, true, false, true}
	wantSeq := []int64{2, 2, 3, 1, 4, 2}
	for i, m := range batch {
		if m.Dup != wantDup[i] || m.Seq != wantSeq[i] {
			t.Errorf("batch[%d] %q: Dup %v Seq %d, want %v %d", i, m.Body, m.Dup, m.Seq, wantDup[i], wantSeq[i])
		}
	}
	sameMsg(t, "in-batch duplicate", batch[1], batch[0])
	sameMsg(t, "in-batch duplicate", batch[5], batch[0])
	if batch[3].Body != "earlier" {
		t.Errorf("duplicate of a stored message: Body %q, want the original's", batch[3].Body)
	}
	got, err := s.Since(ctx(t), d12, 0, 100)
	must(t, "Since", err)
	wantSeqs(t, "stored", got, span(1, 4))
}

func testAppendMixedBatch(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1, u2, u3 := mkUser(t, s, "u1"), mkUser(t, s, "u2"), mkUser(t, s, "u3")
	g1, g2 := mkGroup(t, s, u1, "g1"), mkGroup(t, s, u2, "g2")
	batch := []*clusterchat.Message{
		group(u1, g1, "1", "a"), direct(u1, u2, "2", "b"), group(u2, g2, "3", "c"),
		direct(u3, u2, "4", ""), group(u1, g1, "5", ""), direct(u2, u1, "6", "d"),
		group(u1, g1, "7", "a"), // duplicate of the first
		direct(u2, u3, "8", ""),
	}
	appendAll(t, s, batch...)
	want := []struct {
		conv string
		seq  int64
	}{
		{clusterchat.GroupConv(g1), 1}, {clusterchat.DirectConv(u1, u2), 1}, {clusterchat.GroupConv(g2), 1},
		{clusterchat.DirectConv(u2, u3), 1}, {clusterchat.GroupConv(g1), 2}, {clusterchat.DirectConv(u1, u2), 2},
		{clusterchat.GroupConv(g1), 1}, {clusterchat.DirectConv(u2, u3), 2},
	}
	for i, m := range batch {
		if m.Conv != want[i].conv || m.Seq != want[i].seq {
			t.Errorf("batch[%d]: %s seq %d, want %s seq %d", i, m.Conv, m.Seq, want[i].conv, want[i].seq)
		}
	}
	// Every 1:1 conversation of the batch now has both participants.
	for _, p := range [][2]int64{{u1, u2}, {u2, u3}} {
		conv := clusterchat.DirectConv(p[0], p[1])
		for _, u := range p {
			if _, ok := convState(t, s, u, conv); !ok {
				t.Errorf("user %d is not a participant of %s", u, conv)
			}
		}
	}
	got, err := s.Since(c, clusterchat.GroupConv(g1), 0, 100)
	must(t, "Since", err)
	wantSeqs(t, "g1", got, []int64{1, 2})
	if len(got) == 2 && (got[0].Body != "1" || got[1].Body != "5") {
		t.Errorf("g1 bodies %q %q, want 1 5", got[0].Body, got[1].Body)
	}
}

func testSinceBefore(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1, u2 := mkUser(t, s, "u1"), mkUser(t, s, "u2")
	conv := clusterchat.DirectConv(u1, u2)
	for i := 1; i <= 10; i++ {
		appendAll(t, s, direct(u1, u2, strconv.Itoa(i), ""))
	}
	// Messages of another conversation must never show up.
	gid := mkGroup(t, s, u1, "g")
	appendAll(t, s, group(u1, gid, "other", ""), direct(u2, u1, "11", ""))

	tests := []struct {
		name   string
		before bool
		seq    int64
		limit  int
		want   []int64
	}{
		{"since start", false, 0, 100, span(1, 11)},
		{"since page 1", false, 0, 3, []int64{1, 2, 3}},
		{"since page 2", false, 3, 3, []int64{4, 5, 6}},
		{"since last page", false, 9, 3, []int64{10, 11}},
		{"since end", false, 11, 3, nil},
		{"since past end", false, 50, 3, nil},
		{"before end", true, 0, 3, []int64{9, 10, 11}},
		{"before negative", true, -1, 2, []int64{10, 11}},
		{"before 9", true, 9, 3, []int64{6, 7, 8}},
		{"before 3", true, 3, 5, []int64{1, 2}},
		{"before 1", true, 1, 5, nil},
		{"before past end", true, 50, 2, []int64{10, 11}},
		{"before all", true, 0, 100, span(1, 11)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []*clusterchat.Message
			var err error
			if tc.before {
				got, err = s.Before(c, conv, tc.seq, tc.limit)
			} else {
				got, err = s.Since(c, conv, tc.seq, tc.limit)
			}
			must(t, "page", err)
			wantSeqs(t, tc.name, got, tc.want)
			for _, m := range got {
				if m.Conv != conv || m.Body != strconv.FormatInt(m.Seq, 10) {
					t.Errorf("message %+v does not belong at %s seq %d", *m, conv, m.Seq)
				}
			}
		})
	}
	for _, conv := range []string{"d:98:99", "g:999"} {
		got, err := s.Since(c, conv, 0, 10)
		must(t, "Since unknown conv", err)
		wantSeqs(t, "Since "+conv, got, nil)
		got, err = s.Before(c, conv, 0, 10)
		must(t, "Before unknown conv", err)
		wantSeqs(t, "Before "+conv, got, nil)
	}
}

func testConvs(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1, u2, u3, u4 := mkUser(t, s, "u1"), mkUser(t, s, "u2"), mkUser(t, s, "u3"), mkUser(t, s, "u4")
	g1 := mkGroup(t, s, u1, "g1")
	g2 := mkGroup(t, s, u2, "g2")
	_, err := s.JoinGroup(c, g2, u1)
	must(t, "JoinGroup", err)
	must(t, "AddFriend", s.AddFriend(c, u1, u4)) // friends without messages: no conversation
	appendAll(t, s, direct(u1, u2, "a", ""), direct(u2, u1, "b", ""), direct(u3, u1, "c", ""),
		group(u2, g2, "d", ""), direct(u2, u1, "e", ""))
	d12, d13 := clusterchat.DirectConv(u1, u2), clusterchat.DirectConv(u1, u3)
	must(t, "MarkRead", s.MarkRead(c, []clusterchat.Cursor{{User: u1, Conv: d12, Seq: 1}}))
	must(t, "MarkDelivered", s.MarkDelivered(c, []clusterchat.Cursor{{User: u1, Conv: d12, Seq: 2}, {User: u1, Conv: clusterchat.GroupConv(g2), Seq: 1}}))

	want := []clusterchat.ConvState{
		{Conv: d12, LastSeq: 3, Delivered: 2, Read: 1},
		{Conv: d13, LastSeq: 1},
		{Conv: clusterchat.GroupConv(g1)},
		{Conv: clusterchat.GroupConv(g2), LastSeq: 1, Delivered: 1},
	}
	sort.Slice(want, func(i, j int) bool { return want[i].Conv < want[j].Conv })
	tests := []struct {
		uid  int64
		want []clusterchat.ConvState
	}{
		{u1, want},
		{u3, []clusterchat.ConvState{{Conv: d13, LastSeq: 1, Read: 1}}}, // read its own message
		{u4, nil},
		{999, nil},
	}
	for _, tc := range tests {
		got, err := s.Convs(c, tc.uid)
		must(t, "Convs", err)
		if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("Convs(%d):\n got %+v\nwant %+v", tc.uid, got, tc.want)
		}
	}
	// LastSeq reads one conversation: the same LastSeq as Convs, 0 for a
	// conversation without messages or none at all.
	lastTests := []struct {
		conv string
		want int64
	}{
		{d12, 3},
		{d13, 1},
		{clusterchat.GroupConv(g1), 0},
		{clusterchat.GroupConv(g2), 1},
		{clusterchat.DirectConv(u1, u4), 0},
		{"nope", 0},
	}
	for _, tc := range lastTests {
		got, err := s.LastSeq(c, tc.conv)
		must(t, "LastSeq", err)
		if got != tc.want {
			t.Errorf("LastSeq(%q) = %d, want %d", tc.conv, got, tc.want)
		}
	}
}

func testUndelivered(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1, u2, u3 := mkUser(t, s, "u1"), mkUser(t, s, "u2"), mkUser(t, s, "u3")
	gid := mkGroup(t, s, u2, "g")
	_, err := s.JoinGroup(c, gid, u1)
	must(t, "JoinGroup", err)
	d12, d13, g := clusterchat.DirectConv(u1, u2), clusterchat.DirectConv(u1, u3), clusterchat.GroupConv(gid)

	var sent []*clusterchat.Message
	for i := 0; i < 3; i++ {
		b := []*clusterchat.Message{
			direct(u2, u1, "d12", ""), group(u2, gid, "g", ""), direct(u1, u3, "mine", ""),
			direct(u3, u1, "d13", ""), group(u1, gid, "mine", ""),
		}
		appendAll(t, s, b...)
		sent = append(sent, b...)
	}
	var toU1 []*clusterchat.Message
	for _, m := range sent {
		if m.From != u1 {
			toU1 = append(toU1, m)
		}
	}
	ids := func(ms []*clusterchat.Message) []int64 {
		out := []int64{}
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	check := func(what string, limit int, want []*clusterchat.Message) {
		t.Helper()
		got, err := s.Undelivered(c, u1, limit)
		must(t, "Undelivered", err)
		if !slices.Equal(ids(got), ids(want)) {
			t.Errorf("%s: ids %v, want %v", what, ids(got), ids(want))
		}
		for i := range min(len(got), len(want)) {
			sameMsg(t, what, got[i], want[i])
		}
	}
	check("all, by id, none of u1's own", 100, toU1)
	check("limited", 4, toU1[:4])
	check("cursors did not move", 100, toU1)

	must(t, "MarkDelivered", s.MarkDelivered(c, []clusterchat.Cursor{{User: u1, Conv: d12, Seq: 2}, {User: u1, Conv: g, Seq: 5}}))
	var rest []*clusterchat.Message
	for _, m := range toU1 {
		if (m.Conv == d12 && m.Seq <= 2) || (m.Conv == g && m.Seq <= 5) {
			continue
		}
		rest = append(rest, m)
	}
	check("above the delivered cursors", 100, rest)
	must(t, "MarkRead", s.MarkRead(c, []clusterchat.Cursor{{User: u1, Conv: d13, Seq: 6}}))
	rest = slices.DeleteFunc(rest, func(m *clusterchat.Message) bool { return m.Conv == d13 })
	check("read counts as delivered", 100, rest)

	got, err := s.Undelivered(c, 999, 100)
	must(t, "Undelivered unknown user", err)
	if len(got) != 0 {
		t.Errorf("Undelivered(999) = %d messages", len(got))
	}
}

func testMarkCursors(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1, u2, u3 := mkUser(t, s, "u1"), mkUser(t, s, "u2"), mkUser(t, s, "u3")
	gid := mkGroup(t, s, u1, "g")
	d12, g := clusterchat.DirectConv(u1, u2), clusterchat.GroupConv(gid)
	for i := 0; i < 10; i++ {
		appendAll(t, s, direct(u2, u1, "x", ""), group(u1, gid, "y", ""))
	}
	type state struct{ delivered, read int64 }
	steps := []struct {
		name   string
		read   bool
		seq    int64
		d12    state
		others []clusterchat.Cursor // applied in the same call, must be ignored
	}{
		{"deliver 5", false, 5, state{5, 0}, nil},
		{"deliver 3 keeps 5", false, 3, state{5, 0}, nil},
		{"read 2 keeps delivered", true, 2, state{5, 2}, nil},
		{"read 7 raises delivered", true, 7, state{7, 7}, nil},
		{"read 4 keeps 7", true, 4, state{7, 7}, nil},
		{"deliver 6 keeps 7", false, 6, state{7, 7}, nil},
		{"deliver 9 leaves read", false, 9, state{9, 7}, nil},
		{"foreign convs ignored", false, 10, state{10, 7}, []clusterchat.Cursor{
			{User: u3, Conv: d12, Seq: 10}, {User: u3, Conv: g, Seq: 10}, {User: u2, Conv: g, Seq: 10},
			{User: u1, Conv: "d:98:99", Seq: 3}, {User: 999, Conv: d12, Seq: 3},
		}},
		{"foreign convs ignored on read", true, 8, state{10, 8}, []clusterchat.Cursor{
			{User: u3, Conv: d12, Seq: 10}, {User: u2, Conv: g, Seq: 10}, {User: u1, Conv: "g:999", Seq: 3},
		}},
	}
	for _, st := range steps {
		cursors := append([]clusterchat.Cursor{{User: u1, Conv: d12, Seq: st.seq}}, st.others...)
		var err error
		if st.read {
			err = s.MarkRead(c, cursors)
		} else {
			err = s.MarkDelivered(c, cursors)
		}
		must(t, st.name, err)
		cs, _ := convState(t, s, u1, d12)
		if cs != (clusterchat.ConvState{Conv: d12, LastSeq: 10, Delivered: st.d12.delivered, Read: st.d12.read}) {
			t.Errorf("%s: state %+v, want delivered %d read %d", st.name, cs, st.d12.delivered, st.d12.read)
		}
	}
	// The receiver's marks did not move the sender's cursors (its read
	// cursor is at its own last message since it sent it).
	if cs, _ := convState(t, s, u2, d12); cs != (clusterchat.ConvState{Conv: d12, LastSeq: 10, Read: 10}) {
		t.Errorf("u2's state moved: %+v", cs)
	}
	for _, u := range []int64{u2, u3} {
		cs, err := s.Convs(c, u)
		must(t, "Convs", err)
		for _, x := range cs {
			if x.Conv == g || (u == u3 && x.Conv == d12) {
				t.Errorf("user %d became part of %s by a cursor: %+v", u, x.Conv, x)
			}
		}
	}
	must(t, "MarkDelivered(nil)", s.MarkDelivered(c, nil))
	must(t, "MarkRead(nil)", s.MarkRead(c, nil))
}

// testAppendMovesSenderCursor checks that Append moves each sender's read
// cursor to its own last message, in batches of one and of several, with a
// 1:1 conversation's first message and after it, never lowering it, never
// moving a delivered cursor (a message still on its way to the sender must
// not count as delivered because the sender wrote one after it), and never
// making a cursor row for a sender that is not part of the conversation.
func testAppendMovesSenderCursor(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1, u2, u3, u4 := mkUser(t, s, "u1"), mkUser(t, s, "u2"), mkUser(t, s, "u3"), mkUser(t, s, "u4")
	gid := mkGroup(t, s, u1, "g")
	_, err := s.JoinGroup(c, gid, u2)
	must(t, "JoinGroup", err)
	d12, d34, g := clusterchat.DirectConv(u1, u2), clusterchat.DirectConv(u3, u4), clusterchat.GroupConv(gid)

	type want struct {
		uid                   int64
		conv                  string
		last, delivered, read int64
	}
	steps := []struct {
		name  string
		batch []*clusterchat.Message
		mark  []clusterchat.Cursor // MarkRead before the batch
		want  []want
	}{
		{"first 1:1 message alone", []*clusterchat.Message{direct(u1, u2, "a", "")}, nil,
			[]want{{u1, d12, 1, 0, 1}, {u2, d12, 1, 0, 0}}},
		{"first 1:1 messages of both in one batch", []*clusterchat.Message{direct(u3, u4, "a", ""), direct(u4, u3, "b", ""), direct(u3, u4, "c", "")}, nil,
			[]want{{u3, d34, 3, 0, 3}, {u4, d34, 3, 0, 2}}},
		{"later 1:1 message alone", []*clusterchat.Message{direct(u2, u1, "b", "")}, nil,
			[]want{{u1, d12, 2, 0, 1}, {u2, d12, 2, 0, 2}}},
		{"batch over conversations", []*clusterchat.Message{direct(u1, u2, "c", ""), group(u2, gid, "x", ""), direct(u1, u2, "d", ""), group(u1, gid, "y", "")}, nil,
			[]want{{u1, d12, 4, 0, 4}, {u2, d12, 4, 0, 2}, {u1, g, 2, 0, 2}, {u2, g, 2, 0, 1}}},
		{"never lowers a cursor", []*clusterchat.Message{direct(u1, u2, "e", "")}, []clusterchat.Cursor{{User: u1, Conv: d12, Seq: 9}},
			[]want{{u1, d12, 5, 9, 9}, {u2, d12, 5, 0, 2}}},
		// The store does not check membership (the server does): a message
		// from a non-member must still not make it part of the group.
		{"sender not a member", []*clusterchat.Message{group(u3, gid, "z", "")}, nil,
			[]want{{u1, g, 3, 0, 2}, {u2, g, 3, 0, 1}}},
	}
	for _, st := range steps {
		must(t, st.name+": MarkRead", s.MarkRead(c, st.mark))
		appendAll(t, s, st.batch...)
		for _, w := range st.want {
			cs, ok := convState(t, s, w.uid, w.conv)
			if got := (clusterchat.ConvState{Conv: w.conv, LastSeq: w.last, Delivered: w.delivered, Read: w.read}); !ok || cs != got {
				t.Errorf("%s: user %d's state %+v (listed %v), want %+v", st.name, w.uid, cs, ok, got)
			}
		}
	}
	if _, ok := convState(t, s, u3, g); ok {
		t.Errorf("a non-member's message made it part of %s", g)
	}
}

func testTokens(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1, u2 := mkUser(t, s, "u1"), mkUser(t, s, "u2")
	now := time.Now()
	must(t, "PutToken", s.PutToken(c, "h1", u1, now.Add(time.Hour)))
	must(t, "PutToken", s.PutToken(c, "h2", u2, now.Add(24*time.Hour)))
	must(t, "PutToken", s.PutToken(c, "old", u1, now.Add(-time.Second)))
	tests := []struct {
		hash string
		uid  int64
		code int
	}{
		{"h1", u1, 0},
		{"h2", u2, 0},
		{"old", 0, clusterchat.EAUTH},
		{"nope", 0, clusterchat.EAUTH},
		{"", 0, clusterchat.EAUTH},
	}
	for _, tc := range tests {
		uid, err := s.TokenUser(c, tc.hash)
		wantCode(t, "TokenUser "+tc.hash, err, tc.code)
		if uid != tc.uid {
			t.Errorf("TokenUser(%q) = %d, want %d", tc.hash, uid, tc.uid)
		}
	}
}

func testPing(t *testing.T, s clusterchat.Store) {
	must(t, "Ping", s.Ping(ctx(t)))
}

func testConcurrentAppend(t *testing.T, s clusterchat.Store) {
	const workers, perWorker = 8, 25
	users := make([]int64, workers)
	for i := range users {
		users[i] = mkUser(t, s, "w"+strconv.Itoa(i))
	}
	gid := mkGroup(t, s, users[0], "g")
	g, d01 := clusterchat.GroupConv(gid), clusterchat.DirectConv(users[0], users[1])

	var (
		mu   sync.Mutex
		got  = map[string][]int64{}
		ids  = map[int64]bool{}
		errs []error
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				cm := fmt.Sprintf("w%d-%d", w, i)
				// Alternate single messages with batches that touch both
				// conversations, some carrying a cmid.
				var b []*clusterchat.Message
				if i%2 == 0 {
					b = []*clusterchat.Message{group(users[w], gid, cm, cm)}
				} else {
					b = []*clusterchat.Message{group(users[w], gid, cm, ""), direct(users[w%2], users[1-w%2], cm, cm), group(users[w], gid, cm, cm+"b")}
				}
				err := s.Append(context.Background(), b)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for _, m := range b {
					got[m.Conv] = append(got[m.Conv], m.Seq)
					if ids[m.ID] {
						errs = append(errs, fmt.Errorf("id %d assigned twice", m.ID))
					}
					ids[m.ID] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	odd := perWorker / 2
	want := map[string]int64{g: int64(workers * (perWorker - odd + 2*odd)), d01: int64(workers * odd)}
	for conv, n := range want {
		s := slices.Clone(got[conv])
		slices.Sort(s)
		if !slices.Equal(s, span(1, n)) {
			t.Errorf("%s: seqs assigned %v, want 1..%d exactly once", conv, s, n)
		}
	}
	for conv, n := range want {
		var all []*clusterchat.Message
		for after := int64(0); ; {
			page, err := s.Since(ctx(t), conv, after, clusterchat.MaxPageSize)
			must(t, "Since", err)
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			after = page[len(page)-1].Seq
		}
		wantSeqs(t, conv+" stored", all, span(1, n))
	}
}

// BenchmarkAppend measures Append with batches of 1, 10 and 100 small
// messages (half group, half 1:1, each with a cmid as native clients send),
// reporting msgs/s. open must return a fresh, empty store; the benchmark
// closes it.
func BenchmarkAppend(b *testing.B, open func(b *testing.B) clusterchat.Store) {
	for _, size := range []int{1, 10, 100} {
		b.Run("batch="+strconv.Itoa(size), func(b *testing.B) {
			s := open(b)
			defer func() {
				if err := s.Close(); err != nil {
					b.Errorf("Close: %v", err)
				}
			}()
			c := context.Background()
			var users []int64
			for i := range 4 {
				id, err := s.CreateUser(c, "bench"+strconv.Itoa(i), "x")
				must(b, "CreateUser", err)
				users = append(users, id)
			}
			gid, err := s.CreateGroup(c, users[0], "bench", "")
			must(b, "CreateGroup", err)
			for _, u := range users[1:] {
				_, err := s.JoinGroup(c, gid, u)
				must(b, "JoinGroup", err)
			}
			batch := make([]*clusterchat.Message, size)
			n := 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for i := range batch {
					n++
					from := users[n%len(users)]
					cm := "c" + strconv.Itoa(n)
					if n%2 == 0 {
						batch[i] = group(from, gid, "hello, this is a small message", cm)
					} else {
						batch[i] = direct(from, users[(n+1)%len(users)], "hello, this is a small message", cm)
					}
				}
				if err := s.Append(c, batch); err != nil {
					b.Fatalf("Append: %v", err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
