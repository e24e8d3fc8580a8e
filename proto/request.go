package proto

// Message ids (docs/protocol.md). 1-10 are the classic protocol's.
const (
	Login       = 1
	LoginAck    = 2
	Logout      = 3
	Register    = 4
	RegisterAck = 5
	OneChat     = 6
	AddFriend   = 7
	CreateGroup = 8
	AddGroup    = 9
	GroupChat   = 10
	Reply       = 11
	Presence    = 12
	FriendAdded = 13
	Sync        = 14
	History     = 15
	Read        = 16
	Reconnect   = 17
	Ping        = 18
	GroupJoined = 19
)

// Native is the protocol version a client declares with "proto" to speak the
// native protocol.
const Native = 2

// Request is every field any request may carry; absent fields are zero.
type Request struct {
	MsgID     int    `json:"msgid"`
	RID       int64  `json:"rid"`
	Proto     int    `json:"proto"`
	ID        int64  `json:"id"`
	To        int64  `json:"to"`
	ToID      int64  `json:"toid"`
	Name      string `json:"name"`
	Password  string `json:"password"`
	Token     string `json:"token"`
	Msg       string `json:"msg"`
	Time      string `json:"time"`
	FriendID  int64  `json:"friendid"`
	GroupID   int64  `json:"groupid"`
	GroupName string `json:"groupname"`
	GroupDesc string `json:"groupdesc"`
	CMID      string `json:"cmid"`
	Conv      string `json:"conv"`
	After     int64  `json:"after"`
	Before    int64  `json:"before"`
	Limit     int    `json:"limit"`
	Seq       int64  `json:"seq"`

	// social (proto/social.go)
	Role        string `json:"role"`
	Private     bool   `json:"private"`
	History     string `json:"history"`
	NewPassword string `json:"newpassword"`
	Cursor      string `json:"cursor"`
}

// Recipient returns "to", or "toid" when "to" is absent (some classic
// copies use that name).
func (q *Request) Recipient() int64 {
	if q.To != 0 {
		return q.To
	}
	return q.ToID
}
