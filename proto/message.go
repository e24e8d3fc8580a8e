package proto

import (
	"encoding/json"
	"strconv"

	"clusterchat"
)

// The wire vocabulary, one typed value per message. The pattern, for anyone
// adding a message:
//
//   - a request (client -> server) is a type with AppendNative(b, rid), plus
//     AppendClassic(b) when the classic protocol has it; it satisfies Req.
//     The server reads every request through Decode into Request, so a new
//     request field is also a Request field (and a case in the decoder).
//   - a reply or event (server -> client) is a type with AppendNative(b),
//     plus AppendClassic(b) when the classic protocol has it; clients read
//     every one of them through DecodeFrame into Frame, so a new field is
//     also a Frame field.
//   - every encoder has a row in TestMessages (message_test.go), which checks
//     it against encoding/json and against the decoder of the other side.
//
// Encoders append to b and return it without the "\n" the server writes
// after each object. Chat messages, chat acks and error replies, the hot
// paths, keep plain functions (AppendNativeChat, AppendClassicChat,
// AppendChatAck) besides their types.

// Req is a request as a client sends it. The rid is a property of one
// attempt (a resend gets a new one), so it is passed, not stored.
type Req interface {
	// MsgID is the request's msgid.
	MsgID() int
	// AppendNative appends the native encoding with rid.
	AppendNative(b []byte, rid int64) []byte
}

// State is a user's presence as PRESENCE events and login replies carry it.
type State string

// The presence states.
const (
	Online  State = "online"  // at least one live session somewhere
	Offline State = "offline" // none
)

// StateOf returns Online or Offline.
func StateOf(online bool) State {
	if online {
		return Online
	}
	return Offline
}

func appendHead(b []byte, msgid int, rid int64, native bool) []byte {
	b = appendKeyInt(b, `{"msgid":`, int64(msgid))
	if native {
		b = append(b, `,"proto":2`...)
	}
	if rid != 0 {
		b = appendKeyInt(b, `,"rid":`, rid)
	}
	return b
}

// appendReplyHead appends the head of a native success reply (msgid 11).
func appendReplyHead(b []byte, req int, rid int64) []byte {
	b = appendKeyInt(b, `{"msgid":11,"req":`, int64(req))
	b = appendKeyInt(b, `,"rid":`, rid)
	return append(b, `,"errno":0`...)
}

// ---- requests ----

// LoginReq logs in with ID and Password, or with Token (native only).
type LoginReq struct {
	ID       int64
	Password string
	Token    string
}

// MsgID is Login.
func (*LoginReq) MsgID() int { return Login }

// AppendNative appends {"msgid":1,"proto":2,"rid":R,...}.
func (r *LoginReq) AppendNative(b []byte, rid int64) []byte {
	b = appendHead(b, Login, rid, true)
	if r.Token != "" {
		b = appendKeyStr(b, `,"token":`, r.Token)
		return append(b, '}')
	}
	b = appendKeyInt(b, `,"id":`, r.ID)
	b = appendKeyStr(b, `,"password":`, r.Password)
	return append(b, '}')
}

// AppendClassic appends what the classic client sends (keys sorted). The
// classic protocol has no tokens, but the server takes one on any login.
func (r *LoginReq) AppendClassic(b []byte) []byte {
	if r.Token != "" {
		b = appendKeyStr(b, `{"msgid":1,"token":`, r.Token)
		return append(b, '}')
	}
	b = appendKeyInt(b, `{"id":`, r.ID)
	b = append(b, `,"msgid":1`...)
	b = appendKeyStr(b, `,"password":`, r.Password)
	return append(b, '}')
}

// RegisterReq creates an account.
type RegisterReq struct {
	Name     string
	Password string
}

// MsgID is Register.
func (*RegisterReq) MsgID() int { return Register }

// AppendNative appends {"msgid":4,"proto":2,"rid":R,"name":S,"password":S}.
func (r *RegisterReq) AppendNative(b []byte, rid int64) []byte {
	b = appendHead(b, Register, rid, true)
	b = appendKeyStr(b, `,"name":`, r.Name)
	b = appendKeyStr(b, `,"password":`, r.Password)
	return append(b, '}')
}

