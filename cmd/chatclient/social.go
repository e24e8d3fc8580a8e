package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"clusterchat"
	"clusterchat/client"
	"clusterchat/proto"
)

const socialHelp = `friends, blocks, people:
  requests                      friend requests, group invitations and requests
  accept:ID  decline:ID         answer user ID's friend request
  cancel:ID                     withdraw your friend request to ID
  unfriend:ID                   end the friendship with ID
  block:ID  unblock:ID  blocked block or unblock ID, list who you block
  search:PREFIX[:AFTER]         people whose name starts with PREFIX (next page: AFTER = last name)
  setname:NAME                  change your display name
  setpassword:OLD:NEW           change your password
groups:
  newgroup:NAME:DESC:private|public[:joined|all]  create a group (all: new members read its history)
  members:GID                   settings, members with roles, pending (admins)
  invite:GID:ID  approve:GID:ID invite ID / admit ID who asked (admins)
  ask:GID                       ask to join a private group (joins if invited)
  kick:GID:ID                   remove member ID, refuse their request or withdraw their invitation
  leave:GID                     leave, withdraw your request or decline an invitation
  promote:GID:ID  demote:GID:ID make ID an admin or a normal member (creator)
  setgroup:GID:NAME:DESC:private|public:joined|all  change a group's settings (admins)
  delgroup:GID                  delete a group (creator)`

