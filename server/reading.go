package server

import (
	"context"

	"clusterchat"
	"clusterchat/proto"
)

// convOf resolves the conversation a sync, history or read request names and
// checks that the user takes part in it: for a group, that it is a member
// (see access for what former members read).
func (s *Server) convOf(ctx context.Context, sess *session, q *proto.Request) (string, error) {
	conv, acc, err := s.access(ctx, sess, q)
	if err == nil && acc.Former {
		err = clusterchat.Errorf(clusterchat.EFORBIDDEN, "not a member of group %d", q.GroupID)
	}
	return conv, err
}

// access resolves the conversation of a request and what the user may read
// of it: everything of its 1:1 conversations; of a group, what Access says
// (from the join on unless the group shows its history; a former member
// nothing sent after it left).
func (s *Server) access(ctx context.Context, sess *session, q *proto.Request) (string, clusterchat.Access, error) {
	var none clusterchat.Access
	conv := q.Conv
	switch {
	case conv != "":
	case q.Recipient() > 0:
		conv = clusterchat.DirectConv(sess.uid, q.Recipient())
	case q.GroupID > 0:
		conv = clusterchat.GroupConv(q.GroupID)
	default:
		return "", none, clusterchat.Errorf(clusterchat.EINVALID, "name a conversation: conv, to or groupid")
	}
	a, b, g, ok := clusterchat.ParseConv(conv)
	if !ok {
		return "", none, clusterchat.Errorf(clusterchat.EINVALID, "bad conversation %q", conv)
	}
	if g != 0 {
		acc, err := s.Store.Access(ctx, g, sess.uid)
		switch {
		case clusterchat.ErrorCode(err) == clusterchat.ENOTFOUND:
			return "", none, clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", g)
		case err != nil:
			return "", none, err
		case acc.ReadsNothing():
			return "", none, clusterchat.Errorf(clusterchat.EFORBIDDEN, "not a member of group %d", g)
		}
		return conv, acc, nil
	}
	if a != sess.uid && b != sess.uid {
		return "", none, clusterchat.Errorf(clusterchat.EFORBIDDEN, "not your conversation")
	}
	return conv, none, nil
}

func (s *Server) fetch(ctx context.Context, sess *session, q *proto.Request) error {
	conv, acc, err := s.access(ctx, sess, q)
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
	var (
		msgs          []*clusterchat.Message
		after, before int64
		readable      bool
	)
	if q.MsgID == proto.Sync {
		if q.After < 0 {
			return clusterchat.Errorf(clusterchat.EINVALID, "after must be >= 0")
		}
		if after, before, readable = acc.Clamp(q.After, 0); readable {
			msgs, err = s.Store.Since(ctx, conv, after, limit)
		}
	} else if after, before, readable = acc.Clamp(0, q.Before); readable {
		msgs, err = s.Store.Before(ctx, conv, before, limit)
	}
	if err != nil {
		return err
	}
	n := len(msgs)
	msgs = within(msgs, after, before)
	var last int64
	if q.MsgID == proto.Sync && n < limit {
		// Nothing newer existed when the page was read.
		last = after
		if len(msgs) > 0 {
			last = msgs[len(msgs)-1].Seq
		}
	} else if last, err = s.lastSeq(ctx, conv, msgs); err != nil {
		return err
	}
	if acc.Former {
		last = min(last, acc.Until)
	}
	page := &proto.PageReply{Req: q.MsgID, RID: q.RID, Conv: conv, Last: last, Msgs: msgs}
	if q.MsgID == proto.Sync && after > q.After {
		page.From = after
	}
	sess.c.sendDirect(page.AppendNative(make([]byte, 0, 256)))
	if q.MsgID == proto.Sync && len(msgs) > 0 {
		s.cursors.markDelivered(sess.uid, conv, msgs[len(msgs)-1].Seq)
	}
	return nil
}

// lastSeq returns the conversation's newest seq, for the client to know
// whether to page on: one store read of that conversation alone (reading
// every conversation of the user made a page cost grow with them).
func (s *Server) lastSeq(ctx context.Context, conv string, msgs []*clusterchat.Message) (int64, error) {
	last, err := s.Store.LastSeq(ctx, conv)
	if err != nil {
		return 0, err
	}
	if len(msgs) > 0 {
		// A message committed after the page was read is newer still; one
		// committed after LastSeq cannot be older than the page.
		last = max(last, msgs[len(msgs)-1].Seq)
	}
	return last, nil
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
	last, err := s.lastSeq(ctx, conv, nil)
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

// within keeps the messages with after < seq (and seq < before when before
// > 0): what a group member may read of a page.
func within(msgs []*clusterchat.Message, after, before int64) []*clusterchat.Message {
	out := msgs[:0]
	for _, m := range msgs {
		if m.Seq > after && (before <= 0 || m.Seq < before) {
			out = append(out, m)
		}
	}
	return out
}
