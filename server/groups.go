package server

import (
	"context"

	"clusterchat"
	"clusterchat/proto"
)

// group reads a group with its members; ENOTFOUND names it.
func (s *Server) group(ctx context.Context, gid int64) (*clusterchat.Group, error) {
	if gid <= 0 {
		return nil, clusterchat.Errorf(clusterchat.EINVALID, "missing groupid")
	}
	g, err := s.Store.Group(ctx, gid)
	if clusterchat.ErrorCode(err) == clusterchat.ENOTFOUND {
		return nil, clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
	}
	return g, err
}

// roleIn returns uid's role in g, "" if not a member.
func roleIn(g *clusterchat.Group, uid int64) string {
	for _, m := range g.Members {
		if m.UserID == uid {
			return m.Role
		}
	}
	return ""
}

func isMember(g *clusterchat.Group, uid int64) bool { return roleIn(g, uid) != "" }

func isAdmin(role string) bool {
	return role == clusterchat.RoleAdmin || role == clusterchat.RoleCreator
}

// pendingKind returns the kind of uid's pending invitation or request to
// gid, "" if none.
func (s *Server) pendingKind(ctx context.Context, gid, uid int64) (string, error) {
	ps, err := s.Store.UserPending(ctx, uid)
	if err != nil {
		return "", err
	}
	for _, p := range ps {
		if p.GroupID == gid {
			return p.Kind, nil
		}
	}
	return "", nil
}

// groupAdmin reads g and fails unless sess's user is an admin of it (or
// its creator when creator is set).
func (s *Server) groupAdmin(ctx context.Context, sess *session, gid int64, creator bool) (*clusterchat.Group, string, error) {
	g, err := s.group(ctx, gid)
	if err != nil {
		return nil, "", err
	}
	role := roleIn(g, sess.uid)
	switch {
	case role == "":
		return nil, "", clusterchat.Errorf(clusterchat.EFORBIDDEN, "not a member of group %d", gid)
	case creator && role != clusterchat.RoleCreator:
		return nil, "", clusterchat.Errorf(clusterchat.EFORBIDDEN, "only the creator of group %d may do that", gid)
	case !isAdmin(role):
		return nil, "", clusterchat.Errorf(clusterchat.EFORBIDDEN, "only an admin of group %d may do that", gid)
	}
	return g, role, nil
}

// groupEvent publishes a group event to the members' sessions.
func (s *Server) groupEvent(gid int64, origin string, ev *proto.GroupEventMsg) {
	ev.GroupID = gid
	s.publish(clusterchat.GroupChannel(gid), &envelope{kind: kindEvent, origin: origin, from: ev.ID, group: gid, native: appendNL(ev.AppendNative(nil))})
}

// groupOp answers GROUP_INFO ... GROUP_DELETE.
func (s *Server) groupOp(ctx context.Context, sess *session, q *proto.Request) error {
	switch q.MsgID {
	case proto.GroupInfo:
		return s.groupInfo(ctx, sess, q)
	case proto.GroupInvite:
		return s.groupInvite(ctx, sess, q)
	case proto.GroupAsk:
		return s.groupAsk(ctx, sess, q)
	case proto.GroupApprove:
		return s.groupApprove(ctx, sess, q)
	case proto.GroupRemove, proto.GroupLeave:
		return s.groupRemove(ctx, sess, q)
	case proto.GroupRole:
		return s.groupRole(ctx, sess, q)
	case proto.GroupUpdate:
		return s.groupUpdate(ctx, sess, q)
	case proto.GroupDelete:
		return s.groupDelete(ctx, sess, q)
	}
	return clusterchat.Errorf(clusterchat.EUNKNOWN, "unknown msgid %d", q.MsgID)
}

func (s *Server) ok(sess *session, q *proto.Request) {
	sess.c.sendDirect((&proto.OKReply{Req: q.MsgID, RID: q.RID}).AppendNative(nil))
}

// groupInfo answers GROUP_INFO for members: settings, members with roles
// (presence only for the asker's friends), and pending rows for admins.
func (s *Server) groupInfo(ctx context.Context, sess *session, q *proto.Request) error {
	g, err := s.group(ctx, q.GroupID)
	if err != nil {
		return err
	}
	role := roleIn(g, sess.uid)
	if role == "" {
		return clusterchat.Errorf(clusterchat.EFORBIDDEN, "not a member of group %d", g.ID)
	}
	states, err := s.friendStates(ctx, sess.uid)
	if err != nil {
		return err
	}
	r := &proto.GroupInfoReply{RID: q.RID, GroupID: g.ID, Name: g.Name, Desc: g.Desc, Private: g.Private, History: g.History,
		Role: role, Members: make([]proto.Member, 0, len(g.Members)), Pending: []proto.PendingInfo{}}
	for _, m := range g.Members {
		r.Members = append(r.Members, proto.Member{ID: m.UserID, Name: m.Name, Role: m.Role, State: states.of(m.UserID, sess.uid)})
	}
	if isAdmin(role) {
		ps, err := s.Store.GroupPending(ctx, g.ID)
		if err != nil {
			return err
		}
		for _, p := range ps {
			r.Pending = append(r.Pending, proto.PendingOf(p))
		}
	}
	sess.c.sendDirect(r.AppendNative(nil))
	return nil
}

