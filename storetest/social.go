package storetest

import (
	"fmt"
	"slices"
	"testing"

	"clusterchat"
)

// socialTests are the conformance tests of the social calls (issue 11).
var socialTests = []struct {
	name string
	fn   func(t *testing.T, s clusterchat.Store)
}{
	{"FriendRequests", testFriendRequests},
	{"Blocks", testBlocks},
	{"GroupSettings", testGroupSettings},
	{"GroupMembership", testGroupMembership},
	{"GroupPending", testGroupPending},
	{"DeleteGroup", testDeleteGroup},
	{"SearchRename", testSearchRename},
}

func friendsOf(t *testing.T, s clusterchat.Store, uid int64) []int64 {
	t.Helper()
	fs, err := s.Friends(ctx(t), uid)
	must(t, "Friends", err)
	var ids []int64
	for _, f := range fs {
		ids = append(ids, f.ID)
	}
	return ids
}

func testFriendRequests(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	a, b, d := mkUser(t, s, "a"), mkUser(t, s, "b"), mkUser(t, s, "d")

	friends, err := s.RequestFriend(c, a, b)
	must(t, "RequestFriend a b", err)
	if friends {
		t.Fatal("a first request made friends")
	}
	_, err = s.RequestFriend(c, a, b)
	wantCode(t, "RequestFriend again", err, clusterchat.EEXISTS)
	_, err = s.RequestFriend(c, a, a)
	wantCode(t, "RequestFriend self", err, clusterchat.EINVALID)
	_, err = s.RequestFriend(c, a, 999)
	wantCode(t, "RequestFriend missing", err, clusterchat.ENOTFOUND)
	must(t, "RequestFriend d b", func() error { _, err := s.RequestFriend(c, d, b); return err }())

	reqs, err := s.FriendRequests(c, b)
	must(t, "FriendRequests", err)
	if len(reqs) != 2 || reqs[0].From != a || reqs[0].To != b || reqs[0].FromName != "a" || reqs[0].ToName != "b" ||
		reqs[1].From != d || reqs[0].Time.IsZero() {
		t.Fatalf("FriendRequests(b) = %+v", reqs)
	}
	if reqs, _ := s.FriendRequests(c, a); len(reqs) != 1 || reqs[0].To != b {
		t.Fatalf("FriendRequests(a) = %+v", reqs)
	}
	if ok, _ := s.AreFriends(c, a, b); ok {
		t.Fatal("friends before consent")
	}

	// A request to someone who asked you is an accept.
	friends, err = s.RequestFriend(c, b, a)
	must(t, "RequestFriend b a", err)
	if !friends {
		t.Fatal("crossing requests did not make friends")
	}
	if got := friendsOf(t, s, a); !slices.Equal(got, []int64{b}) {
		t.Fatalf("Friends(a) = %v", got)
	}
	_, err = s.RequestFriend(c, a, b)
	wantCode(t, "RequestFriend friends", err, clusterchat.EEXISTS)

	must(t, "AcceptFriend", s.AcceptFriend(c, b, d))
	wantCode(t, "AcceptFriend again", s.AcceptFriend(c, b, d), clusterchat.ENOTFOUND)
	if ok, _ := s.AreFriends(c, d, b); !ok {
		t.Fatal("AcceptFriend: not friends")
	}
	if reqs, _ := s.FriendRequests(c, b); len(reqs) != 0 {
		t.Fatalf("requests left after accepting: %+v", reqs)
	}

	// Decline and cancel.
	must(t, "RequestFriend a d", func() error { _, err := s.RequestFriend(c, a, d); return err }())
	must(t, "decline", s.DeleteFriendRequest(c, a, d))
	wantCode(t, "decline again", s.DeleteFriendRequest(c, a, d), clusterchat.ENOTFOUND)
	if ok, _ := s.AreFriends(c, a, d); ok {
		t.Fatal("declined request made friends")
	}

	must(t, "RemoveFriend", s.RemoveFriend(c, b, a))
	wantCode(t, "RemoveFriend again", s.RemoveFriend(c, a, b), clusterchat.ENOTFOUND)
	if got := friendsOf(t, s, a); len(got) != 0 {
		t.Fatalf("Friends(a) after remove = %v", got)
	}
	if got := friendsOf(t, s, b); !slices.Equal(got, []int64{d}) {
		t.Fatalf("Friends(b) after remove = %v", got)
	}
}

