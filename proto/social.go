package proto

import (
	"strconv"

	"clusterchat"
)

// Social message ids (issue 11), native only, 60-82 (40-59 are left to
// the security messages, proto/security.go): friendship by consent, blocks,
// people search, account changes and group administration (docs/protocol.md).
const (
	FriendRequest = 60 // ask id for friendship (an accept if id asked first)
	FriendAccept  = 61 // accept id's request
	FriendDecline = 62 // decline id's request
	FriendCancel  = 63 // withdraw one's request to id
	FriendRemove  = 64 // end the friendship with id
	Block         = 65 // block id
	Unblock       = 66 // unblock id
	SocialState   = 67 // open friend requests, blocked users, group invitations and requests
	SearchUsers   = 68 // users by name prefix, paged
	SetName       = 69 // change one's display name
	SetPassword   = 70 // change one's password
	GroupInfo     = 71 // a group's settings, members with roles, pending (admins)
	GroupInvite   = 72 // invite id to groupid
	GroupAsk      = 73 // ask to join a private group (joins at once when invited)
	GroupApprove  = 74 // admit id, who asked to join
	GroupRemove   = 75 // remove member id, or refuse their request, or withdraw their invitation
	GroupLeave    = 76 // leave, or withdraw one's request, or decline an invitation
	GroupRole     = 77 // make member id an admin or a normal member (creator only)
	GroupUpdate   = 78 // set name, description, private, history
	GroupDelete   = 79 // delete the group (creator only)
	FriendEvent   = 80 // event: a friend request, decline, removal, block... concerning id
	GroupEvent    = 81 // event: something changed in groupid
	UserEvent     = 82 // event: user id (a friend, or oneself) changed name
)

// Friend events (FriendEventMsg.Event), from the receiving user's side.
const (
	EvRequest   = "request"   // id asks you for friendship
	EvRequested = "requested" // you asked id (sent to your other sessions)
	EvDeclined  = "declined"  // the request between you and id was declined
	EvCanceled  = "canceled"  // the request between you and id was withdrawn
	EvRemoved   = "removed"   // you and id are no longer friends / you left or were removed from the group
	EvBlocked   = "blocked"   // you blocked id (your other sessions)
	EvUnblocked = "unblocked" // you unblocked id (your other sessions)
)

// Group events (GroupEventMsg.Event). A member joining is GROUP_JOINED (19).
const (
	EvInvited   = "invited"   // id was invited (to the group's members and to id)
	EvAsked     = "asked"     // id asks to join (to the group's members and id's sessions)
	EvLeft      = "left"      // id left (EvRemoved: was removed)
	EvRole      = "role"      // id's role is now Role
	EvUpdated   = "updated"   // the group's name, description or settings changed
	EvDeleted   = "deleted"   // the group is gone
	EvWithdrawn = "withdrawn" // id's invitation or request is gone (refused, withdrawn, declined)
)

// UserOpReq is a request about one user ID: FriendRequest, FriendAccept,
// FriendDecline, FriendCancel, FriendRemove, Block, Unblock (Op).
type UserOpReq struct {
	Op int
	ID int64
}

// MsgID is Op.
func (r *UserOpReq) MsgID() int { return r.Op }

// AppendNative appends {"msgid":Op,"rid":R,"id":N}.
func (r *UserOpReq) AppendNative(b []byte, rid int64) []byte {
	return append(appendKeyInt(appendHead(b, r.Op, rid, false), `,"id":`, r.ID), '}')
}

// GroupOpReq is a request about group GroupID, and user ID when the op
// names one: GroupInfo, GroupInvite, GroupAsk, GroupApprove, GroupRemove,
// GroupLeave, GroupRole (with Role), GroupDelete (Op).
type GroupOpReq struct {
	Op      int
	GroupID int64
	ID      int64
	Role    string
}

// MsgID is Op.
func (r *GroupOpReq) MsgID() int { return r.Op }

// AppendNative appends {"msgid":Op,"rid":R,"groupid":G[,"id":N][,"role":S]}.
func (r *GroupOpReq) AppendNative(b []byte, rid int64) []byte {
	b = appendKeyInt(appendHead(b, r.Op, rid, false), `,"groupid":`, r.GroupID)
	if r.ID != 0 {
		b = appendKeyInt(b, `,"id":`, r.ID)
	}
	if r.Role != "" {
		b = appendKeyStr(b, `,"role":`, r.Role)
	}
	return append(b, '}')
}