// ids parses the colon-separated positive integers of a command; n is how
// many it needs.
func ids(rest string, n int) ([]int64, bool) {
	parts := strings.Split(rest, ":")
	if len(parts) != n {
		return nil, false
	}
	out := make([]int64, n)
	for i, p := range parts {
		v, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || v <= 0 {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}

// privacy parses "private" or "public".
func privacy(s string) (bool, bool) {
	switch s {
	case "private":
		return true, true
	case "public":
		return false, true
	}
	return false, false
}

// social runs a social command; handled is false for an unknown one.
func (a *app) social(ctx context.Context, cmd, rest string) (handled bool) {
	usage := func(u string) bool { a.printf("error: usage %s\n", u); return true }
	done := func(err error, format string, args ...any) bool {
		if err != nil {
			a.fail(err)
		} else {
			a.printf(format, args...)
		}
		return true
	}
	userOps := map[string]struct {
		call func(context.Context, int64) error
		msg  string
	}{
		"decline":  {a.c.DeclineFriend, "* declined the request of %s\n"},
		"cancel":   {a.c.CancelFriend, "* withdrew your request to %s\n"},
		"unfriend": {a.c.RemoveFriend, "* %s is no longer your friend\n"},
		"block":    {a.c.Block, "* blocked %s\n"},
		"unblock":  {a.c.Unblock, "* unblocked %s\n"},
	}
	groupOps := map[string]struct {
		call func(context.Context, int64, int64) error
		msg  string
	}{
		"invite":  {a.c.Invite, "* invited %[2]s to group %[1]d\n"},
		"approve": {a.c.Approve, "* admitted %[2]s to group %[1]d\n"},
		"kick":    {a.c.RemoveMember, "* removed %[2]s from group %[1]d\n"},
		"promote": {func(ctx context.Context, g, id int64) error { return a.c.SetRole(ctx, g, id, clusterchat.RoleAdmin) }, "* %[2]s is an admin of group %[1]d\n"},
		"demote":  {func(ctx context.Context, g, id int64) error { return a.c.SetRole(ctx, g, id, clusterchat.RoleNormal) }, "* %[2]s is a normal member of group %[1]d\n"},
	}
	if op, ok := userOps[cmd]; ok {
		v, ok := ids(rest, 1)
		if !ok {
			return usage(cmd + ":ID")
		}
		return done(op.call(ctx, v[0]), op.msg, a.userLabel(v[0]))
	}
	if op, ok := groupOps[cmd]; ok {
		v, ok := ids(rest, 2)
		if !ok {
			return usage(cmd + ":GID:ID")
		}
		return done(op.call(ctx, v[0], v[1]), op.msg, v[0], a.userLabel(v[1]))
	}
	switch cmd {
	case "accept":
		v, ok := ids(rest, 1)
		if !ok {
			return usage("accept:ID")
		}
		f, err := a.c.AcceptFriend(ctx, v[0])
		if err == nil {
			a.learnUser(f.ID, f.Name)
		}
		return done(err, "* %s(%d) is now your friend (%s)\n", safe(nameOf(f)), v[0], stateOf(f))
	case "requests":
		st, err := a.c.Social(ctx)
		if err != nil {
			return done(err, "")
		}
		a.printf("friend requests-----------\n")
		me := a.c.UserID()
		for _, r := range st.Requests {
			if r.To == me {
				a.learnUser(r.From, r.FromName)
				a.printf("from %d %s (accept:%d / decline:%d)\n", r.From, safe(r.FromName), r.From, r.From)
			} else {
				a.learnUser(r.To, r.ToName)
				a.printf("to %d %s (cancel:%d)\n", r.To, safe(r.ToName), r.To)
			}
		}
		a.printf("groups-----------\n")
		for _, p := range st.Pending {
			if p.Kind == clusterchat.PendingInvite {
				a.printf("invited to group %d %q (ask:%d to join, leave:%d to decline)\n", p.GroupID, safe(p.GroupName), p.GroupID, p.GroupID)
			} else {
				a.printf("asked to join group %d %q (leave:%d to withdraw)\n", p.GroupID, safe(p.GroupName), p.GroupID)
			}
		}
		return true
	case "blocked":
		st, err := a.c.Social(ctx)
		if err != nil {
			return done(err, "")
		}
		a.printf("blocked-----------\n")
		for _, u := range st.Blocked {
			a.printf("%d %s\n", u.ID, safe(u.Name))
		}
		return true
	case "search":
		prefix, after, _ := strings.Cut(rest, ":")
		users, err := a.c.SearchUsers(ctx, prefix, after, 20)
		if err != nil {
			return done(err, "")
		}
		a.printf("users-----------\n")
		for _, u := range users {
			a.learnUser(u.ID, u.Name)
			a.printf("%d %s\n", u.ID, safe(u.Name))
		}
		return true
	case "setname":
		if rest == "" {
			return usage("setname:NAME")
		}
		return done(a.c.SetName(ctx, rest), "* you are now called %s\n", safe(rest))
	case "setpassword":
		old, nw, ok := strings.Cut(rest, ":")
		if !ok || nw == "" {
			return usage("setpassword:OLD:NEW")
		}
		return done(a.c.SetPassword(ctx, old, nw), "* password changed\n")
	case "newgroup", "setgroup":
		return a.groupSettings(ctx, cmd, rest)
	case "members":
		v, ok := ids(rest, 1)
		if !ok {
			return usage("members:GID")
		}
		g, err := a.c.GroupInfo(ctx, v[0])
		if err != nil {
			return done(err, "")
		}
		kind := "public"
		if g.Private {
			kind = "private"
		}
		a.printf("group %d %q: %s, %s, history %s, you are %s\n", g.ID, safe(g.Name), safe(g.Desc), kind, safe(g.History), safe(g.Role))
		for _, m := range g.Members {
			a.learnUser(m.ID, m.Name)
			a.printf("%d %s %s %s\n", m.ID, safe(m.Name), safe(m.Role), safe(string(m.State)))
		}
		for _, p := range g.Pending {
			a.printf("%s: %d %s\n", safe(p.Kind), p.ID, safe(p.Name))
		}
		return true
	case "ask":
		v, ok := ids(rest, 1)
		if !ok {
			return usage("ask:GID")
		}
		joined, err := a.c.AskToJoin(ctx, v[0])
		if err == nil && joined {
			return done(nil, "* joined group %d\n", v[0])
		}
		return done(err, "* asked to join group %d; an admin will answer\n", v[0])
	case "leave":
		v, ok := ids(rest, 1)
		if !ok {
			return usage("leave:GID")
		}
		return done(a.c.LeaveGroup(ctx, v[0]), "* left group %d\n", v[0])
	case "delgroup":
		v, ok := ids(rest, 1)
		if !ok {
			return usage("delgroup:GID")
		}
		return done(a.c.DeleteGroup(ctx, v[0]), "* deleted group %d\n", v[0])
	}
	return false
}

// groupSettings runs newgroup:NAME:DESC:private|public[:joined|all] and
// setgroup:GID:NAME:DESC:private|public:joined|all.
func (a *app) groupSettings(ctx context.Context, cmd, rest string) bool {
	parts := strings.Split(rest, ":")
	var gid int64
	if cmd == "setgroup" {
		if len(parts) != 5 {
			a.printf("error: usage setgroup:GID:NAME:DESC:private|public:joined|all\n")
			return true
		}
		v, ok := ids(parts[0], 1)
		if !ok {
			a.printf("error: usage setgroup:GID:NAME:DESC:private|public:joined|all\n")
			return true
		}
		gid, parts = v[0], parts[1:]
	}
	if len(parts) < 3 || len(parts) > 4 || parts[0] == "" {
		a.printf("error: usage newgroup:NAME:DESC:private|public[:joined|all]\n")
		return true
	}
	private, ok := privacy(parts[2])
	if !ok {
		a.printf("error: say private or public\n")
		return true
	}
	history := ""
	if len(parts) == 4 {
		history = parts[3]
	}
	if cmd == "setgroup" {
		if err := a.c.UpdateGroup(ctx, gid, parts[0], parts[1], private, history); err != nil {
			a.fail(err)
			return true
		}
		a.printf("* group %d updated\n", gid)
		return true
	}
	gid, err := a.c.NewGroup(ctx, parts[0], parts[1], private, history)
	if err != nil {
		a.fail(err)
		return true
	}
	a.mu.Lock()
	a.groups[gid] = parts[0]
	a.mu.Unlock()
	a.printf("* created group %d %q (%s)\n", gid, parts[0], parts[2])
	return true
}

func nameOf(f *client.Friend) string {
	if f == nil {
		return ""
	}
	return f.Name
}

func stateOf(f *client.Friend) proto.State {
	if f == nil {
		return ""
	}
	return f.State
}

// printSocial prints a social event.
func (a *app) printSocial(e client.Event) {
	who := fmt.Sprintf("%s(%d)", safe(e.Name), e.UserID)
	if e.UserID != 0 && e.Name != "" {
		a.learnUser(e.UserID, e.Name)
	}
	switch e.Kind {
	case client.EventFriend:
		if e.Action == proto.EvRequest {
			a.printf("* %s asks to be your friend (accept:%d / decline:%d)\n", who, e.UserID, e.UserID)
			return
		}
		texts := map[string]string{
			proto.EvRequested: "* you asked %s to be your friend\n",
			proto.EvDeclined:  "* the friend request between you and %s is declined\n",
			proto.EvCanceled:  "* the friend request between you and %s is withdrawn\n",
			proto.EvRemoved:   "* %s is no longer your friend\n",
			proto.EvBlocked:   "* you blocked %s\n",
			proto.EvUnblocked: "* you unblocked %s\n",
		}
		if t, ok := texts[e.Action]; ok {
			a.printf(t, who)
		}
	case client.EventGroup:
		switch e.Action {
		case proto.EvInvited:
			a.printf("* %s is invited to group %d %q\n", who, e.GroupID, safe(e.Group.Name))
		case proto.EvAsked:
			a.printf("* %s asks to join group %d (approve:%d:%d)\n", who, e.GroupID, e.GroupID, e.UserID)
		case proto.EvLeft:
			a.printf("* %s left group %d\n", who, e.GroupID)
		case proto.EvRemoved:
			a.printf("* %s was removed from group %d\n", who, e.GroupID)
		case proto.EvRole:
			a.printf("* %s is now %s in group %d\n", who, safe(e.Role), e.GroupID)
		case proto.EvUpdated:
			a.printf("* group %d is now %q: %s (private %v, history %s)\n", e.GroupID, safe(e.Group.Name), safe(e.Group.Desc), e.Group.Private, safe(e.Group.History))
		case proto.EvDeleted:
			a.printf("* group %d was deleted\n", e.GroupID)
		case proto.EvWithdrawn:
			a.printf("* the invitation or request of %s for group %d is gone\n", who, e.GroupID)
		}
	case client.EventRenamed:
		a.printf("* user %d is now called %s\n", e.UserID, safe(e.Name))
	}
}