func testBlocks(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	a, b, d := mkUser(t, s, "a"), mkUser(t, s, "b"), mkUser(t, s, "d")
	must(t, "AddFriend", s.AddFriend(c, a, b))
	must(t, "RequestFriend d a", func() error { _, err := s.RequestFriend(c, d, a); return err }())

	must(t, "Block a b", s.Block(c, a, b))
	must(t, "Block a d", s.Block(c, a, d))
	wantCode(t, "Block again", s.Block(c, a, b), clusterchat.EEXISTS)
	wantCode(t, "Block self", s.Block(c, a, a), clusterchat.EINVALID)
	wantCode(t, "Block missing", s.Block(c, a, 999), clusterchat.ENOTFOUND)

	if ok, _ := s.AreFriends(c, a, b); ok {
		t.Fatal("Block kept the friendship")
	}
	if reqs, _ := s.FriendRequests(c, a); len(reqs) != 0 {
		t.Fatalf("Block kept the request: %+v", reqs)
	}
	for _, tc := range []struct {
		blocker, target int64
		want            bool
	}{{a, b, true}, {b, a, false}, {a, d, true}, {d, b, false}} {
		got, err := s.IsBlocked(c, tc.blocker, tc.target)
		must(t, "IsBlocked", err)
		if got != tc.want {
			t.Errorf("IsBlocked(%d, %d) = %v", tc.blocker, tc.target, got)
		}
	}
	bl, err := s.Blocked(c, a)
	must(t, "Blocked", err)
	if !slices.Equal(bl, []clusterchat.User{{ID: b, Name: "b"}, {ID: d, Name: "d"}}) {
		t.Fatalf("Blocked(a) = %+v", bl)
	}
	// Neither side may ask while a block stands.
	for _, pair := range [][2]int64{{b, a}, {a, b}} {
		_, err := s.RequestFriend(c, pair[0], pair[1])
		wantCode(t, fmt.Sprintf("RequestFriend %v blocked", pair), err, clusterchat.EFORBIDDEN)
	}
	must(t, "Unblock", s.Unblock(c, a, b))
	wantCode(t, "Unblock again", s.Unblock(c, a, b), clusterchat.ENOTFOUND)
	if ok, _ := s.IsBlocked(c, a, b); ok {
		t.Fatal("still blocked after Unblock")
	}
	if _, err := s.RequestFriend(c, b, a); err != nil {
		t.Fatalf("RequestFriend after unblock: %v", err)
	}
}

func testGroupSettings(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1 := mkUser(t, s, "u1")
	pub := mkGroup(t, s, u1, "pub")
	priv, err := s.NewGroup(c, u1, clusterchat.Group{Name: "priv", Desc: "secret", Private: true, History: clusterchat.HistoryAll})
	must(t, "NewGroup", err)
	_, err = s.NewGroup(c, u1, clusterchat.Group{Name: "pub"})
	wantCode(t, "NewGroup taken", err, clusterchat.EEXISTS)

	for _, tc := range []struct {
		gid     int64
		private bool
		history string
	}{{pub, false, clusterchat.HistoryJoined}, {priv, true, clusterchat.HistoryAll}} {
		g, err := s.Group(c, tc.gid)
		must(t, "Group", err)
		if g.Private != tc.private || g.History != tc.history {
			t.Errorf("Group(%d): private %v history %q, want %v %q", tc.gid, g.Private, g.History, tc.private, tc.history)
		}
	}
	must(t, "UpdateGroup", s.UpdateGroup(c, clusterchat.Group{ID: pub, Name: "renamed", Desc: "new", Private: true, History: clusterchat.HistoryAll}))
	wantCode(t, "UpdateGroup taken", s.UpdateGroup(c, clusterchat.Group{ID: pub, Name: "priv"}), clusterchat.EEXISTS)
	wantCode(t, "UpdateGroup missing", s.UpdateGroup(c, clusterchat.Group{ID: 999, Name: "x"}), clusterchat.ENOTFOUND)
	gs, err := s.UserGroups(c, u1)
	must(t, "UserGroups", err)
	if len(gs) != 2 || gs[0].Name != "renamed" || gs[0].Desc != "new" || !gs[0].Private || gs[0].History != clusterchat.HistoryAll {
		t.Fatalf("UserGroups after update = %+v", gs)
	}
	// The old name is free again.
	mkGroup(t, s, u1, "pub")
}

