package clusterchat

import "strconv"

// Channel is what a Broker carries payloads on: one user's (deliveries to
// all of the user's sessions, friend and presence events) or one group's
// (its messages and join events). It is a value, so the receiving side
// learns whose channel it is without parsing a name back.
type Channel struct {
	Group bool  // a group's channel; a user's otherwise
	ID    int64 // the user's or the group's id
}

// UserChannel is the channel of user uid.
func UserChannel(uid int64) Channel { return Channel{ID: uid} }

// GroupChannel is the channel of group gid.
func GroupChannel(gid int64) Channel { return Channel{Group: true, ID: gid} }

// String is the channel's name where a broker needs one: "u:ID" or "g:ID".
func (c Channel) String() string {
	if c.Group {
		return "g:" + strconv.FormatInt(c.ID, 10)
	}
	return "u:" + strconv.FormatInt(c.ID, 10)
}