// presenceView holds the live state of a user's friends: the only users
// whose presence that user may see.
type presenceView map[int64]bool

// friendStates reads uid's friends' presence.
func (s *Server) friendStates(ctx context.Context, uid int64) (presenceView, error) {
	friends, err := s.Store.Friends(ctx, uid)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(friends)+1)
	for _, f := range friends {
		ids = append(ids, f.ID)
	}
	online, err := s.Presence.Online(ctx, append(ids, uid))
	if err != nil {
		return nil, err
	}
	v := make(presenceView, len(ids)+1)
	for _, id := range ids {
		v[id] = online[id]
	}
	v[uid] = true
	return v, nil
}

// of returns id's state as the viewer sees it: live for friends (and the
// viewer), offline for everyone else.
func (v presenceView) of(id, viewer int64) proto.State {
	return proto.StateOf(v[id] || id == viewer)
}

// groupInvite answers GROUP_INVITE: any member may invite to a public
// group, admins to a private one. Inviting someone who asked to join
// admits them.
func (s *Server) groupInvite(ctx context.Context, sess *session, q *proto.Request) error {
	g, err := s.group(ctx, q.GroupID)
	if err != nil {
		return err
	}
	role := roleIn(g, sess.uid)
	if role == "" || (g.Private && !isAdmin(role)) {
		return clusterchat.Errorf(clusterchat.EFORBIDDEN, "only an admin of group %d may invite", g.ID)
	}
	name, err := s.userID(ctx, sess, q.ID)
	if err != nil {
		return err
	}
	if isMember(g, q.ID) {
		return clusterchat.Errorf(clusterchat.EEXISTS, "user %d is already a member", q.ID)
	}
	if p, err := s.peer(ctx, sess, q.ID); err != nil {
		return err
	} else if p&peerBlocksMe != 0 {
		return refused()
	}
	kind, err := s.pendingKind(ctx, g.ID, q.ID)
	if err != nil {
		return err
	}
	if kind == clusterchat.PendingRequest {
		if _, err := s.admit(ctx, g.ID, q.ID, name, sess.sid); err != nil {
			return err
		}
		s.ok(sess, q)
		return nil
	}
	if err := s.Store.AddPending(ctx, clusterchat.Pending{GroupID: g.ID, UserID: q.ID, Kind: clusterchat.PendingInvite, By: sess.uid}); err != nil {
		return err
	}
	ev := &proto.GroupEventMsg{Event: proto.EvInvited, GroupID: g.ID, ID: q.ID, Name: name, GroupName: g.Name}
	s.tell(q.ID, "", sess.uid, ev)
	s.groupEvent(g.ID, sess.sid, ev)
	s.ok(sess, q)
	return nil
}

// groupAsk answers GROUP_ASK: joins a public group, or a private one the
// user is invited to; otherwise records a request for the admins.
func (s *Server) groupAsk(ctx context.Context, sess *session, q *proto.Request) error {
	g, err := s.group(ctx, q.GroupID)
	if err != nil {
		return err
	}
	if isMember(g, sess.uid) {
		return clusterchat.Errorf(clusterchat.EEXISTS, "already a member of group %d", g.ID)
	}
	kind, err := s.pendingKind(ctx, g.ID, sess.uid)
	if err != nil {
		return err
	}
	joined := !g.Private || kind == clusterchat.PendingInvite
	if joined {
		if _, err := s.admit(ctx, g.ID, sess.uid, sess.name, sess.sid); err != nil {
			return err
		}
	} else {
		if err := s.Store.AddPending(ctx, clusterchat.Pending{GroupID: g.ID, UserID: sess.uid, Kind: clusterchat.PendingRequest, By: sess.uid}); err != nil {
			return err
		}
		ev := &proto.GroupEventMsg{Event: proto.EvAsked, GroupID: g.ID, ID: sess.uid, Name: sess.name}
		s.groupEvent(g.ID, sess.sid, ev)
		s.tell(sess.uid, sess.sid, 0, ev)
	}
	sess.c.sendDirect((&proto.GroupJoinReply{RID: q.RID, GroupID: g.ID, Joined: joined}).AppendNative(nil))
	return nil
}

