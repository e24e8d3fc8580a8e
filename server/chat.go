package server

import (
	"context"
	"time"

	"clusterchat"
	"clusterchat/proto"
)

func (s *Server) chat(ctx context.Context, sess *session, q *proto.Request) error {
	if len(q.Msg) == 0 {
		return clusterchat.Errorf(clusterchat.EINVALID, "empty message")
	}
	if len(q.Msg) > s.cfg.MaxBody {
		return clusterchat.Errorf(clusterchat.ETOOLARGE, "message longer than %d bytes", s.cfg.MaxBody)
	}
	if len(q.CMID) > 64 {
		return clusterchat.Errorf(clusterchat.EINVALID, "cmid longer than 64 bytes")
	}
	if err := clusterchat.CheckText(q.Msg, true); err != nil {
		return err
	}
	// The server stamps the time: a client's "time" (free text in the
	// classic protocol) is ignored, never stored or shown as the message's.
	m := &clusterchat.Message{From: sess.uid, FromName: sess.name, Body: q.Msg, CMID: q.CMID,
		CTime: time.Now().Format(clusterchat.TimeFormat)}
	if q.MsgID == proto.OneChat {
		to := q.Recipient()
		if to <= 0 {
			return clusterchat.Errorf(clusterchat.EINVALID, "missing recipient (to)")
		}
		if to == sess.uid {
			return clusterchat.Errorf(clusterchat.EINVALID, "cannot chat with yourself")
		}
		if err := s.mayMessage(ctx, sess, to); err != nil {
			return err
		}
		m.To, m.Conv = to, clusterchat.DirectConv(sess.uid, to)
	} else {
		if q.GroupID <= 0 {
			return clusterchat.Errorf(clusterchat.EINVALID, "missing groupid")
		}
		if err := s.checkMember(ctx, sess, q.GroupID); err != nil {
			return err
		}
		m.GroupID, m.Conv = q.GroupID, clusterchat.GroupConv(q.GroupID)
	}
	s.submit(&job{m: m, sess: sess, rid: q.RID, req: q.MsgID})
	return nil
}
