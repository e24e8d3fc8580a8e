package client

import (
	"context"

	"clusterchat"
	"clusterchat/proto"
)

// The social calls (issue 11): friendship by consent, blocks, people
// search, account changes and group administration. Each returns once the
// server has stored the change; the other side's sessions get events
// (EventFriend, EventGroup, EventRenamed, EventFriendAdded,
// EventGroupJoined).

// FriendRequest is an open friend request (From asked To).
type FriendRequest = proto.FriendReqInfo

// UserRef is a user found by a search, or blocked.
type UserRef = proto.UserRef

// Pending is an open group invitation (Kind "invite") or request to join
// (Kind "request").
type Pending = proto.PendingInfo

// SocialState is what Social returns.
type SocialState struct {
	Requests []FriendRequest // sent and received
	Blocked  []UserRef
	Pending  []Pending // the user's invitations and requests
}

// GroupInfo is a group's settings and members as GroupInfo returns them.
type GroupInfo struct {
	ID      int64
	Name    string
	Desc    string
	Private bool
	History string
	Role    string        // the asking user's role
	Members []GroupMember // roles; State is live only for friends
	Pending []Pending     // for admins
}

// RequestFriend asks id for friendship. friends is true when id had asked
// first: the two are friends now and f.State is id's presence; otherwise
// the request waits for id (f.State is empty).
func (c *Client) RequestFriend(ctx context.Context, id int64) (friends bool, f *Friend, err error) {
	r, err := c.request(ctx, &proto.UserOpReq{Op: proto.FriendRequest, ID: id})
	if err != nil {
		return false, nil, err
	}
	return r.Friend, &Friend{ID: r.ID, Name: r.Name, State: r.State}, nil
}

// AcceptFriend accepts id's request: they are friends now.
func (c *Client) AcceptFriend(ctx context.Context, id int64) (*Friend, error) {
	r, err := c.request(ctx, &proto.UserOpReq{Op: proto.FriendAccept, ID: id})
	if err != nil {
		return nil, err
	}
	return &Friend{ID: r.ID, Name: r.Name, State: r.State}, nil
}

func (c *Client) userOp(ctx context.Context, op int, id int64) error {
	_, err := c.request(ctx, &proto.UserOpReq{Op: op, ID: id})
	return err
}

// DeclineFriend declines id's request.
func (c *Client) DeclineFriend(ctx context.Context, id int64) error {
	return c.userOp(ctx, proto.FriendDecline, id)
}

// CancelFriend withdraws the user's request to id.
func (c *Client) CancelFriend(ctx context.Context, id int64) error {
	return c.userOp(ctx, proto.FriendCancel, id)
}

// RemoveFriend ends the friendship with id.
func (c *Client) RemoveFriend(ctx context.Context, id int64) error {
	return c.userOp(ctx, proto.FriendRemove, id)
}

// Block blocks id: their messages and requests are refused, they see no
// presence of the user, and a friendship with them ends.
func (c *Client) Block(ctx context.Context, id int64) error { return c.userOp(ctx, proto.Block, id) }

// Unblock unblocks id.
func (c *Client) Unblock(ctx context.Context, id int64) error {
	return c.userOp(ctx, proto.Unblock, id)
}

// Social returns the user's open friend requests, blocked users and group
// invitations and requests.
func (c *Client) Social(ctx context.Context) (*SocialState, error) {
	r, err := c.request(ctx, &proto.SocialStateReq{})
	if err != nil {
		return nil, err
	}
	return &SocialState{Requests: r.Requests, Blocked: r.Blocked, Pending: r.Pending}, nil
}

// SearchUsers returns up to limit users whose name starts with prefix,
// after cursor (the last name of the previous page, "" first). The server
// limits how often a session may search (ERATELIMIT).
func (c *Client) SearchUsers(ctx context.Context, prefix, cursor string, limit int) ([]UserRef, error) {
	r, err := c.request(ctx, &proto.SearchReq{Prefix: prefix, Cursor: cursor, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]UserRef, 0, len(r.Users))
	for _, u := range r.Users {
		out = append(out, UserRef{ID: u.ID, Name: u.Name})
	}
	return out, nil
}

// SetName changes the user's display name.
func (c *Client) SetName(ctx context.Context, name string) error {
	if _, err := c.request(ctx, &proto.SetNameReq{Name: name}); err != nil {
		return err
	}
	c.mu.Lock()
	c.name = name
	c.mu.Unlock()
	return nil
}

// SetPassword changes the user's password (old is the current one). The
// server revokes every session token of the account with it and ends the
// user's other sessions; this one gets a new token (Token).
func (c *Client) SetPassword(ctx context.Context, old, new string) error {
	f, err := c.request(ctx, &proto.SetPasswordReq{Password: old, NewPassword: new})
	if err != nil {
		return err
	}
	if f.Token != "" {
		c.mu.Lock()
		c.token = f.Token
		c.mu.Unlock()
	}
	return nil
}

