package server_test

import (
	"fmt"
	"slices"
	"testing"

	"clusterchat/internal/wiretest"
)

// friendNames lists the friends of a login reply as "id:name".
func friendNames(o wiretest.Obj) []string {
	var out []string
	for _, f := range o.List("friends") {
		m := f.(map[string]any)
		out = append(out, fmt.Sprintf("%v:%v", m["id"], m["name"]))
	}
	return out
}

// TestFriendCacheFollowsChanges: while a user keeps a session on the server
// (its friend list is cached there), every change to its friends or their
// names shows in its next login reply, and after its last session ends the
// list is read afresh.
func TestFriendCacheFollowsChanges(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	a, b, c := newUser(t, ts, "fa"), newUser(t, ts, "fb"), newUser(t, ts, "fc")
	keep, _ := a.native(t, ts) // holds a's cache entry throughout
	defer keep.NC.Close()
	entry := func(u user, name string) string { return fmt.Sprintf("%d:%s", u.id, name) }

	tests := []struct {
		name   string
		change func()
		want   []string
	}{
		{"nothing", func() {}, nil},
		{"befriended", func() { befriend(t, ts, b, a) }, []string{entry(b, "fb")}},
		{"second friend", func() { befriend(t, ts, a, c) }, []string{entry(b, "fb"), entry(c, "fc")}},
		{"friend renamed", func() {
			s, _ := b.native(t, ts)
			defer s.NC.Close()
			s.Call(69, `{"msgid":69,"name":"fb2"}`)
		}, []string{entry(b, "fb2"), entry(c, "fc")}},
		{"friendship ended", func() {
			s, _ := c.native(t, ts)
			defer s.NC.Close()
			s.Call(64, `{"msgid":64,"id":%d}`, a.id)
		}, []string{entry(b, "fb2")}},
		{"after the last session", func() {
			keep.NC.Close()
			keep.ExpectClosed()
			s, _ := b.native(t, ts)
			defer s.NC.Close()
			s.Call(64, `{"msgid":64,"id":%d}`, a.id)
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.change()
			s, rep := a.native(t, ts)
			defer s.NC.Close()
			if got := friendNames(rep); !slices.Equal(got, tc.want) {
				t.Errorf("friends after %s: %v, want %v", tc.name, got, tc.want)
			}
		})
	}
}