// AppendClassic appends what the classic client sends.
func (r *RegisterReq) AppendClassic(b []byte) []byte {
	b = append(b, `{"msgid":4`...)
	b = appendKeyStr(b, `,"name":`, r.Name)
	b = appendKeyStr(b, `,"password":`, r.Password)
	return append(b, '}')
}

// LogoutReq ends the session (not the connection).
type LogoutReq struct{}

// MsgID is Logout.
func (*LogoutReq) MsgID() int { return Logout }

// AppendNative appends {"msgid":3,"rid":R}.
func (*LogoutReq) AppendNative(b []byte, rid int64) []byte {
	return append(appendHead(b, Logout, rid, false), '}')
}

// AppendClassic appends {"msgid":3}.
func (*LogoutReq) AppendClassic(b []byte) []byte { return append(b, `{"msgid":3}`...) }

// ChatReq sends Msg to user To, or to group GroupID when it is set.
type ChatReq struct {
	To      int64
	GroupID int64
	Msg     string
	CMID    string // client message id (native): resends of one message share it
	Time    string // the classic "time" text; the server fills it when empty
}

// MsgID is OneChat or GroupChat.
func (r *ChatReq) MsgID() int {
	if r.GroupID != 0 {
		return GroupChat
	}
	return OneChat
}

// AppendNative appends {"msgid":6,"rid":R,"to":N,"msg":S,"cmid":S} (group:
// msgid 10 and groupid).
func (r *ChatReq) AppendNative(b []byte, rid int64) []byte {
	b = appendHead(b, r.MsgID(), rid, false)
	if r.GroupID != 0 {
		b = appendKeyInt(b, `,"groupid":`, r.GroupID)
	} else {
		b = appendKeyInt(b, `,"to":`, r.To)
	}
	b = appendKeyStr(b, `,"msg":`, r.Msg)
	if r.CMID != "" {
		b = appendKeyStr(b, `,"cmid":`, r.CMID)
	}
	if r.Time != "" {
		b = appendKeyStr(b, `,"time":`, r.Time)
	}
	return append(b, '}')
}

// AppendClassic appends what the classic client sends (keys sorted).
func (r *ChatReq) AppendClassic(b []byte) []byte {
	b = append(b, '{')
	if r.GroupID != 0 {
		b = appendKeyInt(b, `"groupid":`, r.GroupID)
		b = append(b, ',')
	}
	b = appendKeyStr(b, `"msg":`, r.Msg)
	b = appendKeyInt(b, `,"msgid":`, int64(r.MsgID()))
	if r.Time != "" {
		b = appendKeyStr(b, `,"time":`, r.Time)
	}
	if r.GroupID == 0 {
		b = appendKeyInt(b, `,"to":`, r.To)
	}
	return append(b, '}')
}

// AddFriendReq befriends FriendID (both ways).
type AddFriendReq struct{ FriendID int64 }

// MsgID is AddFriend.
func (*AddFriendReq) MsgID() int { return AddFriend }

// AppendNative appends {"msgid":7,"rid":R,"friendid":N}.
func (r *AddFriendReq) AppendNative(b []byte, rid int64) []byte {
	b = appendKeyInt(appendHead(b, AddFriend, rid, false), `,"friendid":`, r.FriendID)
	return append(b, '}')
}

// AppendClassic appends {"friendid":N,"msgid":7}.
func (r *AddFriendReq) AppendClassic(b []byte) []byte {
	b = appendKeyInt(b, `{"friendid":`, r.FriendID)
	return append(b, `,"msgid":7}`...)
}

// CreateGroupReq creates a group with the sender as its creator.
type CreateGroupReq struct {
	Name string
	Desc string
}

// MsgID is CreateGroup.
func (*CreateGroupReq) MsgID() int { return CreateGroup }

