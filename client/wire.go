package client

import (
	"clusterchat/proto"
)

// maxReply bounds one object from the server. A login reply lists every
// friend, group and member, so it may be far larger than a request
// (clusterchat.MaxFrame); this only stops a broken stream from growing the
// buffer without end.
const maxReply = 64 << 20

// Friend is one entry of a login's friend list.
type Friend = proto.Friend

// GroupMember is one member of a group as a login reply lists it.
type GroupMember = proto.Member

// Group is a group the user belongs to, with its members.
type Group = proto.Group

// Conv is the user's state in one conversation at login.
type Conv = proto.Conv

// LoginInfo is what a successful login returns.
type LoginInfo struct {
	ID      int64
	Name    string
	Token   string // resumes the session without the password (LoginToken)
	Friends []Friend
	Groups  []Group
	Convs   []Conv
}
