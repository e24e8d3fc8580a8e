package clusterchat

import "time"

// RoleAdmin is a group member who may invite, approve join requests, remove
// ordinary members and edit the group; the creator makes and unmakes admins.
// (RoleNormal is the ordinary member: the classic protocol's spelling.)
const RoleAdmin = "admin"

// Group history visibility: what a member who joins reads of the messages
// sent before they joined.
const (
	HistoryJoined = "joined" // only what is sent from their join on (the default)
	HistoryAll    = "all"    // the whole history
)

// Kinds of a pending group membership.
const (
	PendingInvite  = "invite"  // an admin invited the user; the user may accept
	PendingRequest = "request" // the user asked to join; an admin may approve
)

// FriendRequest is a friendship one user asked for and the other has not
// answered yet.
type FriendRequest struct {
	From, To         int64
	FromName, ToName string
	Time             time.Time // when it was asked (millisecond precision)
}

// Pending is an open invitation to a group or an open request to join one:
// at most one per (group, user).
type Pending struct {
	GroupID   int64
	GroupName string
	UserID    int64 // the invited user, or the one asking to join
	UserName  string
	Kind      string // PendingInvite or PendingRequest
	By        int64  // who invited (the user itself for a request)
	Time      time.Time
}

// Access is what a user may read of a group's conversation.
type Access struct {
	// Role is the user's role, "" if the user is not a member now.
	Role string
	// Former tells that the user was a member and left or was removed: it
	// may read (After, Until] and nothing sent later.
	Former bool
	// After: the user reads only messages with a higher seq (their join
	// seq when the group's history is HistoryJoined, else 0).
	After int64
	// Until is, for a former member, the last seq sent before they left.
	Until int64
}

// ReadsNothing tells whether a holds no right to read the conversation at
// all (never a member).
func (a Access) ReadsNothing() bool { return a.Role == "" && !a.Former }

// Clamp bounds a page request (messages with seq > after, or < before when
// before > 0) to what a may read. It returns the bounds to query with, and
// ok false if nothing at all is readable in that range.
func (a Access) Clamp(after, before int64) (int64, int64, bool) {
	after = max(after, a.After)
	if a.Former {
		if before <= 0 || before > a.Until+1 {
			before = a.Until + 1
		}
	}
	if before > 0 && before <= after+1 {
		return after, before, false
	}
	return after, before, true
}

// PrefixEnd returns the smallest string above every string that starts with
// prefix, bytewise; ok is false when there is none (prefix empty or all
// 0xff bytes). Stores use it to turn a name-prefix search into a range.
func PrefixEnd(prefix string) (string, bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// FriendRequestOutcome applies the friend-request rule (Store.RequestFriend)
// to what a store found about from and to: a block either way refuses with
// a generic refusal, an existing friendship or an earlier request of from's
// is EEXISTS, and a request of to's makes them friends (accept is true). With
// none of these, the store records a new request. One rule for every store.
func FriendRequestOutcome(from, to int64, blocked, friends, theyAsked, iAsked bool) (accept bool, err error) {
	switch {
	case blocked:
		return false, Errorf(EFORBIDDEN, "refused")
	case friends:
		return false, Errorf(EEXISTS, "users %d and %d are already friends", from, to)
	case iAsked:
		return false, Errorf(EEXISTS, "already asked %d", to)
	}
	return theyAsked, nil
}
