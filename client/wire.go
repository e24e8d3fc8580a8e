package client

import (
	"bufio"
	"io"
	"time"

	"clusterchat"
)

// Native protocol message ids (docs/protocol.md).
const (
	msgLogin       = 1
	msgLoginAck    = 2
	msgLogout      = 3
	msgReg         = 4
	msgRegAck      = 5
	msgOneChat     = 6
	msgAddFriend   = 7
	msgCreateGroup = 8
	msgAddGroup    = 9
	msgGroupChat   = 10
	msgReply       = 11
	msgPresence    = 12
	msgFriendAdded = 13
	msgSync        = 14
	msgHistory     = 15
	msgRead        = 16
	msgReconnect   = 17
	msgPing        = 18
	msgGroupJoined = 19
)

// Friend is one entry of a login's friend list.
type Friend struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"` // "online" or "offline", live at login
}

// GroupMember is one member of a group as a login reply lists it.
type GroupMember struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"`
	Role  string `json:"role"` // clusterchat.RoleCreator or RoleNormal
}

// Group is a group the user belongs to, with its members.
type Group struct {
	ID      int64         `json:"id"`
	Name    string        `json:"groupname"`
	Desc    string        `json:"groupdesc"`
	Members []GroupMember `json:"users"`
}

// Conv is the user's state in one conversation at login.
type Conv struct {
	Conv   string `json:"conv"`   // "d:A:B" or "g:G"
	Last   int64  `json:"last"`   // the conversation's newest seq
	Read   int64  `json:"read"`   // the user's read marker
	Unread int64  `json:"unread"` // messages from others after the read marker
}

// LoginInfo is what a successful login returns.
type LoginInfo struct {
	ID      int64
	Name    string
	Token   string // resumes the session without the password (LoginToken)
	Friends []Friend
	Groups  []Group
	Convs   []Conv
}

// wireMsg is a chat message as the server sends it, live or in a page.
type wireMsg struct {
	MsgID   int    `json:"msgid"`
	MID     int64  `json:"mid"`
	Conv    string `json:"conv"`
	Seq     int64  `json:"seq"`
	From    int64  `json:"id"`
	Name    string `json:"name"`
	To      int64  `json:"to"`
	GroupID int64  `json:"groupid"`
	Msg     string `json:"msg"`
	Time    string `json:"time"`
	TS      int64  `json:"ts"`
}

func (w *wireMsg) message() *clusterchat.Message {
	m := &clusterchat.Message{
		ID: w.MID, Conv: w.Conv, Seq: w.Seq, From: w.From, FromName: w.Name,
		To: w.To, GroupID: w.GroupID, Body: w.Msg, CTime: w.Time,
	}
	if w.TS != 0 {
		m.Time = time.UnixMilli(w.TS)
	}
	if m.GroupID != 0 {
		m.To = 0
	}
	return m
}

// frame is any object the server sends; one struct for all of them keeps
// decoding to a single pass without reflection on maps.
type frame struct {
	MsgID  int    `json:"msgid"`
	RID    int64  `json:"rid"`
	Req    int    `json:"req"`
	Errno  int    `json:"errno"`
	Errmsg string `json:"errmsg"`

	// login, presence, friend, chat
	ID      int64    `json:"id"`
	Name    string   `json:"name"`
	Token   string   `json:"token"`
	State   string   `json:"state"`
	Friends []Friend `json:"friends"`
	Groups  []Group  `json:"groups"`
	Convs   []Conv   `json:"convs"`

	// chat, ack, sync, read
	MID     int64     `json:"mid"`
	Conv    string    `json:"conv"`
	Seq     int64     `json:"seq"`
	TS      int64     `json:"ts"`
	Time    string    `json:"time"`
	Dup     bool      `json:"dup"`
	To      int64     `json:"to"`
	GroupID int64     `json:"groupid"`
	Msg     string    `json:"msg"`
	Msgs    []wireMsg `json:"msgs"`
	Last    int64     `json:"last"`
	Joined  bool      `json:"joined"`
	Reason  string    `json:"reason"`
}

func (f *frame) err() error {
	if f.Errno == 0 {
		return nil
	}
	msg := f.Errmsg
	if msg == "" {
		msg = "request failed"
	}
	return &clusterchat.Error{Code: f.Errno, Message: msg}
}

func (f *frame) chat() *wireMsg {
	return &wireMsg{MsgID: f.MsgID, MID: f.MID, Conv: f.Conv, Seq: f.Seq, From: f.ID, Name: f.Name,
		To: f.To, GroupID: f.GroupID, Msg: f.Msg, Time: f.Time, TS: f.TS}
}

// nulReader turns the NUL separators some peers put between objects into
// spaces, which encoding/json skips; a NUL can never appear inside valid
// JSON text (it must be escaped in strings), so nothing else changes.
type nulReader struct{ r *bufio.Reader }

func (n nulReader) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	for i := range p[:k] {
		if p[i] == 0 {
			p[i] = ' '
		}
	}
	return k, err
}

var _ io.Reader = nulReader{}