func testGroupMembership(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1, u2, u3 := mkUser(t, s, "u1"), mkUser(t, s, "u2"), mkUser(t, s, "u3")
	gid := mkGroup(t, s, u1, "g")
	conv := clusterchat.GroupConv(gid)
	appendAll(t, s, group(u1, gid, "one", ""), group(u1, gid, "two", ""))
	_, err := s.JoinGroup(c, gid, u2)
	must(t, "JoinGroup", err)
	appendAll(t, s, group(u1, gid, "three", ""))

	access := func(uid int64) clusterchat.Access {
		t.Helper()
		a, err := s.Access(c, gid, uid)
		must(t, "Access", err)
		return a
	}
	if a := access(u2); a != (clusterchat.Access{Role: clusterchat.RoleNormal, After: 2}) {
		t.Fatalf("Access(u2) = %+v, want joined at 2", a)
	}
	if a := access(u1); a != (clusterchat.Access{Role: clusterchat.RoleCreator}) {
		t.Fatalf("Access(creator) = %+v", a)
	}
	if a := access(u3); !a.ReadsNothing() {
		t.Fatalf("Access(stranger) = %+v", a)
	}
	_, err = s.Access(c, 999, u1)
	wantCode(t, "Access missing group", err, clusterchat.ENOTFOUND)

	must(t, "SetRole", s.SetRole(c, gid, u2, clusterchat.RoleAdmin))
	wantCode(t, "SetRole stranger", s.SetRole(c, gid, u3, clusterchat.RoleAdmin), clusterchat.ENOTFOUND)
	if r, _ := s.Role(c, gid, u2); r != clusterchat.RoleAdmin {
		t.Fatalf("Role after SetRole = %q", r)
	}

	must(t, "LeaveGroup", s.LeaveGroup(c, gid, u2))
	wantCode(t, "LeaveGroup again", s.LeaveGroup(c, gid, u2), clusterchat.ENOTFOUND)
	appendAll(t, s, group(u1, gid, "four", ""))
	if a := access(u2); a != (clusterchat.Access{Former: true, After: 2, Until: 3}) {
		t.Fatalf("Access(departed) = %+v, want (2, 3]", a)
	}
	if r, _ := s.Role(c, gid, u2); r != "" {
		t.Fatalf("Role after leaving = %q", r)
	}
	if _, ok := convState(t, s, u2, conv); ok {
		t.Fatal("a departed member still has the group's conversation")
	}
	if msgs, _ := s.Undelivered(c, u2, 10); len(msgs) != 0 {
		t.Fatalf("Undelivered to a departed member: %d messages", len(msgs))
	}
	g, err := s.Group(c, gid)
	must(t, "Group", err)
	if len(g.Members) != 1 {
		t.Fatalf("members after leave: %+v", g.Members)
	}
	// HistoryAll opens everything before the join (a former member still
	// reads nothing after leaving).
	must(t, "UpdateGroup", s.UpdateGroup(c, clusterchat.Group{ID: gid, Name: "g", History: clusterchat.HistoryAll}))
	if a := access(u2); a != (clusterchat.Access{Former: true, After: 0, Until: 3}) {
		t.Fatalf("Access(departed, history all) = %+v", a)
	}
	// Joining again makes a member again, from the new join on.
	must(t, "UpdateGroup", s.UpdateGroup(c, clusterchat.Group{ID: gid, Name: "g"}))
	_, err = s.JoinGroup(c, gid, u2)
	must(t, "JoinGroup again", err)
	if a := access(u2); a != (clusterchat.Access{Role: clusterchat.RoleNormal, After: 4}) {
		t.Fatalf("Access(rejoined) = %+v", a)
	}

	for _, tc := range []struct {
		a             clusterchat.Access
		after, before int64
		wantA, wantB  int64
		wantOK        bool
	}{
		{clusterchat.Access{Role: "normal", After: 4}, 0, 0, 4, 0, true},
		{clusterchat.Access{Role: "normal", After: 4}, 6, 0, 6, 0, true},
		{clusterchat.Access{Role: "normal", After: 4}, 0, 5, 4, 5, false},
		{clusterchat.Access{Role: "normal", After: 4}, 0, 7, 4, 7, true},
		{clusterchat.Access{Former: true, After: 2, Until: 3}, 0, 0, 2, 4, true},
		{clusterchat.Access{Former: true, After: 2, Until: 3}, 3, 0, 3, 4, false},
		{clusterchat.Access{Former: true, After: 2, Until: 3}, 0, 9, 2, 4, true},
	} {
		a, b, ok := tc.a.Clamp(tc.after, tc.before)
		if a != tc.wantA || b != tc.wantB || ok != tc.wantOK {
			t.Errorf("%+v.Clamp(%d, %d) = %d %d %v, want %d %d %v", tc.a, tc.after, tc.before, a, b, ok, tc.wantA, tc.wantB, tc.wantOK)
		}
	}
}