// NewGroupReq creates a group with settings (CREATE_GROUP, msgid 8, with
// the native-only fields private and history).
type NewGroupReq struct {
	Name    string
	Desc    string
	Private bool
	History string // clusterchat.HistoryJoined (default) or HistoryAll
}

// MsgID is CreateGroup.
func (*NewGroupReq) MsgID() int { return CreateGroup }

// AppendNative appends {"msgid":8,"rid":R,"groupname":S,"groupdesc":S,"private":B[,"history":S]}.
func (r *NewGroupReq) AppendNative(b []byte, rid int64) []byte {
	return append(appendGroupSettings(appendHead(b, CreateGroup, rid, false), r.Name, r.Desc, r.Private, r.History), '}')
}

func appendGroupSettings(b []byte, name, desc string, private bool, history string) []byte {
	b = appendKeyStr(b, `,"groupname":`, name)
	b = appendKeyStr(b, `,"groupdesc":`, desc)
	b = strconv.AppendBool(append(b, `,"private":`...), private)
	if history != "" {
		b = appendKeyStr(b, `,"history":`, history)
	}
	return b
}

// GroupUpdateReq sets every setting of group GroupID.
type GroupUpdateReq struct {
	GroupID int64
	Name    string
	Desc    string
	Private bool
	History string
}

// MsgID is GroupUpdate.
func (*GroupUpdateReq) MsgID() int { return GroupUpdate }

// AppendNative appends {"msgid":78,"rid":R,"groupid":G,"groupname":S,"groupdesc":S,"private":B[,"history":S]}.
func (r *GroupUpdateReq) AppendNative(b []byte, rid int64) []byte {
	b = appendKeyInt(appendHead(b, GroupUpdate, rid, false), `,"groupid":`, r.GroupID)
	return append(appendGroupSettings(b, r.Name, r.Desc, r.Private, r.History), '}')
}

// SocialStateReq asks for one's open friend requests, blocked users and
// pending group invitations and requests.
type SocialStateReq struct{}

// MsgID is SocialState.
func (*SocialStateReq) MsgID() int { return SocialState }

// AppendNative appends {"msgid":67,"rid":R}.
func (*SocialStateReq) AppendNative(b []byte, rid int64) []byte {
	return append(appendHead(b, SocialState, rid, false), '}')
}

// SearchReq asks for up to Limit users whose name starts with Prefix and
// sorts after Cursor (the last name of the previous page; "" first).
type SearchReq struct {
	Prefix string
	Cursor string
	Limit  int
}

// MsgID is SearchUsers.
func (*SearchReq) MsgID() int { return SearchUsers }

// AppendNative appends {"msgid":68,"rid":R,"name":S,"cursor":S,"limit":N}.
func (r *SearchReq) AppendNative(b []byte, rid int64) []byte {
	b = appendKeyStr(appendHead(b, SearchUsers, rid, false), `,"name":`, r.Prefix)
	b = appendKeyStr(b, `,"cursor":`, r.Cursor)
	return append(appendKeyInt(b, `,"limit":`, int64(r.Limit)), '}')
}

// SetNameReq changes one's display name.
type SetNameReq struct{ Name string }

// MsgID is SetName.
func (*SetNameReq) MsgID() int { return SetName }

// AppendNative appends {"msgid":69,"rid":R,"name":S}.
func (r *SetNameReq) AppendNative(b []byte, rid int64) []byte {
	return append(appendKeyStr(appendHead(b, SetName, rid, false), `,"name":`, r.Name), '}')
}

// SetPasswordReq changes one's password: Password is the current one.
type SetPasswordReq struct {
	Password    string
	NewPassword string
}

// MsgID is SetPassword.
func (*SetPasswordReq) MsgID() int { return SetPassword }

// AppendNative appends {"msgid":70,"rid":R,"password":S,"newpassword":S}.
func (r *SetPasswordReq) AppendNative(b []byte, rid int64) []byte {
	b = appendKeyStr(appendHead(b, SetPassword, rid, false), `,"password":`, r.Password)
	return append(appendKeyStr(b, `,"newpassword":`, r.NewPassword), '}')
}

// ---- replies ----

// FriendOpReply answers FriendRequest, FriendAccept and (when friendship
// needs consent) ADD_FRIEND (Req): Friend is true when the two are now
// friends, and then State is the other's presence.
type FriendOpReply struct {
	Req    int
	RID    int64
	ID     int64
	Name   string
	Friend bool
	State  State
}