// AppendNative appends {"msgid":8,"rid":R,"groupname":S,"groupdesc":S}.
func (r *CreateGroupReq) AppendNative(b []byte, rid int64) []byte {
	b = appendHead(b, CreateGroup, rid, false)
	b = appendKeyStr(b, `,"groupname":`, r.Name)
	b = appendKeyStr(b, `,"groupdesc":`, r.Desc)
	return append(b, '}')
}

// AppendClassic appends {"groupdesc":S,"groupname":S,"msgid":8}.
func (r *CreateGroupReq) AppendClassic(b []byte) []byte {
	b = appendKeyStr(b, `{"groupdesc":`, r.Desc)
	b = appendKeyStr(b, `,"groupname":`, r.Name)
	return append(b, `,"msgid":8}`...)
}

// AddGroupReq joins group GroupID.
type AddGroupReq struct{ GroupID int64 }

// MsgID is AddGroup.
func (*AddGroupReq) MsgID() int { return AddGroup }

// AppendNative appends {"msgid":9,"rid":R,"groupid":N}.
func (r *AddGroupReq) AppendNative(b []byte, rid int64) []byte {
	b = appendKeyInt(appendHead(b, AddGroup, rid, false), `,"groupid":`, r.GroupID)
	return append(b, '}')
}

// AppendClassic appends {"groupid":N,"msgid":9}.
func (r *AddGroupReq) AppendClassic(b []byte) []byte {
	b = appendKeyInt(b, `{"groupid":`, r.GroupID)
	return append(b, `,"msgid":9}`...)
}

// SyncReq asks for the messages of Conv after seq After (native only).
type SyncReq struct {
	Conv  string
	After int64
	Limit int
}

// MsgID is Sync.
func (*SyncReq) MsgID() int { return Sync }

// AppendNative appends {"msgid":14,"rid":R,"conv":S,"after":N,"limit":N}.
func (r *SyncReq) AppendNative(b []byte, rid int64) []byte {
	b = appendKeyStr(appendHead(b, Sync, rid, false), `,"conv":`, r.Conv)
	b = appendKeyInt(b, `,"after":`, r.After)
	b = appendKeyInt(b, `,"limit":`, int64(r.Limit))
	return append(b, '}')
}

// HistoryReq asks for the newest messages of Conv before seq Before (0: from
// the end; native only).
type HistoryReq struct {
	Conv   string
	Before int64
	Limit  int
}

// MsgID is History.
func (*HistoryReq) MsgID() int { return History }

// AppendNative appends {"msgid":15,"rid":R,"conv":S,"before":N,"limit":N}.
func (r *HistoryReq) AppendNative(b []byte, rid int64) []byte {
	b = appendKeyStr(appendHead(b, History, rid, false), `,"conv":`, r.Conv)
	b = appendKeyInt(b, `,"before":`, r.Before)
	b = appendKeyInt(b, `,"limit":`, int64(r.Limit))
	return append(b, '}')
}

// ReadReq moves the read marker of Conv to Seq (native only).
type ReadReq struct {
	Conv string
	Seq  int64
}

// MsgID is Read.
func (*ReadReq) MsgID() int { return Read }

// AppendNative appends {"msgid":16,"rid":R,"conv":S,"seq":N}.
func (r *ReadReq) AppendNative(b []byte, rid int64) []byte {
	b = appendKeyStr(appendHead(b, Read, rid, false), `,"conv":`, r.Conv)
	b = appendKeyInt(b, `,"seq":`, r.Seq)
	return append(b, '}')
}

// PingReq asks for an empty reply (native only).
type PingReq struct{}

// MsgID is Ping.
func (*PingReq) MsgID() int { return Ping }

// AppendNative appends {"msgid":18,"rid":R}.
func (*PingReq) AppendNative(b []byte, rid int64) []byte {
	return append(appendHead(b, Ping, rid, false), '}')
}

// ---- replies ----

// RegisterReply acknowledges a registration with the new account's id.
type RegisterReply struct {
	RID int64
	ID  int64
}

// AppendNative appends {"errno":0,"id":N,"msgid":5,"rid":R}.
func (r *RegisterReply) AppendNative(b []byte) []byte {
	b = r.appendBody(b)
	b = appendKeyInt(b, `,"rid":`, r.RID)
	return append(b, '}')
}