func testGroupPending(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1, u2, u3 := mkUser(t, s, "u1"), mkUser(t, s, "u2"), mkUser(t, s, "u3")
	gid, err := s.NewGroup(c, u1, clusterchat.Group{Name: "g", Private: true})
	must(t, "NewGroup", err)
	must(t, "invite", s.AddPending(c, clusterchat.Pending{GroupID: gid, UserID: u2, Kind: clusterchat.PendingInvite, By: u1}))
	must(t, "request", s.AddPending(c, clusterchat.Pending{GroupID: gid, UserID: u3, Kind: clusterchat.PendingRequest, By: u3}))
	wantCode(t, "pending again", s.AddPending(c, clusterchat.Pending{GroupID: gid, UserID: u2, Kind: clusterchat.PendingRequest, By: u2}), clusterchat.EEXISTS)
	wantCode(t, "pending member", s.AddPending(c, clusterchat.Pending{GroupID: gid, UserID: u1, Kind: clusterchat.PendingInvite, By: u1}), clusterchat.EEXISTS)
	wantCode(t, "pending missing group", s.AddPending(c, clusterchat.Pending{GroupID: 999, UserID: u2, Kind: clusterchat.PendingInvite, By: u1}), clusterchat.ENOTFOUND)
	wantCode(t, "pending missing user", s.AddPending(c, clusterchat.Pending{GroupID: gid, UserID: 999, Kind: clusterchat.PendingInvite, By: u1}), clusterchat.ENOTFOUND)

	ps, err := s.GroupPending(c, gid)
	must(t, "GroupPending", err)
	if len(ps) != 2 || ps[0].UserID != u2 || ps[0].Kind != clusterchat.PendingInvite || ps[0].By != u1 || ps[0].UserName != "u2" ||
		ps[0].GroupName != "g" || ps[1].UserID != u3 || ps[1].Kind != clusterchat.PendingRequest || ps[1].Time.IsZero() {
		t.Fatalf("GroupPending = %+v", ps)
	}
	ps, err = s.UserPending(c, u2)
	must(t, "UserPending", err)
	if len(ps) != 1 || ps[0].GroupID != gid || ps[0].Kind != clusterchat.PendingInvite {
		t.Fatalf("UserPending(u2) = %+v", ps)
	}
	// Joining consumes the invitation.
	_, err = s.JoinGroup(c, gid, u2)
	must(t, "JoinGroup", err)
	if ps, _ := s.UserPending(c, u2); len(ps) != 0 {
		t.Fatalf("invitation left after joining: %+v", ps)
	}
	must(t, "DeletePending", s.DeletePending(c, gid, u3))
	wantCode(t, "DeletePending again", s.DeletePending(c, gid, u3), clusterchat.ENOTFOUND)
	if ps, _ := s.GroupPending(c, gid); len(ps) != 0 {
		t.Fatalf("GroupPending after all = %+v", ps)
	}
}

