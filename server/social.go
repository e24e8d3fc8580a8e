package server

import (
	"context"
	"unicode/utf8"

	"clusterchat"
	"clusterchat/proto"
)

// addFriend answers the classic ADD_FRIEND (7). With Config.Friends
// FriendsOpen it befriends both ways at once, as the classic server did.
// Otherwise it is a friend request: when two users each add the other they
// become friends, which is what a classic client expects after both added.
func (s *Server) addFriend(ctx context.Context, sess *session, q *proto.Request) error {
	fid := q.FriendID
	if fid <= 0 {
		return clusterchat.Errorf(clusterchat.EINVALID, "missing friendid")
	}
	if s.cfg.Friends != FriendsOpen {
		return s.requestFriend(ctx, sess, q, fid)
	}
	name, err := s.userID(ctx, sess, fid)
	if err != nil {
		return err
	}
	if p, err := s.peer(ctx, sess, fid); err != nil {
		return err
	} else if p&(peerBlocked|peerBlocksMe) != 0 {
		return refused()
	}
	if err := s.Store.AddFriend(ctx, sess.uid, fid); err != nil {
		if clusterchat.ErrorCode(err) == clusterchat.EEXISTS {
			return clusterchat.Errorf(clusterchat.EEXISTS, "already friends with %d", fid)
		}
		return err
	}
	state := s.befriended(ctx, sess, fid, name)
	if sess.native {
		sess.c.sendDirect((&proto.FriendReply{RID: q.RID, Friend: proto.Friend{ID: fid, Name: name, State: state}}).AppendNative(nil))
	}
	return nil
}

// validGroup checks a group's description and history setting and returns
// its name cleaned (as every display name is, clusterchat.CleanName).
func validGroup(name, desc, history string) (string, error) {
	name, err := clusterchat.CleanName(name, clusterchat.MaxNameLen)
	if err != nil {
		return "", err
	}
	if err := clusterchat.CheckText(desc, false); err != nil {
		return "", clusterchat.Errorf(clusterchat.EINVALID, "groupdesc: %s", clusterchat.ErrorMessage(err))
	}
	if utf8.RuneCountInString(desc) > clusterchat.MaxGroupDesc {
		return "", clusterchat.Errorf(clusterchat.EINVALID, "groupdesc must be at most %d characters", clusterchat.MaxGroupDesc)
	}
	switch history {
	case "", clusterchat.HistoryJoined, clusterchat.HistoryAll:
		return name, nil
	}
	return "", clusterchat.Errorf(clusterchat.EINVALID, "history must be %q or %q", clusterchat.HistoryJoined, clusterchat.HistoryAll)
}

// createGroup answers CREATE_GROUP. Classic clients send no settings, so
// their groups are public, as the classic server's were.
func (s *Server) createGroup(ctx context.Context, sess *session, q *proto.Request) error {
	name, err := validGroup(q.GroupName, q.GroupDesc, q.History)
	if err != nil {
		return err
	}
	gid, err := s.Store.NewGroup(ctx, sess.uid, clusterchat.Group{Name: name, Desc: q.GroupDesc, Private: q.Private, History: q.History})
	if err != nil {
		if clusterchat.ErrorCode(err) == clusterchat.EEXISTS {
			return clusterchat.Errorf(clusterchat.EEXISTS, "group name %q is taken", name)
		}
		return err
	}
	s.log.Info("group created", "group", gid, "user", sess.uid, "private", q.Private)
	if err := s.subscribeUser(ctx, sess.uid, gid, sess.sid, nil); err != nil {
		return err
	}
	if sess.native {
		sess.c.sendDirect((&proto.CreateGroupReply{RID: q.RID, GroupID: gid}).AppendNative(nil))
	}
	return nil
}

// subscribeUser subscribes uid's sessions, here at once and on every
// server through the broker, to a group uid just joined; each session but
// origin then gets event (nil: none).
func (s *Server) subscribeUser(ctx context.Context, uid, gid int64, origin string, event []byte) error {
	for _, other := range s.hub.localSessions(uid) {
		if err := s.hubJoin(ctx, other, gid); err != nil {
			return err
		}
	}
	s.publish(clusterchat.UserChannel(uid), &envelope{kind: kindJoin, origin: origin, from: uid, group: gid, native: event})
	return nil
}

// joinGroup answers ADD_GROUP (9): a public group is joined by id, a
// private one only with an invitation (which this accepts).
func (s *Server) joinGroup(ctx context.Context, sess *session, q *proto.Request) error {
	gid := q.GroupID
	if gid <= 0 {
		return clusterchat.Errorf(clusterchat.EINVALID, "missing groupid")
	}
	g, err := s.group(ctx, gid)
	if err != nil {
		return err
	}
	if g.Private {
		kind, err := s.pendingKind(ctx, gid, sess.uid)
		if err != nil {
			return err
		}
		if kind != clusterchat.PendingInvite && !isMember(g, sess.uid) {
			return clusterchat.Errorf(clusterchat.EFORBIDDEN, "group %d is private: join by invitation, or ask to join (native GROUP_ASK)", gid)
		}
	}
	joined, err := s.admit(ctx, gid, sess.uid, sess.name, sess.sid)
	if err != nil {
		return err
	}
	if sess.native {
		sess.c.sendDirect((&proto.AddGroupReply{RID: q.RID, GroupID: gid, Joined: joined}).AppendNative(nil))
	}
	return nil
}

// admit makes uid a member of gid and tells everyone concerned: uid's
// sessions are subscribed (on every server), the members hear GROUP_JOINED.
// joined is false when uid already was a member.
func (s *Server) admit(ctx context.Context, gid, uid int64, name, origin string) (bool, error) {
	joined, err := s.Store.JoinGroup(ctx, gid, uid)
	if err != nil {
		if clusterchat.ErrorCode(err) == clusterchat.ENOTFOUND {
			return false, clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
		}
		return false, err
	}
	if !joined {
		return false, nil
	}
	b := appendNL((&proto.GroupJoinedEvent{GroupID: gid, ID: uid, Name: name}).AppendNative(nil))
	// The joiner's sessions hear it once subscribed (the local ones at
	// once), the members on the group's channel.
	if err := s.subscribeUser(ctx, uid, gid, origin, b); err != nil {
		return true, err
	}
	s.publish(clusterchat.GroupChannel(gid), &envelope{kind: kindEvent, origin: origin, from: uid, group: gid, native: b})
	return true, nil
}
