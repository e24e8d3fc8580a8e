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
	st := func(id int64) string {
		if online[id] {
			return "online"
		}
		return "offline"
	}
	if sess.native {
		extra := append([]byte(`,"id":`), appendInt(nil, fid)...)
		extra = append(append(extra, `,"name":`...), proto.AppendString(nil, name)...)
		extra = append(append(extra, `,"state":"`...), st(fid)+`"`...)
		sess.c.sendDirect(proto.AppendOK(nil, q.MsgID, q.RID, extra))
	}
	// Tell the other side, and this user's other sessions.
	s.publish(userChannel(fid), &envelope{kind: kindEvent, origin: sess.sid, from: sess.uid,
		native: friendEvent(sess.uid, sess.name, st(sess.uid))})
	s.publish(userChannel(sess.uid), &envelope{kind: kindEvent, origin: sess.sid, from: fid,
		native: friendEvent(fid, name, st(fid))})
	return nil
}

func friendEvent(id int64, name, state string) []byte {
	b := []byte(`{"msgid":13,"id":`)
	b = appendInt(b, id)
	b = proto.AppendString(append(b, `,"name":`...), name)
	b = append(b, `,"state":"`...)
	b = append(b, state...)
	return append(b, "\"}\n"...)
}

func (s *Server) createGroup(ctx context.Context, sess *session, q *proto.Request) error {
	if err := validName(q.GroupName, clusterchat.MaxNameLen); err != nil {
		return err
	}
	if utf8.RuneCountInString(q.GroupDesc) > clusterchat.MaxGroupDesc || !utf8.ValidString(q.GroupDesc) {
		return clusterchat.Errorf(clusterchat.EINVALID, "groupdesc must be at most %d characters of valid UTF-8", clusterchat.MaxGroupDesc)
	}
	gid, err := s.Store.CreateGroup(ctx, sess.uid, q.GroupName, q.GroupDesc)
	if err != nil {
		if clusterchat.ErrorCode(err) == clusterchat.EEXISTS {
			return clusterchat.Errorf(clusterchat.EEXISTS, "group name %q is taken", q.GroupName)
		}
		return err
	}
	s.members.Store([2]int64{gid, sess.uid}, struct{}{})
	s.log.Info("group created", "group", gid, "user", sess.uid)
	if err := s.joinedHere(ctx, sess, gid); err != nil {
		return err
	}
	if sess.native {
		sess.c.sendDirect(proto.AppendOK(nil, q.MsgID, q.RID, append([]byte(`,"groupid":`), appendInt(nil, gid)...)))
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
	s.publish(userChannel(sess.uid), &envelope{kind: kindJoin, origin: sess.sid, from: sess.uid, group: gid})
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
		b := []byte(`{"msgid":19,"groupid":`)
		b = appendInt(b, gid)
		b = appendInt(append(b, `,"id":`...), sess.uid)
		b = proto.AppendString(append(b, `,"name":`...), sess.name)
		b = append(b, "}\n"...)
		s.publish(groupChannel(gid), &envelope{kind: kindEvent, origin: sess.sid, from: sess.uid, group: gid, native: b})
	}
	if sess.native {
		extra := append([]byte(`,"groupid":`), appendInt(nil, gid)...)
		if joined {
			extra = append(extra, `,"joined":true`...)
		} else {
			extra = append(extra, `,"joined":false`...)
		}
		sess.c.sendDirect(proto.AppendOK(nil, q.MsgID, q.RID, extra))
	}
	return nil
}