// AppendClassic appends {"errno":0,"id":N,"msgid":5}.
func (r *RegisterReply) AppendClassic(b []byte) []byte { return append(r.appendBody(b), '}') }

func (r *RegisterReply) appendBody(b []byte) []byte {
	b = appendKeyInt(b, `{"errno":0,"id":`, r.ID)
	return append(b, `,"msgid":5`...)
}

// Friend is a friend in a login reply, with its live presence state.
type Friend struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	State State  `json:"state"` // live at login
}

// Member is a member of a group in a login reply.
type Member struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	State State  `json:"state"`
	Role  string `json:"role"` // clusterchat.RoleCreator or RoleNormal
}

// Group is a group the user belongs to, with its members.
type Group struct {
	ID      int64    `json:"id"`
	Name    string   `json:"groupname"`
	Desc    string   `json:"groupdesc"`
	Members []Member `json:"users"`
}

// Conv is the user's state in one conversation at login.
type Conv struct {
	Conv   string `json:"conv"`   // "d:A:B" or "g:G"
	Last   int64  `json:"last"`   // the conversation's newest seq
	Read   int64  `json:"read"`   // the user's read marker
	Unread int64  `json:"unread"` // messages from others after the read marker
}

// LoginReply acknowledges a login. Token and Convs are native only, Offline
// classic only (a native client syncs from its own cursors instead).
type LoginReply struct {
	RID     int64
	ID      int64
	Name    string
	Token   string
	Friends []Friend
	Groups  []Group
	Convs   []Conv
	Offline []*clusterchat.Message
}

// nativeLogin fixes the native login reply's field order.
type nativeLogin struct {
	MsgID   int      `json:"msgid"`
	RID     int64    `json:"rid"`
	Errno   int      `json:"errno"`
	ID      int64    `json:"id"`
	Name    string   `json:"name"`
	Token   string   `json:"token,omitempty"`
	Friends []Friend `json:"friends"`
	Groups  []Group  `json:"groups"`
	Convs   []Conv   `json:"convs"`
}