// AppendNative appends {"msgid":11,"req":Q,"rid":R,"errno":0,"id":N,"name":S,"friend":B[,"state":S]}.
func (r *FriendOpReply) AppendNative(b []byte) []byte {
	b = appendKeyInt(appendReplyHead(b, r.Req, r.RID), `,"id":`, r.ID)
	b = appendKeyStr(b, `,"name":`, r.Name)
	b = strconv.AppendBool(append(b, `,"friend":`...), r.Friend)
	if r.Friend {
		b = appendKeyStr(b, `,"state":`, string(r.State))
	}
	return append(b, '}')
}

// UserRef is a user in a list: search results, blocked users.
type UserRef struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// FriendReqInfo is an open friend request.
type FriendReqInfo struct {
	From     int64  `json:"from"`
	FromName string `json:"fromname"`
	To       int64  `json:"to"`
	ToName   string `json:"toname"`
	TS       int64  `json:"ts"`
}

// PendingInfo is an open group invitation (Kind "invite": By invited ID) or
// request to join (Kind "request": ID asks).
type PendingInfo struct {
	GroupID   int64  `json:"groupid"`
	GroupName string `json:"groupname"`
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	By        int64  `json:"by"`
	TS        int64  `json:"ts"`
}

// PendingOf converts a store's pending row.
func PendingOf(p clusterchat.Pending) PendingInfo {
	return PendingInfo{GroupID: p.GroupID, GroupName: p.GroupName, ID: p.UserID, Name: p.UserName, Kind: p.Kind, By: p.By, TS: p.Time.UnixMilli()}
}

func appendUsers(b []byte, key string, us []UserRef) []byte {
	b = append(append(b, key...), '[')
	for i, u := range us {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendKeyInt(b, `{"id":`, u.ID)
		b = append(appendKeyStr(b, `,"name":`, u.Name), '}')
	}
	return append(b, ']')
}

func appendPending(b []byte, ps []PendingInfo) []byte {
	b = append(b, `,"pending":[`...)
	for i, p := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendKeyInt(b, `{"groupid":`, p.GroupID)
		b = appendKeyStr(b, `,"groupname":`, p.GroupName)
		b = appendKeyInt(b, `,"id":`, p.ID)
		b = appendKeyStr(b, `,"name":`, p.Name)
		b = appendKeyStr(b, `,"kind":`, p.Kind)
		b = appendKeyInt(b, `,"by":`, p.By)
		b = append(appendKeyInt(b, `,"ts":`, p.TS), '}')
	}
	return append(b, ']')
}

// SocialStateReply answers SocialState.
type SocialStateReply struct {
	RID      int64
	Requests []FriendReqInfo
	Blocked  []UserRef
	Pending  []PendingInfo
}

// AppendNative appends {"msgid":11,"req":47,"rid":R,"errno":0,"requests":[...],"blocked":[...],"pending":[...]}.
func (r *SocialStateReply) AppendNative(b []byte) []byte {
	b = append(appendReplyHead(b, SocialState, r.RID), `,"requests":[`...)
	for i, q := range r.Requests {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendKeyInt(b, `{"from":`, q.From)
		b = appendKeyStr(b, `,"fromname":`, q.FromName)
		b = appendKeyInt(b, `,"to":`, q.To)
		b = appendKeyStr(b, `,"toname":`, q.ToName)
		b = append(appendKeyInt(b, `,"ts":`, q.TS), '}')
	}
	b = append(b, ']')
	b = appendUsers(b, `,"blocked":`, r.Blocked)
	return append(appendPending(b, r.Pending), '}')
}

// SearchReply answers SearchUsers.
type SearchReply struct {
	RID   int64
	Users []UserRef
}

// AppendNative appends {"msgid":11,"req":48,"rid":R,"errno":0,"users":[{"id":N,"name":S}...]}.
func (r *SearchReply) AppendNative(b []byte) []byte {
	return append(appendUsers(appendReplyHead(b, SearchUsers, r.RID), `,"users":`, r.Users), '}')
}

// GroupInfoReply answers GroupInfo: the group's settings, the asker's role,
// its members (State is live only for the asker's friends) and, for
// admins, pending invitations and requests.
type GroupInfoReply struct {
	RID     int64
	GroupID int64
	Name    string
	Desc    string
	Private bool
	History string
	Role    string
	Members []Member
	Pending []PendingInfo
}

