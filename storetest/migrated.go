package storetest

import (
	"testing"

	"clusterchat"
)

// CheckMigrated checks a store opened on a database written by the schema
// before the social calls (issue 11), holding what every store's test
// writes in its old format:
//
//	users 1 alice, 2 bob, 3 carol (hashes "ha", "hb", "hc"); alice and bob friends;
//	group 1 "g" ("desc"), creator alice, bob a normal member;
//	g:1 seq 1 from alice "hi", seq 2 from bob "yo" (message ids 1, 2);
//	d:1:2 seq 1 from alice "dm" (message id 3);
//	cursors: alice g:1 and d:1:2 at 0; bob g:1 delivered 1, d:1:2 at 0.
//
// Nothing may be lost, old members keep reading the whole history, the
// group is public, and the new calls work on the old rows.
func CheckMigrated(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	for id, name := range map[int64]string{1: "alice", 2: "bob", 3: "carol"} {
		u, err := s.User(c, id)
		must(t, "User", err)
		if u.Name != name || u.PassHash != "h"+name[:1] {
			t.Errorf("User(%d) = %+v", id, u)
		}
	}
	if got := friendsOf(t, s, 1); len(got) != 1 || got[0] != 2 {
		t.Errorf("Friends(alice) = %v", got)
	}
	g, err := s.Group(c, 1)
	must(t, "Group", err)
	if g.Name != "g" || g.Desc != "desc" || g.Private || g.History != clusterchat.HistoryJoined || len(g.Members) != 2 ||
		g.Members[0] != (clusterchat.Member{UserID: 1, Name: "alice", Role: clusterchat.RoleCreator}) ||
		g.Members[1] != (clusterchat.Member{UserID: 2, Name: "bob", Role: clusterchat.RoleNormal}) {
		t.Errorf("Group(1) = %+v", g)
	}
	for _, uid := range []int64{1, 2} {
		a, err := s.Access(c, 1, uid)
		must(t, "Access", err)
		if a.Role == "" || a.After != 0 || a.Former {
			t.Errorf("Access(1, %d) = %+v: an old member must keep reading everything", uid, a)
		}
	}
	msgs, err := s.Since(c, "g:1", 0, 10)
	must(t, "Since", err)
	wantSeqs(t, "Since(g:1)", msgs, []int64{1, 2})
	if len(msgs) == 2 && (msgs[0].Body != "hi" || msgs[1].Body != "yo" || msgs[1].From != 2) {
		t.Errorf("group messages = %+v %+v", msgs[0], msgs[1])
	}
	cs, ok := convState(t, s, 2, "g:1")
	if !ok || cs.Delivered != 1 || cs.LastSeq != 2 {
		t.Errorf("bob's g:1 = %+v (found %v)", cs, ok)
	}
	und, err := s.Undelivered(c, 2, 10)
	must(t, "Undelivered", err)
	if len(und) != 1 || und[0].Body != "dm" {
		t.Errorf("Undelivered(bob) = %+v", und)
	}

	// The new calls work on old rows, and counters go on.
	must(t, "LeaveGroup", s.LeaveGroup(c, 1, 2))
	if friends, err := s.RequestFriend(c, 3, 1); err != nil || friends {
		t.Errorf("RequestFriend on an old database: %v %v", friends, err)
	}
	gid := mkGroup(t, s, 3, "new")
	if gid != 2 {
		t.Errorf("new group id %d, want 2", gid)
	}
	m := group(1, 1, "after", "")
	appendAll(t, s, m)
	if m.Seq != 3 || m.ID != 4 {
		t.Errorf("appended seq %d id %d, want 3 and 4", m.Seq, m.ID)
	}
	a, err := s.Access(c, 1, 2)
	must(t, "Access", err)
	if !a.Former || a.Until != 2 {
		t.Errorf("Access of bob after leaving = %+v", a)
	}
}