// AppendNative appends the native login reply: nested values are JSON
// objects and arrays, lists are never null.
func (r *LoginReply) AppendNative(b []byte) []byte {
	v := nativeLogin{MsgID: LoginAck, RID: r.RID, ID: r.ID, Name: r.Name, Token: r.Token,
		Friends: nonNil(r.Friends), Groups: nonNil(r.Groups), Convs: nonNil(r.Convs)}
	for i, g := range v.Groups {
		if g.Members == nil {
			if i == 0 {
				v.Groups = append([]Group(nil), v.Groups...)
			}
			v.Groups[i].Members = []Member{}
		}
	}
	return appendJSON(b, &v)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// The classic login reply's nested objects, fields in sorted key order as
// the classic server's JSON library wrote them.
type (
	classicLogin struct {
		Errno   int      `json:"errno"`
		Friends []string `json:"friends,omitempty"`
		Groups  []string `json:"groups,omitempty"`
		ID      int64    `json:"id"`
		MsgID   int      `json:"msgid"`
		Name    string   `json:"name"`
		Offline []string `json:"offlinemsg,omitempty"`
	}
	classicMember struct {
		ID    int64  `json:"id"`
		Name  string `json:"name"`
		Role  string `json:"role"`
		State State  `json:"state"`
	}
	classicGroup struct {
		Desc  string   `json:"groupdesc"`
		Name  string   `json:"groupname"`
		ID    int64    `json:"id"`
		Users []string `json:"users"`
	}
)

// AppendClassic appends the classic login reply: compact, keys sorted,
// friends, groups and offlinemsg only when not empty, each an array of JSON
// strings holding one object each (protocol-seed.md).
func (r *LoginReply) AppendClassic(b []byte) []byte { return appendJSON(b, r.classic()) }

func (r *LoginReply) classic() *classicLogin {
	v := classicLogin{MsgID: LoginAck, ID: r.ID, Name: r.Name}
	for _, f := range r.Friends {
		v.Friends = append(v.Friends, jsonString(&f))
	}
	for _, g := range r.Groups {
		cg := classicGroup{ID: g.ID, Name: g.Name, Desc: g.Desc, Users: make([]string, 0, len(g.Members))}
		for _, m := range g.Members {
			cg.Users = append(cg.Users, jsonString(&classicMember{ID: m.ID, Name: m.Name, Role: m.Role, State: m.State}))
		}
		v.Groups = append(v.Groups, jsonString(&cg))
	}
	for _, m := range r.Offline {
		v.Offline = append(v.Offline, string(AppendClassicChat(nil, m)))
	}
	return &v
}

// appendJSON appends v as encoding/json writes it. Only the login reply,
// sent once per session, goes this way.
func appendJSON(b []byte, v any) []byte {
	j, err := json.Marshal(v)
	if err != nil {
		panic(err) // only structs of strings, numbers and slices reach here
	}
	return append(b, j...)
}

func jsonString(v any) string { return string(appendJSON(nil, v)) }

// OKReply is a native success reply with no result: logout, read, ping.
type OKReply struct {
	Req int
	RID int64
}

// AppendNative appends {"msgid":11,"req":Q,"rid":R,"errno":0}.
func (r *OKReply) AppendNative(b []byte) []byte {
	return append(appendReplyHead(b, r.Req, r.RID), '}')
}

// FriendReply answers ADD_FRIEND with the new friend (native only).
type FriendReply struct {
	RID    int64
	Friend Friend
}

// AppendNative appends {"msgid":11,"req":7,"rid":R,"errno":0,"id":N,"name":S,"state":S}.
func (r *FriendReply) AppendNative(b []byte) []byte {
	b = appendReplyHead(b, AddFriend, r.RID)
	return append(appendFriend(b, &r.Friend), '}')
}

func appendFriend(b []byte, f *Friend) []byte {
	b = appendKeyInt(b, `,"id":`, f.ID)
	b = appendKeyStr(b, `,"name":`, f.Name)
	return appendKeyStr(b, `,"state":`, string(f.State))
}

// CreateGroupReply answers CREATE_GROUP with the new group's id (native only).
type CreateGroupReply struct {
	RID     int64
	GroupID int64
}

// AppendNative appends {"msgid":11,"req":8,"rid":R,"errno":0,"groupid":G}.
func (r *CreateGroupReply) AppendNative(b []byte) []byte {
	b = appendKeyInt(appendReplyHead(b, CreateGroup, r.RID), `,"groupid":`, r.GroupID)
	return append(b, '}')
}

// AddGroupReply answers ADD_GROUP; Joined is false when the user already
// was a member (native only).
type AddGroupReply struct {
	RID     int64
	GroupID int64
	Joined  bool
}

// AppendNative appends {"msgid":11,"req":9,"rid":R,"errno":0,"groupid":G,"joined":B}.
func (r *AddGroupReply) AppendNative(b []byte) []byte {
	b = appendKeyInt(appendReplyHead(b, AddGroup, r.RID), `,"groupid":`, r.GroupID)
	b = strconv.AppendBool(append(b, `,"joined":`...), r.Joined)
	return append(b, '}')
}

// PageReply answers SYNC or HISTORY (Req) with a page of Conv and the
// conversation's newest seq (native only).
type PageReply struct {
	Req  int
	RID  int64
	Conv string
	Last int64
	Msgs []*clusterchat.Message
	// From, when above the request's after, is where the user's view of a
	// group starts (its join seq: no message at or before it is readable):
	// the client moves its cursor there instead of waiting for them.
	From int64
}

// AppendNative appends {"msgid":11,"req":Q,"rid":R,"errno":0,"conv":S,"last":N,"msgs":[...]}.
func (r *PageReply) AppendNative(b []byte) []byte {
	b = appendKeyStr(appendReplyHead(b, r.Req, r.RID), `,"conv":`, r.Conv)
	b = appendKeyInt(b, `,"last":`, r.Last)
	if r.From > 0 {
		b = appendKeyInt(b, `,"from":`, r.From)
	}
	b = append(b, `,"msgs":[`...)
	for i, m := range r.Msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendNativeChat(b, m)
	}
	return append(b, "]}"...)
}

