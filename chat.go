// Package clusterchat holds the domain of the clusterchat server: users,
// groups, messages, the coded error type, and the interfaces between the
// parts (Store, Broker, Presence) with their optional capabilities.
// Implementations live in one package per technology (sqlite, pebble,
// postgres, inmem, redis); the wire formats in proto; cmd/chatserver wires
// them.
package clusterchat

import (
	"strconv"
	"strings"
	"time"
)

// Group member roles, as the classic protocol spells them.
const (
	RoleCreator = "creator"
	RoleNormal  = "normal"
)

// Limits shared by the server, the stores and the clients.
const (
	MaxNameLen     = 50       // user and group names, in characters
	MaxPasswordLen = 72       // bcrypt ignores bytes beyond 72
	MaxGroupDesc   = 200      // group description, in characters
	MaxFrame       = 64 << 10 // largest JSON value accepted on the wire
	DefaultMaxBody = 4 << 10  // default longest chat text, in bytes
	MaxPageSize    = 200      // most messages returned by one history or sync page
)

// User is a registered account. PassHash never leaves the server.
type User struct {
	ID       int64
	Name     string
	PassHash string
}

// Member is a user's membership in a group.
type Member struct {
	UserID int64
	Name   string
	Role   string
}

// Group is a chat group. Members is filled by the calls that say so.
type Group struct {
	ID      int64
	Name    string
	Desc    string
	Private bool   // joinable only by invitation or an approved request; else by id (classic)
	History string // HistoryJoined or HistoryAll: what a new member reads
	Members []Member
}

// Message is one chat message, 1:1 or group. It is accepted only once the
// store has committed it and assigned ID, Seq and Time.
type Message struct {
	ID       int64     // unique in the store, assigned on append
	Conv     string    // conversation: DirectConv(a,b) or GroupConv(g)
	Seq      int64     // 1, 2, 3... within Conv, no gaps, assigned on append
	From     int64     // the sending session's user, never what the client claims
	FromName string    // the sender's name at the time of sending
	To       int64     // recipient user for 1:1 messages, 0 for group messages
	GroupID  int64     // group for group messages, 0 for 1:1
	Body     string    // the text
	CTime    string    // the classic "time" field: as the client sent it, or server time formatted
	Time     time.Time // server timestamp, assigned on append (millisecond precision)
	CMID     string    // client message id, unique per sender; "" when the client sent none
	Dup      bool      // set by Append when (From, CMID) was already stored: the fields are the original's
}

// IsGroup tells whether m is a group message.
func (m *Message) IsGroup() bool { return m.GroupID != 0 }

// DirectConv names the 1:1 conversation between users a and b; the same for
// both orders.
func DirectConv(a, b int64) string {
	if a > b {
		a, b = b, a
	}
	return "d:" + strconv.FormatInt(a, 10) + ":" + strconv.FormatInt(b, 10)
}

// GroupConv names the conversation of group g.
func GroupConv(g int64) string { return "g:" + strconv.FormatInt(g, 10) }

// ParseConv splits a conversation name. For a direct conversation it returns
// the two users (a < b); for a group, the group id. ok is false on anything else.
func ParseConv(conv string) (a, b, group int64, ok bool) {
	switch {
	case strings.HasPrefix(conv, "d:"):
		x, y, found := strings.Cut(conv[2:], ":")
		if !found {
			return 0, 0, 0, false
		}
		var err1, err2 error
		a, err1 = strconv.ParseInt(x, 10, 64)
		b, err2 = strconv.ParseInt(y, 10, 64)
		if err1 != nil || err2 != nil || a <= 0 || b <= 0 || a >= b || DirectConv(a, b) != conv {
			return 0, 0, 0, false
		}
		return a, b, 0, true
	case strings.HasPrefix(conv, "g:"):
		g, err := strconv.ParseInt(conv[2:], 10, 64)
		if err != nil || g <= 0 || GroupConv(g) != conv {
			return 0, 0, 0, false
		}
		return 0, 0, g, true
	}
	return 0, 0, 0, false
}

// ConvState is a user's position in one conversation.
type ConvState struct {
	Conv      string
	LastSeq   int64 // the conversation's newest message (0: none yet)
	Delivered int64 // highest seq written to one of the user's sessions or fetched at login
	Read      int64 // highest seq the user marked read or sent
}

// Cursor moves a user's delivered or read position in a conversation.
type Cursor struct {
	User int64
	Conv string
	Seq  int64
}

// TimeFormat is the classic protocol's "time" layout.
const TimeFormat = "2006-01-02 15:04:05"