// groupApprove answers GROUP_APPROVE (admins): the asker becomes a member.
func (s *Server) groupApprove(ctx context.Context, sess *session, q *proto.Request) error {
	g, _, err := s.groupAdmin(ctx, sess, q.GroupID, false)
	if err != nil {
		return err
	}
	name, err := s.userID(ctx, sess, q.ID)
	if err != nil {
		return err
	}
	kind, err := s.pendingKind(ctx, g.ID, q.ID)
	if err != nil {
		return err
	}
	if kind != clusterchat.PendingRequest {
		return clusterchat.Errorf(clusterchat.ENOTFOUND, "user %d has not asked to join group %d", q.ID, g.ID)
	}
	if _, err := s.admit(ctx, g.ID, q.ID, name, sess.sid); err != nil {
		return err
	}
	s.ok(sess, q)
	return nil
}

// groupRemove answers GROUP_REMOVE (an admin removes member id, refuses
// their request or withdraws their invitation; admins are removed by the
// creator only, the creator by nobody) and GROUP_LEAVE (the user leaves,
// withdraws their request or declines an invitation; the creator cannot
// leave, they delete the group).
func (s *Server) groupRemove(ctx context.Context, sess *session, q *proto.Request) error {
	g, err := s.group(ctx, q.GroupID)
	if err != nil {
		return err
	}
	target, name, event := sess.uid, sess.name, proto.EvLeft
	if q.MsgID == proto.GroupRemove {
		if name, err = s.userID(ctx, sess, q.ID); err != nil {
			return err
		}
		target, event = q.ID, proto.EvRemoved
		mine, theirs := roleIn(g, sess.uid), roleIn(g, target)
		switch {
		case !isAdmin(mine):
			return clusterchat.Errorf(clusterchat.EFORBIDDEN, "only an admin of group %d may remove members", g.ID)
		case theirs == clusterchat.RoleCreator, theirs == clusterchat.RoleAdmin && mine != clusterchat.RoleCreator:
			return clusterchat.Errorf(clusterchat.EFORBIDDEN, "an admin may remove normal members only; the creator no one removes")
		}
	}
	role := roleIn(g, target)
	if role == "" {
		// Not a member: a pending invitation or request goes.
		if err := s.Store.DeletePending(ctx, g.ID, target); err != nil {
			if clusterchat.ErrorCode(err) == clusterchat.ENOTFOUND {
				return clusterchat.Errorf(clusterchat.ENOTFOUND, "user %d is neither a member of group %d nor invited nor asking", target, g.ID)
			}
			return err
		}
		ev := &proto.GroupEventMsg{Event: proto.EvWithdrawn, GroupID: g.ID, ID: target, Name: name}
		s.groupEvent(g.ID, sess.sid, ev)
		s.tell(target, sess.sid, 0, ev)
		s.ok(sess, q)
		return nil
	}
	if role == clusterchat.RoleCreator {
		return clusterchat.Errorf(clusterchat.EFORBIDDEN, "the creator cannot leave group %d; delete it instead", g.ID)
	}
	if err := s.Store.LeaveGroup(ctx, g.ID, target); err != nil {
		return err
	}
	s.log.Info("group member gone", "group", g.ID, "user", target, "by", sess.uid)
	ev := &proto.GroupEventMsg{Event: event, GroupID: g.ID, ID: target, Name: name}
	// This server's sessions of target stop at once; every other server's
	// when the envelope reaches it (it travels on the group's own channel,
	// behind the messages published before it).
	s.hubLeave(context.Background(), target, g.ID)
	s.publish(clusterchat.GroupChannel(g.ID), &envelope{kind: kindLeave, origin: sess.sid, from: target, group: g.ID, native: appendNL(ev.AppendNative(nil))})
	s.tell(target, sess.sid, 0, ev)
	s.ok(sess, q)
	return nil
}

// groupRole answers GROUP_ROLE (creator): member id becomes an admin or a
// normal member.
func (s *Server) groupRole(ctx context.Context, sess *session, q *proto.Request) error {
	g, _, err := s.groupAdmin(ctx, sess, q.GroupID, true)
	if err != nil {
		return err
	}
	if q.Role != clusterchat.RoleAdmin && q.Role != clusterchat.RoleNormal {
		return clusterchat.Errorf(clusterchat.EINVALID, "role must be %q or %q", clusterchat.RoleAdmin, clusterchat.RoleNormal)
	}
	name, err := s.userID(ctx, sess, q.ID)
	if err != nil {
		return err
	}
	if !isMember(g, q.ID) {
		return clusterchat.Errorf(clusterchat.ENOTFOUND, "user %d is not a member of group %d", q.ID, g.ID)
	}
	if err := s.Store.SetRole(ctx, g.ID, q.ID, q.Role); err != nil {
		return err
	}
	s.groupEvent(g.ID, sess.sid, &proto.GroupEventMsg{Event: proto.EvRole, ID: q.ID, Name: name, Role: q.Role})
	s.ok(sess, q)
	return nil
}