// NewGroup creates a group with settings: private groups are joined by
// invitation or an approved request; history is clusterchat.HistoryJoined
// ("" too) or HistoryAll.
func (c *Client) NewGroup(ctx context.Context, name, desc string, private bool, history string) (int64, error) {
	r, err := c.request(ctx, &proto.NewGroupReq{Name: name, Desc: desc, Private: private, History: history})
	if err != nil {
		return 0, err
	}
	return r.GroupID, nil
}

// GroupInfo returns a group the user is a member of.
func (c *Client) GroupInfo(ctx context.Context, gid int64) (*GroupInfo, error) {
	r, err := c.request(ctx, &proto.GroupOpReq{Op: proto.GroupInfo, GroupID: gid})
	if err != nil {
		return nil, err
	}
	return &GroupInfo{ID: r.GroupID, Name: r.GroupName, Desc: r.GroupDesc, Private: r.Private, History: r.History,
		Role: r.Role, Members: r.Users, Pending: r.Pending}, nil
}

func (c *Client) groupOp(ctx context.Context, op int, gid, id int64, role string) (*proto.Frame, error) {
	return c.request(ctx, &proto.GroupOpReq{Op: op, GroupID: gid, ID: id, Role: role})
}

// Invite invites id to group gid (admins, or any member of a public group).
// Inviting someone who asked to join admits them.
func (c *Client) Invite(ctx context.Context, gid, id int64) error {
	_, err := c.groupOp(ctx, proto.GroupInvite, gid, id, "")
	return err
}

// AskToJoin joins group gid when it is public or the user is invited
// (joined true), else asks its admins.
func (c *Client) AskToJoin(ctx context.Context, gid int64) (joined bool, err error) {
	r, err := c.groupOp(ctx, proto.GroupAsk, gid, 0, "")
	if err != nil {
		return false, err
	}
	return r.Joined, nil
}

// Approve admits id, who asked to join gid (admins).
func (c *Client) Approve(ctx context.Context, gid, id int64) error {
	_, err := c.groupOp(ctx, proto.GroupApprove, gid, id, "")
	return err
}

// RemoveMember removes member id from gid, or refuses their request, or
// withdraws their invitation (admins).
func (c *Client) RemoveMember(ctx context.Context, gid, id int64) error {
	_, err := c.groupOp(ctx, proto.GroupRemove, gid, id, "")
	return err
}

// LeaveGroup leaves gid, or withdraws the user's request, or declines an
// invitation.
func (c *Client) LeaveGroup(ctx context.Context, gid int64) error {
	if _, err := c.groupOp(ctx, proto.GroupLeave, gid, 0, ""); err != nil {
		return err
	}
	c.forgetConv(clusterchat.GroupConv(gid))
	return nil
}

// SetRole makes member id of gid an admin or a normal member (creator).
func (c *Client) SetRole(ctx context.Context, gid, id int64, role string) error {
	_, err := c.groupOp(ctx, proto.GroupRole, gid, id, role)
	return err
}

// UpdateGroup sets every setting of gid (admins).
func (c *Client) UpdateGroup(ctx context.Context, gid int64, name, desc string, private bool, history string) error {
	_, err := c.request(ctx, &proto.GroupUpdateReq{GroupID: gid, Name: name, Desc: desc, Private: private, History: history})
	return err
}

// DeleteGroup deletes gid (creator).
func (c *Client) DeleteGroup(ctx context.Context, gid int64) error {
	if _, err := c.groupOp(ctx, proto.GroupDelete, gid, 0, ""); err != nil {
		return err
	}
	c.forgetConv(clusterchat.GroupConv(gid))
	return nil
}

// forgetConv stops following a conversation the user left: nothing more
// arrives for it, and catching up must not ask for it.
func (c *Client) forgetConv(conv string) {
	c.mu.Lock()
	delete(c.convs, conv)
	c.mu.Unlock()
}

// onSocial turns a social event into an Event.
func (c *Client) onSocial(f *proto.Frame) {
	switch f.MsgID {
	case proto.FriendEvent:
		c.events.push(Event{Kind: EventFriend, Action: f.Event, UserID: f.ID, Name: f.Name})
	case proto.GroupEvent:
		if f.Event == proto.EvDeleted || ((f.Event == proto.EvRemoved || f.Event == proto.EvLeft) && f.ID == c.userID()) {
			c.forgetConv(clusterchat.GroupConv(f.GroupID))
		}
		c.events.push(Event{Kind: EventGroup, Action: f.Event, GroupID: f.GroupID, UserID: f.ID, Name: f.Name, Role: f.Role,
			Group: &GroupInfo{ID: f.GroupID, Name: f.GroupName, Desc: f.GroupDesc, Private: f.Private, History: f.History}})
	case proto.UserEvent:
		c.events.push(Event{Kind: EventRenamed, UserID: f.ID, Name: f.Name})
	}
}

func (c *Client) userID() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.uid
}
