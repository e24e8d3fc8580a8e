package clusterchat

import (
	"context"
	"time"
)

// Store is the source of truth: accounts, friendships, groups, the message
// log and every user's cursors. Implementations: sqlite.Store (embedded, one
// process, the default), pebble.Store (embedded key-value, one process, the
// fastest single node) and postgres.Store (shared by the servers of a
// cluster). The conformance suite in storetest runs against all three.
//
// Guarantees every implementation gives:
//   - every call is atomic: it is wholly done or not at all;
//   - errors are *Error with the codes named below; an unreachable database
//     is EUNAVAILABLE; anything else unexpected may be a plain error;
//   - it is safe for concurrent use, also by several processes sharing one
//     database (postgres).
type Store interface {
	// CreateUser stores a new account and returns its id (ids start at 1).
	// EEXISTS if the name is taken.
	CreateUser(ctx context.Context, name, passHash string) (int64, error)
	// User returns an account. ENOTFOUND if there is none.
	User(ctx context.Context, id int64) (*User, error)

	// AddFriend makes a and b friends of each other, both rows in one
	// transaction. ENOTFOUND if either user is missing, EEXISTS if they are
	// already friends.
	AddFriend(ctx context.Context, a, b int64) error
	// Friends returns the friends of uid (PassHash empty), ordered by id.
	Friends(ctx context.Context, uid int64) ([]User, error)

	// CreateGroup stores a public group (History HistoryJoined) with
	// creator as its only member, role RoleCreator, and returns its id. EEXISTS if the name is taken,
	// ENOTFOUND if creator does not exist.
	CreateGroup(ctx context.Context, creator int64, name, desc string) (int64, error)
	// JoinGroup adds uid to group gid with RoleNormal and reports whether it
	// was added (false: already a member, nothing changed). The new member's
	// delivered and read cursors start at the group's last seq, so joining
	// does not flood them with history as "missed"; that seq is also the
	// join seq Access reports. A pending invitation or request of uid to
	// gid is dropped. It does not check Private: the caller did. ENOTFOUND
	// if the group or the user does not exist.
	JoinGroup(ctx context.Context, gid, uid int64) (bool, error)
	// Group returns a group with its settings and members (names and
	// roles, ordered by user id). ENOTFOUND if there is none.
	Group(ctx context.Context, gid int64) (*Group, error)
	// UserGroups returns the groups uid belongs to, each with its members,
	// ordered by group id.
	UserGroups(ctx context.Context, uid int64) ([]Group, error)
	// Role returns uid's role in gid, "" if uid is not a member. ENOTFOUND if
	// the group does not exist.
	Role(ctx context.Context, gid, uid int64) (string, error)

	// Append commits msgs in one transaction, in order. For each message
	// with a CMID already stored for the same From, it fills the message
	// with the stored original (ID, Conv, Seq, Time, Body...), sets Dup and
	// stores nothing. Every other message gets the next Seq of its Conv
	// (contiguous, no gaps, also when several processes append to the same
	// Conv at once), a new ID and Time (now, millisecond precision; CTime is
	// kept as given). For a 1:1 message, both users become participants of
	// the conversation (see Convs). Each sender's read cursor of a
	// conversation moves to its last message there in the same commit (a
	// sender has read what it answers, and its own messages are not
	// unread); delivered cursors do not move (a message still on its way
	// to the sender is not delivered because the sender wrote after it).
	// A sender not part of the conversation gets no cursor. Append does
	// not check that users or groups exist nor membership: the caller did.
	Append(ctx context.Context, msgs []*Message) error
	// Since returns up to limit messages of conv with Seq > after, in
	// ascending Seq.
	Since(ctx context.Context, conv string, after int64, limit int) ([]*Message, error)
	// Before returns the newest messages of conv with Seq < before (before
	// <= 0: from the end), at most limit, in ascending Seq.
	Before(ctx context.Context, conv string, before int64, limit int) ([]*Message, error)
	// Convs returns uid's state in every conversation it takes part in:
	// its groups, and every 1:1 conversation with at least one message.
	// Ordered by Conv.
	Convs(ctx context.Context, uid int64) ([]ConvState, error)
	// LastSeq returns the Seq of conv's newest message, 0 if it has none
	// (or no such conversation exists). One read, whatever the number of
	// conversations of its users: HISTORY and SYNC ask it.
	LastSeq(ctx context.Context, conv string) (int64, error)
	// Undelivered returns up to limit messages not sent by uid with Seq above
	// uid's delivered cursor of their conversation, over all its
	// conversations, ordered by ID. It moves no cursor.
	Undelivered(ctx context.Context, uid int64, limit int) ([]*Message, error)
	// MarkDelivered raises delivered cursors: each to max(current, Seq).
	// A cursor for a conversation the user is not part of is ignored.
	MarkDelivered(ctx context.Context, cursors []Cursor) error
	// MarkRead raises read cursors (and delivered ones with them) to
	// max(current, Seq).
	MarkRead(ctx context.Context, cursors []Cursor) error

	// PutToken stores a session token (by its hash) for uid until expires.
	PutToken(ctx context.Context, tokenHash string, uid int64, expires time.Time) error
	// TokenUser returns the user of an unexpired token. EAUTH otherwise.
	TokenUser(ctx context.Context, tokenHash string) (int64, error)
	// RenewToken moves an unexpired token's expiry to expires (sliding
	// renewal on use). EAUTH if the token is unknown or expired: a revoked
	// token is never brought back.
	RenewToken(ctx context.Context, tokenHash string, expires time.Time) error
	// DeleteToken revokes one token (logout). Deleting an unknown token is
	// not an error.
	DeleteToken(ctx context.Context, tokenHash string) error
	// DeleteUserTokens revokes every token of uid (log out everywhere).
	DeleteUserTokens(ctx context.Context, uid int64) error
	// DeleteExpiredTokens deletes the tokens that expired at or before now
	// and returns how many.
	DeleteExpiredTokens(ctx context.Context, now time.Time) (int64, error)
	// SetPassword replaces uid's password hash and revokes every token of
	// uid, in one transaction: a new password ends every session that the
	// old one opened. ENOTFOUND if there is no such user.
	SetPassword(ctx context.Context, uid int64, passHash string) error

	// Social: friendship by consent, blocks, group administration and
	// account changes. Every call is atomic like the rest.

	// AreFriends tells whether a and b are friends.
	AreFriends(ctx context.Context, a, b int64) (bool, error)
	// RequestFriend records from's request for `to`'s friendship. If `to` had
	// already asked from, the two become friends instead (that request is gone) and
	// friends is true. ENOTFOUND if either user is missing, EEXISTS if they
	// are friends or from asked already, EFORBIDDEN if either blocks the
	// other, EINVALID if from == to.
	RequestFriend(ctx context.Context, from, to int64) (friends bool, err error)
	// AcceptFriend answers the request of from to uid: they become friends.
	// ENOTFOUND if there is no such request.
	AcceptFriend(ctx context.Context, uid, from int64) error
	// DeleteFriendRequest drops the request of from to `to` (declined by
	// `to` or cancelled by from). ENOTFOUND if there is none.
	DeleteFriendRequest(ctx context.Context, from, to int64) error
	// FriendRequests returns the open requests uid sent or received,
	// ordered by (From, To).
	FriendRequests(ctx context.Context, uid int64) ([]FriendRequest, error)
	// RemoveFriend ends the friendship of a and b, both ways. ENOTFOUND if
	// they are not friends.
	RemoveFriend(ctx context.Context, a, b int64) error

	// Block makes uid block target: it also ends their friendship and
	// drops friend requests between them. EEXISTS if already blocked,
	// ENOTFOUND if target does not exist, EINVALID if uid == target.
	Block(ctx context.Context, uid, target int64) error
	// Unblock undoes Block (the friendship stays ended). ENOTFOUND if uid
	// does not block target.
	Unblock(ctx context.Context, uid, target int64) error
	// Blocked returns the users uid blocks (PassHash empty), ordered by id.
	Blocked(ctx context.Context, uid int64) ([]User, error)
	// IsBlocked tells whether blocker blocks target.
	IsBlocked(ctx context.Context, blocker, target int64) (bool, error)

	// NewGroup is CreateGroup with the settings of g (Name, Desc, Private,
	// History; an empty History is HistoryJoined).
	NewGroup(ctx context.Context, creator int64, g Group) (int64, error)
	// UpdateGroup sets the Name, Desc, Private and History of group g.ID.
	// ENOTFOUND if there is none, EEXISTS if the name is another group's.
	UpdateGroup(ctx context.Context, g Group) error
	// DeleteGroup deletes a group with its memberships, pending
	// invitations and requests and its members' cursors. Its messages
	// become unreachable (group ids are never reused). ENOTFOUND if none.
	DeleteGroup(ctx context.Context, gid int64) error
	// SetRole sets uid's role in gid. ENOTFOUND if uid is not a member.
	SetRole(ctx context.Context, gid, uid int64, role string) error
	// LeaveGroup ends uid's membership of gid (it left or was removed):
	// its cursor of the group is dropped (nothing more is undelivered to
	// it) and Access keeps what it may still read: nothing sent after
	// this call. ENOTFOUND if uid is not a member.
	LeaveGroup(ctx context.Context, gid, uid int64) error
	// Access returns what uid may read of gid (see Access). ENOTFOUND if
	// the group does not exist.
	Access(ctx context.Context, gid, uid int64) (Access, error)
	// AddPending records an invitation or join request (p.GroupID,
	// p.UserID, p.Kind, p.By; Time and names are filled by the store).
	// ENOTFOUND if the group or user is missing, EEXISTS if the user is a
	// member or already has one pending for the group.
	AddPending(ctx context.Context, p Pending) error
	// DeletePending drops the pending invitation or request of uid to gid.
	// ENOTFOUND if there is none.
	DeletePending(ctx context.Context, gid, uid int64) error
	// GroupPending returns the pending invitations and requests of gid,
	// ordered by user id.
	GroupPending(ctx context.Context, gid int64) ([]Pending, error)
	// UserPending returns uid's pending invitations and requests, ordered
	// by group id.
	UserPending(ctx context.Context, uid int64) ([]Pending, error)

	// SearchUsers returns up to limit users whose name starts with prefix
	// (bytewise, case-sensitive) and sorts after `after` (bytewise; "" for
	// the first page), ordered by name, PassHash empty.
	SearchUsers(ctx context.Context, prefix, after string, limit int) ([]User, error)
	// SetUserName renames uid. ENOTFOUND if there is no such user, EEXISTS
	// if the name is another user's.
	SetUserName(ctx context.Context, uid int64, name string) error

	// Ping checks that the database answers (for /readyz).
	Ping(ctx context.Context) error
	// Close releases the store; it waits for calls in progress.
	Close() error
}

// NetworkStore is the optional capability of a Store reached over a network
// (postgres). Its calls can fail transiently (IsTransient), and an Append
// that failed so may have committed all the same: the connection can break
// after the commit, before its answer. The server therefore gives every
// message a CMID before the first attempt (one of its own making when the
// client sent none) and retries with the same CMIDs, so that each message is
// stored once. Embedded stores know the outcome of every Append and are
// spared those keys (an index entry per message).
type NetworkStore interface {
	// Networked reports whether the Store's calls cross a network.
	Networked() bool
}

// BackupStore is the optional capability of an embedded Store (sqlite,
// pebble) to copy itself while in use: `chatserver backup` and the
// server's POST /debug/backup. A networked store has its own tools
// (pg_dump, pg_basebackup).
type BackupStore interface {
	Store
	// Backup writes a consistent copy of the store, which Open of the same
	// package accepts, to dest; dest must not exist.
	Backup(ctx context.Context, dest string) error
}