func testDeleteGroup(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1, u2, u3 := mkUser(t, s, "u1"), mkUser(t, s, "u2"), mkUser(t, s, "u3")
	gid := mkGroup(t, s, u1, "g")
	_, err := s.JoinGroup(c, gid, u2)
	must(t, "JoinGroup", err)
	must(t, "invite", s.AddPending(c, clusterchat.Pending{GroupID: gid, UserID: u3, Kind: clusterchat.PendingInvite, By: u1}))
	appendAll(t, s, group(u1, gid, "hi", ""))
	must(t, "DeleteGroup", s.DeleteGroup(c, gid))
	wantCode(t, "DeleteGroup again", s.DeleteGroup(c, gid), clusterchat.ENOTFOUND)
	_, err = s.Group(c, gid)
	wantCode(t, "Group deleted", err, clusterchat.ENOTFOUND)
	_, err = s.Access(c, gid, u2)
	wantCode(t, "Access deleted", err, clusterchat.ENOTFOUND)
	for _, u := range []int64{u1, u2} {
		if gs, _ := s.UserGroups(c, u); len(gs) != 0 {
			t.Errorf("UserGroups(%d) after delete = %+v", u, gs)
		}
		if _, ok := convState(t, s, u, clusterchat.GroupConv(gid)); ok {
			t.Errorf("user %d keeps the deleted group's conversation", u)
		}
	}
	if ps, _ := s.UserPending(c, u3); len(ps) != 0 {
		t.Errorf("invitation left after delete: %+v", ps)
	}
	// The name is free and the id is not reused.
	if g2 := mkGroup(t, s, u1, "g"); g2 <= gid {
		t.Errorf("new group id %d after deleting %d", g2, gid)
	}
}

func testSearchRename(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	for _, n := range []string{"bob", "alice", "albert", "al", "Alan", "zed", "alí"} {
		mkUser(t, s, n)
	}
	names := func(us []clusterchat.User) []string {
		var out []string
		for _, u := range us {
			if u.PassHash != "" {
				t.Errorf("SearchUsers leaks a password hash")
			}
			out = append(out, u.Name)
		}
		return out
	}
	for _, tc := range []struct {
		prefix, after string
		limit         int
		want          []string
	}{
		{"al", "", 10, []string{"al", "albert", "alice", "alí"}},
		{"al", "", 2, []string{"al", "albert"}},
		{"al", "albert", 2, []string{"alice", "alí"}},
		{"al", "alí", 2, nil},
		{"A", "", 10, []string{"Alan"}},
		{"", "", 3, []string{"Alan", "al", "albert"}},
		{"q", "", 10, nil},
	} {
		got, err := s.SearchUsers(c, tc.prefix, tc.after, tc.limit)
		must(t, "SearchUsers", err)
		if g := names(got); !slices.Equal(g, tc.want) {
			t.Errorf("SearchUsers(%q, %q, %d) = %q, want %q", tc.prefix, tc.after, tc.limit, g, tc.want)
		}
	}

	must(t, "SetUserName", s.SetUserName(c, 1, "robert"))
	wantCode(t, "SetUserName taken", s.SetUserName(c, 1, "alice"), clusterchat.EEXISTS)
	wantCode(t, "SetUserName missing", s.SetUserName(c, 999, "x"), clusterchat.ENOTFOUND)
	u, err := s.User(c, 1)
	must(t, "User", err)
	if u.Name != "robert" {
		t.Fatalf("name after rename = %q", u.Name)
	}
	if got, _ := s.SearchUsers(c, "bob", "", 5); len(got) != 0 {
		t.Fatalf("old name still found: %+v", got)
	}
	mkUser(t, s, "bob") // the old name is free
}
