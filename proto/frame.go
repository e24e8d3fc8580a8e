package proto

import (
	"encoding/json"
	"time"

	"clusterchat"
)

// Frame is any object the server sends, as a client decodes it: one struct
// for every reply and event keeps decoding to a single pass. Which fields
// are set depends on MsgID (and Req for msgid 11).
type Frame struct {
	MsgID  int    `json:"msgid"`
	RID    int64  `json:"rid"`
	Req    int    `json:"req"`
	Errno  int    `json:"errno"`
	Errmsg string `json:"errmsg"`
	// RetryMS is a rate-limited request's hint (errno 12): try again after
	// this many milliseconds.
	RetryMS int64 `json:"retry_ms"`

	// login, presence, friend, chat
	ID      int64    `json:"id"`
	Name    string   `json:"name"`
	Token   string   `json:"token"`
	State   State    `json:"state"`
	Friends []Friend `json:"friends"`
	Groups  []Group  `json:"groups"`
	Convs   []Conv   `json:"convs"`

	// chat, ack, sync, read
	MID     int64  `json:"mid"`
	Conv    string `json:"conv"`
	Seq     int64  `json:"seq"`
	TS      int64  `json:"ts"`
	Time    string `json:"time"`
	Dup     bool   `json:"dup"`
	To      int64  `json:"to"`
	GroupID int64  `json:"groupid"`
	Msg     string `json:"msg"`
	Msgs    []Chat `json:"msgs"`
	Last    int64  `json:"last"`
	Joined  bool   `json:"joined"`
	Reason  string `json:"reason"`

	// social (proto/social.go)
	Event     string          `json:"event"`
	Friend    bool            `json:"friend"`
	Role      string          `json:"role"`
	Private   bool            `json:"private"`
	History   string          `json:"history"`
	GroupName string          `json:"groupname"`
	GroupDesc string          `json:"groupdesc"`
	Users     []Member        `json:"users"`
	Requests  []FriendReqInfo `json:"requests"`
	Blocked   []UserRef       `json:"blocked"`
	Pending   []PendingInfo   `json:"pending"`
	From      int64           `json:"from"` // sync page: the first readable seq - 1 (PageReply.From)
}

// Chat is a chat message as the native protocol carries it, live or in a
// page.
type Chat struct {
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

// DecodeFrame parses one object the server sent into f.
func DecodeFrame(b []byte, f *Frame) error {
	*f = Frame{}
	if err := json.Unmarshal(b, f); err != nil {
		return clusterchat.Errorf(clusterchat.EINVALID, "bad frame from the server: %v", err)
	}
	return nil
}

// IsReply tells whether f answers a request (and so carries its rid when
// the request had one).
func (f *Frame) IsReply() bool {
	return f.MsgID == Reply || f.MsgID == LoginAck || f.MsgID == RegisterAck
}

// Err returns the reply's error as *clusterchat.Error, nil on success.
func (f *Frame) Err() error {
	if f.Errno == 0 {
		return nil
	}
	msg := f.Errmsg
	if msg == "" {
		msg = "request failed"
	}
	return &clusterchat.Error{Code: f.Errno, Message: msg, RetryAfter: time.Duration(f.RetryMS) * time.Millisecond}
}

// Chat returns a chat message frame's fields.
func (f *Frame) Chat() *Chat {
	return &Chat{MsgID: f.MsgID, MID: f.MID, Conv: f.Conv, Seq: f.Seq, From: f.ID, Name: f.Name,
		To: f.To, GroupID: f.GroupID, Msg: f.Msg, Time: f.Time, TS: f.TS}
}

// Message returns w as a message.
func (w *Chat) Message() *clusterchat.Message {
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
