package server

import (
	"context"
	"unicode/utf8"

	"clusterchat"
	"clusterchat/proto"
)

func (s *Server) addFriend(ctx context.Context, sess *session, q *proto.Request) error {
	fid := q.FriendID
	if fid <= 0 {
		return clusterchat.Errorf(clusterchat.EINVALID, "missing friendid")
	}
	if fid == sess.uid {
		return clusterchat.Errorf(clusterchat.EINVALID, "cannot befriend yourself")
	}
	name, err := s.userName(ctx, fid)
	if err != nil {
		if clusterchat.ErrorCode(err) == clusterchat.ENOTFOUND {
			return clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", fid)
		}
		return err
	}
	if err := s.Store.AddFriend(ctx, sess.uid, fid); err != nil {
		if clusterchat.ErrorCode(err) == clusterchat.EEXISTS {
			return clusterchat.Errorf(clusterchat.EEXISTS, "already friends with %d", fid)
		}
		return err
	}
	online, err := s.Presence.Online(ctx, []int64{sess.uid, fid})
	if err != nil {
		online = map[int64]bool{sess.uid: true}
	}
	friend := proto.Friend{ID: fid, Name: name, State: proto.StateOf(online[fid])}
	if sess.native {
		sess.c.sendDirect((&proto.FriendReply{RID: q.RID, Friend: friend}).AppendNative(nil))
	}
	// Tell the other side, and this user's other sessions.
	me := proto.Friend{ID: sess.uid, Name: sess.name, State: proto.StateOf(online[sess.uid])}
	s.publish(clusterchat.UserChannel(fid), &envelope{kind: kindEvent, origin: sess.sid, from: sess.uid,
		native: appendNL((&proto.FriendAddedEvent{Friend: me}).AppendNative(nil))})
	s.publish(clusterchat.UserChannel(sess.uid), &envelope{kind: kindEvent, origin: sess.sid, from: fid,
		native: appendNL((&proto.FriendAddedEvent{Friend: friend}).AppendNative(nil))})
	return nil
}

func (s *Server) createGroup(ctx context.Context, sess *session, q *proto.Request) error {
	name, err := clusterchat.CleanName(q.GroupName, clusterchat.MaxNameLen)
	if err != nil {
		return err
	}
	if err := clusterchat.CheckText(q.GroupDesc, false); err != nil {
		return clusterchat.Errorf(clusterchat.EINVALID, "groupdesc: %s", clusterchat.ErrorMessage(err))
	}
	if utf8.RuneCountInString(q.GroupDesc) > clusterchat.MaxGroupDesc {
		return clusterchat.Errorf(clusterchat.EINVALID, "groupdesc must be at most %d characters", clusterchat.MaxGroupDesc)
	}
	gid, err := s.Store.CreateGroup(ctx, sess.uid, name, q.GroupDesc)
	if err != nil {
		if clusterchat.ErrorCode(err) == clusterchat.EEXISTS {
			return clusterchat.Errorf(clusterchat.EEXISTS, "group name %q is taken", name)
		}
		return err
	}
	s.members.Store([2]int64{gid, sess.uid}, struct{}{})
	s.log.Info("group created", "group", gid, "user", sess.uid)
	if err := s.joinedHere(ctx, sess, gid); err != nil {
		return err
	}
	if sess.native {
		sess.c.sendDirect((&proto.CreateGroupReply{RID: q.RID, GroupID: gid}).AppendNative(nil))
	}
	return nil
}

// joinedHere subscribes the user's sessions, here and on every server, to a
// group they just joined.
func (s *Server) joinedHere(ctx context.Context, sess *session, gid int64) error {
	for _, other := range s.hub.localSessions(sess.uid) {
		if err := s.hubJoin(ctx, other, gid); err != nil {
			return err
		}
	}
	s.publish(clusterchat.UserChannel(sess.uid), &envelope{kind: kindJoin, origin: sess.sid, from: sess.uid, group: gid})
	return nil
}

func (s *Server) joinGroup(ctx context.Context, sess *session, q *proto.Request) error {
	gid := q.GroupID
	if gid <= 0 {
		return clusterchat.Errorf(clusterchat.EINVALID, "missing groupid")
	}
	joined, err := s.Store.JoinGroup(ctx, gid, sess.uid)
	if err != nil {
		if clusterchat.ErrorCode(err) == clusterchat.ENOTFOUND {
			return clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
		}
		return err
	}
	s.members.Store([2]int64{gid, sess.uid}, struct{}{})
	if joined {
		if err := s.joinedHere(ctx, sess, gid); err != nil {
			return err
		}
		b := appendNL((&proto.GroupJoinedEvent{GroupID: gid, ID: sess.uid, Name: sess.name}).AppendNative(nil))
		s.publish(clusterchat.GroupChannel(gid), &envelope{kind: kindEvent, origin: sess.sid, from: sess.uid, group: gid, native: b})
	}
	if sess.native {
		sess.c.sendDirect((&proto.AddGroupReply{RID: q.RID, GroupID: gid, Joined: joined}).AppendNative(nil))
	}
	return nil
}
