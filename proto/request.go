package proto

import (
	"encoding/json"
	"errors"
	"fmt"

	"clusterchat"
)

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
}

// Recipient returns "to", or "toid" when "to" is absent (some classic
// copies use that name).
func (q *Request) Recipient() int64 {
	if q.To != 0 {
		return q.To
	}
	return q.ToID
}

// Decode parses one frame into q. On failure it returns an *clusterchat.Error
// (EINVALID) and fills as much of q as it could, so the error reply can name
// the msgid and rid it answers.
func Decode(frame []byte, q *Request) error {
	*q = Request{}
	if len(frame) == 0 || frame[0] != '{' {
		return clusterchat.Errorf(clusterchat.EINVALID, "a request must be a JSON object")
	}
	err := json.Unmarshal(frame, q)
	if err == nil {
		if q.MsgID == 0 {
			return clusterchat.Errorf(clusterchat.EINVALID, "missing msgid")
		}
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		// Unmarshal went on past the bad field, so msgid and rid are set when
		// they were well typed.
		return clusterchat.Errorf(clusterchat.EINVALID, "field %q has the wrong type or is out of range", te.Field)
	}
	// Malformed JSON: try to salvage msgid and rid for the reply.
	return clusterchat.Errorf(clusterchat.EINVALID, "malformed JSON: %s", shortSyntax(err))
}

func shortSyntax(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at offset %d", se.Error(), se.Offset)
	}
	return err.Error()
}