// ErrorReply answers a failed request Req (see AppendError).
type ErrorReply struct {
	Req int
	RID int64
	Err error
}

// AppendNative appends the error reply with the rid.
func (r *ErrorReply) AppendNative(b []byte) []byte { return AppendError(b, r.Req, r.RID, true, r.Err) }

// AppendClassic appends the error reply without the rid.
func (r *ErrorReply) AppendClassic(b []byte) []byte { return AppendError(b, r.Req, 0, false, r.Err) }

// ChatAck is the native acknowledgement of committed message M (request
// Req); see AppendChatAck.
type ChatAck struct {
	Req int
	RID int64
	M   *clusterchat.Message
}

// AppendNative appends the acknowledgement.
func (r *ChatAck) AppendNative(b []byte) []byte { return AppendChatAck(b, r.Req, r.RID, r.M) }

// ---- events (server -> client) ----

// ChatEvent is a chat message as delivered (see AppendNativeChat and
// AppendClassicChat).
type ChatEvent struct{ M *clusterchat.Message }

// AppendNative appends the native delivery.
func (e *ChatEvent) AppendNative(b []byte) []byte { return AppendNativeChat(b, e.M) }

// AppendClassic appends the classic delivery.
func (e *ChatEvent) AppendClassic(b []byte) []byte { return AppendClassicChat(b, e.M) }

// PresenceEvent tells that friend ID came online or went offline.
type PresenceEvent struct {
	ID    int64
	State State
}

// AppendNative appends {"msgid":12,"id":N,"state":S}.
func (e *PresenceEvent) AppendNative(b []byte) []byte {
	b = appendKeyInt(b, `{"msgid":12,"id":`, e.ID)
	b = appendKeyStr(b, `,"state":`, string(e.State))
	return append(b, '}')
}

// FriendAddedEvent tells that Friend became a friend (the other side of an
// ADD_FRIEND, and the adder's other sessions).
type FriendAddedEvent struct{ Friend Friend }

// AppendNative appends {"msgid":13,"id":N,"name":S,"state":S}.
func (e *FriendAddedEvent) AppendNative(b []byte) []byte {
	b = appendFriend(append(b, `{"msgid":13`...), &e.Friend)
	return append(b, '}')
}

// GroupJoinedEvent tells the members of GroupID that user ID joined it.
type GroupJoinedEvent struct {
	GroupID int64
	ID      int64
	Name    string
}

// AppendNative appends {"msgid":19,"groupid":G,"id":N,"name":S}.
func (e *GroupJoinedEvent) AppendNative(b []byte) []byte {
	b = appendKeyInt(b, `{"msgid":19,"groupid":`, e.GroupID)
	b = appendKeyInt(b, `,"id":`, e.ID)
	b = appendKeyStr(b, `,"name":`, e.Name)
	return append(b, '}')
}

// ReadEvent tells a user's other sessions that Conv was read up to Seq.
type ReadEvent struct {
	Conv string
	Seq  int64
}

// AppendNative appends {"msgid":16,"conv":S,"seq":N}.
func (e *ReadEvent) AppendNative(b []byte) []byte {
	b = appendKeyStr(b, `{"msgid":16,"conv":`, e.Conv)
	b = appendKeyInt(b, `,"seq":`, e.Seq)
	return append(b, '}')
}

// Reasons of a RECONNECT event.
const (
	ReasonShutdown = "shutdown" // the server is going away: reconnect elsewhere
	ReasonResync   = "resync"   // the broker lost messages: SYNC every conversation
)

// ReconnectEvent asks a native client to reconnect, or to resync.
type ReconnectEvent struct{ Reason string }

// AppendNative appends {"msgid":17,"reason":S}.
func (e *ReconnectEvent) AppendNative(b []byte) []byte {
	b = appendKeyStr(b, `{"msgid":17,"reason":`, e.Reason)
	return append(b, '}')
}