// AppendNative appends {"msgid":11,"req":51,"rid":R,"errno":0,"groupid":G,"groupname":S,"groupdesc":S,"private":B,"history":S,"role":S,"users":[...],"pending":[...]}.
func (r *GroupInfoReply) AppendNative(b []byte) []byte {
	b = appendKeyInt(appendReplyHead(b, GroupInfo, r.RID), `,"groupid":`, r.GroupID)
	b = appendGroupSettings(b, r.Name, r.Desc, r.Private, r.History)
	b = appendKeyStr(b, `,"role":`, r.Role)
	b = append(b, `,"users":[`...)
	for i, m := range r.Members {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendKeyInt(b, `{"id":`, m.ID)
		b = appendKeyStr(b, `,"name":`, m.Name)
		b = appendKeyStr(b, `,"state":`, string(m.State))
		b = append(appendKeyStr(b, `,"role":`, m.Role), '}')
	}
	b = append(b, ']')
	return append(appendPending(b, r.Pending), '}')
}

// GroupJoinReply answers GroupAsk: Joined when the user was invited and is
// now a member, else the request waits for an admin.
type GroupJoinReply struct {
	RID     int64
	GroupID int64
	Joined  bool
}

// AppendNative appends {"msgid":11,"req":53,"rid":R,"errno":0,"groupid":G,"joined":B}.
func (r *GroupJoinReply) AppendNative(b []byte) []byte {
	b = appendKeyInt(appendReplyHead(b, GroupAsk, r.RID), `,"groupid":`, r.GroupID)
	return append(strconv.AppendBool(append(b, `,"joined":`...), r.Joined), '}')
}

// ---- events ----

// FriendEventMsg tells a user that something between them and user ID
// changed (Event: EvRequest, EvRequested, EvDeclined, EvCanceled,
// EvRemoved, EvBlocked, EvUnblocked). Friendship made is FRIEND_ADDED (13).
type FriendEventMsg struct {
	Event string
	ID    int64
	Name  string
}

// AppendNative appends {"msgid":80,"event":S,"id":N,"name":S}.
func (e *FriendEventMsg) AppendNative(b []byte) []byte {
	b = appendKeyStr(b, `{"msgid":80,"event":`, e.Event)
	b = appendKeyInt(b, `,"id":`, e.ID)
	return append(appendKeyStr(b, `,"name":`, e.Name), '}')
}

// GroupEventMsg tells of a change in group GroupID (Event: EvInvited,
// EvAsked, EvLeft, EvRemoved, EvRole, EvUpdated, EvDeleted, EvWithdrawn).
// ID and Name are the user concerned (EvUpdated, EvDeleted: who did it);
// Role for EvRole; the settings for EvUpdated (and GroupName for EvInvited).
type GroupEventMsg struct {
	Event     string
	GroupID   int64
	ID        int64
	Name      string
	Role      string
	GroupName string
	GroupDesc string
	Private   bool
	History   string
}

// AppendNative appends {"msgid":81,"event":S,"groupid":G,"id":N,"name":S[,"role":S][,"groupname":S,...]}.
func (e *GroupEventMsg) AppendNative(b []byte) []byte {
	b = appendKeyStr(b, `{"msgid":81,"event":`, e.Event)
	b = appendKeyInt(b, `,"groupid":`, e.GroupID)
	b = appendKeyInt(b, `,"id":`, e.ID)
	b = appendKeyStr(b, `,"name":`, e.Name)
	if e.Role != "" {
		b = appendKeyStr(b, `,"role":`, e.Role)
	}
	switch e.Event {
	case EvUpdated:
		b = appendGroupSettings(b, e.GroupName, e.GroupDesc, e.Private, e.History)
	case EvInvited:
		b = appendKeyStr(b, `,"groupname":`, e.GroupName)
	}
	return append(b, '}')
}

// UserEventMsg tells that user ID is now called Name.
type UserEventMsg struct {
	ID   int64
	Name string
}

// AppendNative appends {"msgid":82,"id":N,"name":S}.
func (e *UserEventMsg) AppendNative(b []byte) []byte {
	b = appendKeyInt(b, `{"msgid":82,"id":`, e.ID)
	return append(appendKeyStr(b, `,"name":`, e.Name), '}')
}
