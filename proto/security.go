package proto

// Requests and events of session security (issue 10): log out everywhere,
// and the notice a session gets when its tokens were revoked elsewhere.

// LogoutAll (native) revokes every session token of the user and ends all
// its sessions on every server; the requesting session is logged out as
// with Logout. Reply: msgid 11 with errno 0.
const LogoutAll = 40

// ReasonRevoked is the RECONNECT (msgid 17) reason of a session ended
// because its user logged out everywhere or changed the password: the
// token is gone, so the client must not reconnect with it.
const ReasonRevoked = "revoked"

// LogoutAllReq is the LogoutAll request.
type LogoutAllReq struct{}

// MsgID is LogoutAll.
func (*LogoutAllReq) MsgID() int { return LogoutAll }

// AppendNative appends {"msgid":40,"rid":R}.
func (*LogoutAllReq) AppendNative(b []byte, rid int64) []byte {
	return append(appendHead(b, LogoutAll, rid, false), '}')
}

// ReadReply answers READ with the marker as stored: the requested seq,
// clamped to the conversation's last message (native only).
type ReadReply struct {
	RID int64
	Seq int64
}

// AppendNative appends {"msgid":11,"req":16,"rid":R,"errno":0,"seq":N}.
func (r *ReadReply) AppendNative(b []byte) []byte {
	b = appendReplyHead(b, Read, r.RID)
	return append(appendKeyInt(b, `,"seq":`, r.Seq), '}')
}

// PasswordReply answers SET_PASSWORD: every token of the user was revoked,
// its other sessions ended, and this session (native) gets a new token in
// place of its old one, so that it can still resume after a reconnect.
type PasswordReply struct {
	RID   int64
	Token string
}

// AppendNative appends {"msgid":11,"req":70,"rid":R,"errno":0,"token":S}.
func (r *PasswordReply) AppendNative(b []byte) []byte {
	b = appendReplyHead(b, SetPassword, r.RID)
	return append(appendKeyStr(b, `,"token":`, r.Token), '}')
}