// groupUpdate answers GROUP_UPDATE (admins): every setting at once.
func (s *Server) groupUpdate(ctx context.Context, sess *session, q *proto.Request) error {
	name, err := validGroup(q.GroupName, q.GroupDesc, q.History)
	if err != nil {
		return err
	}
	g, _, err := s.groupAdmin(ctx, sess, q.GroupID, false)
	if err != nil {
		return err
	}
	history := q.History
	if history == "" {
		history = clusterchat.HistoryJoined
	}
	err = s.Store.UpdateGroup(ctx, clusterchat.Group{ID: g.ID, Name: name, Desc: q.GroupDesc, Private: q.Private, History: history})
	if err != nil {
		return err
	}
	s.groupEvent(g.ID, sess.sid, &proto.GroupEventMsg{Event: proto.EvUpdated, ID: sess.uid, Name: sess.name,
		GroupName: name, GroupDesc: q.GroupDesc, Private: q.Private, History: history})
	s.ok(sess, q)
	return nil
}

// groupDelete answers GROUP_DELETE (creator).
func (s *Server) groupDelete(ctx context.Context, sess *session, q *proto.Request) error {
	g, _, err := s.groupAdmin(ctx, sess, q.GroupID, true)
	if err != nil {
		return err
	}
	if err := s.Store.DeleteGroup(ctx, g.ID); err != nil {
		return err
	}
	s.log.Info("group deleted", "group", g.ID, "user", sess.uid)
	ev := appendNL((&proto.GroupEventMsg{Event: proto.EvDeleted, GroupID: g.ID, ID: sess.uid, Name: sess.name}).AppendNative(nil))
	// Members' other sessions hear it on the group channel, which every
	// server then drops; this session gets the reply.
	s.publish(clusterchat.GroupChannel(g.ID), &envelope{kind: kindDrop, origin: sess.sid, from: sess.uid, group: g.ID, native: ev})
	s.ok(sess, q)
	return nil
}

// hubLeave takes uid's sessions on this server out of group gid and undoes
// their subscriptions.
func (s *Server) hubLeave(ctx context.Context, uid, gid int64) {
	s.hubUnindex(ctx, gid, func(sess *session) bool { return sess.uid == uid })
}

// hubUnindex removes the sessions of group gid that match from its index.
func (s *Server) hubUnindex(ctx context.Context, gid int64, match func(*session) bool) {
	s.unsubscribe(ctx, gid, s.hub.unindex(gid, match))
}

// unsubscribe undoes n subscriptions of group gid's channel.
func (s *Server) unsubscribe(ctx context.Context, gid int64, n int) {
	for range n {
		s.Broker.Unsubscribe(ctx, clusterchat.GroupChannel(gid))
	}
}

// groupGone applies a kindLeave or kindDrop envelope: the sessions leave
// the group's index at once (nothing more is delivered to them), the
// subscriptions are undone on the side (the broker may wait).
func (s *Server) groupGone(e *envelope) {
	match := func(*session) bool { return true }
	if e.kind == kindLeave {
		match = func(sess *session) bool { return sess.uid == e.from }
	}
	if n := s.hub.unindex(e.group, match); n > 0 {
		s.background(func() { s.unsubscribe(context.Background(), e.group, n) })
	}
}

// unindex removes the sessions of group gid that match from the index and
// returns how many it removed (each held one subscription).
func (h *hub) unindex(gid int64, match func(*session) bool) int {
	n := 0
	h.mu.Lock()
	for sess := range h.groups[gid] {
		if !match(sess) {
			continue
		}
		delete(h.groups[gid], sess)
		for i, g := range sess.groups {
			if g == gid {
				sess.groups = append(sess.groups[:i:i], sess.groups[i+1:]...)
				break
			}
		}
		n++
	}
	if len(h.groups[gid]) == 0 {
		delete(h.groups, gid)
	}
	h.mu.Unlock()
	return n
}

// inGroup tells whether sess is indexed in group gid on this server: the
// hub's index follows memberships (login, join, leave, removal, deletion).
func (h *hub) inGroup(sess *session, gid int64) bool {
	h.mu.RLock()
	_, ok := h.groups[gid][sess]
	h.mu.RUnlock()
	return ok
}
