package server

import (
	"context"

	"clusterchat"
	"clusterchat/proto"
)

// convOf resolves the conversation a sync, history or read request names and
// checks that the user takes part in it.
func (s *Server) convOf(ctx context.Context, sess *session, q *proto.Request) (string, error) {
	conv := q.Conv
	switch {
	case conv != "":
	case q.Recipient() > 0:
		conv = clusterchat.DirectConv(sess.uid, q.Recipient())
	case q.GroupID > 0:
		conv = clusterchat.GroupConv(q.GroupID)
	default:
		return "", clusterchat.Errorf(clusterchat.EINVALID, "name a conversation: conv, to or groupid")
	}
	a, b, g, ok := clusterchat.ParseConv(conv)
	if !ok {
		return "", clusterchat.Errorf(clusterchat.EINVALID, "bad conversation %q", conv)
	}
	if g != 0 {
		return conv, s.checkMember(ctx, g, sess.uid)
	}
	if a != sess.uid && b != sess.uid {
		return "", clusterchat.Errorf(clusterchat.EFORBIDDEN, "not your conversation")
	}
	return conv, nil
}

func (s *Server) fetch(ctx context.Context, sess *session, q *proto.Request) error {
	conv, err := s.convOf(ctx, sess, q)
	if err != nil {
		return err
	}
	limit := q.Limit
	if limit < 0 || limit > clusterchat.MaxPageSize {
		return clusterchat.Errorf(clusterchat.EINVALID, "limit must be 1-%d", clusterchat.MaxPageSize)
	}
	if limit == 0 {
		limit = clusterchat.MaxPageSize
	}
	var msgs []*clusterchat.Message
	if q.MsgID == proto.Sync {
		if q.After < 0 {
			return clusterchat.Errorf(clusterchat.EINVALID, "after must be >= 0")
		}
		msgs, err = s.Store.Since(ctx, conv, q.After, limit)
	} else {
		msgs, err = s.Store.Before(ctx, conv, q.Before, limit)
	}
	if err != nil {
		return err
	}
	var last int64
	if q.MsgID == proto.Sync && len(msgs) < limit {
		// Nothing newer existed when the page was read.
		last = q.After
		if len(msgs) > 0 {
			last = msgs[len(msgs)-1].Seq
		}
	} else if last, err = s.lastSeq(ctx, sess.uid, conv, msgs); err != nil {
		return err
	}
	page := &proto.PageReply{Req: q.MsgID, RID: q.RID, Conv: conv, Last: last, Msgs: msgs}
	sess.c.sendDirect(page.AppendNative(make([]byte, 0, 256)))
	if q.MsgID == proto.Sync && len(msgs) > 0 {
		s.cursors.markDelivered(sess.uid, conv, msgs[len(msgs)-1].Seq)
	}
	return nil
}

// lastSeq returns the conversation's newest seq, for the client to know
// whether to page on.
func (s *Server) lastSeq(ctx context.Context, uid int64, conv string, msgs []*clusterchat.Message) (int64, error) {
	convs, err := s.Store.Convs(ctx, uid)
	if err != nil {
		return 0, err
	}
	for _, c := range convs {
		if c.Conv == conv {
			return c.LastSeq, nil
		}
	}
	if len(msgs) > 0 {
		return msgs[len(msgs)-1].Seq, nil
	}
	return 0, nil
}

func (s *Server) markRead(ctx context.Context, sess *session, q *proto.Request) error {
	conv, err := s.convOf(ctx, sess, q)
	if err != nil {
		return err
	}
	if q.Seq < 0 {
		return clusterchat.Errorf(clusterchat.EINVALID, "seq must be >= 0")
	}
	// Clamped to the conversation's last message: a marker past it would
	// hide every message still to come as "read".
	last, err := s.lastSeq(ctx, sess.uid, conv, nil)
	if err != nil {
		return err
	}
	seq := min(q.Seq, last)
	if err := s.Store.MarkRead(ctx, []clusterchat.Cursor{{User: sess.uid, Conv: conv, Seq: seq}}); err != nil {
		return err
	}
	sess.c.sendDirect((&proto.ReadReply{RID: q.RID, Seq: seq}).AppendNative(nil))
	b := appendNL((&proto.ReadEvent{Conv: conv, Seq: seq}).AppendNative(nil))
	s.publish(clusterchat.UserChannel(sess.uid), &envelope{kind: kindEvent, origin: sess.sid, from: sess.uid, native: b})
	return nil
}
