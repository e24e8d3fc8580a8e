package client

import (
	"context"
	"sync"

	"clusterchat/proto"

	"clusterchat"
)

// EventKind says what an Event reports.
type EventKind int

// The kinds of Event.
const (
	// EventMessage: a chat message (Message), delivered once, in seq order
	// within its conversation. Sent is true when this Client sent it.
	EventMessage EventKind = iota + 1
	// EventPresence: friend UserID went State (proto.Online or proto.Offline).
	EventPresence
	// EventFriendAdded: UserID (Name, State) became a friend.
	EventFriendAdded
	// EventGroupJoined: UserID (Name) joined group GroupID.
	EventGroupJoined
	// EventRead: another session of this user marked Conv read up to Seq.
	EventRead
	// EventReconnect: the server asked the client to reconnect (Reason).
	// With Options.Reconnect the Client does it by itself; "resync" only
	// triggers a SYNC of every known conversation.
	EventReconnect
	// EventDisconnected: the connection was lost (Err). With
	// Options.Reconnect an EventReconnected follows once it is back.
	EventDisconnected
	// EventReconnected: a new connection is up and logged in with the token
	// (when there was one); catching up has started.
	EventReconnected
	// EventError: something failed outside any call (Err), e.g. a SYNC of
	// Conv the server refused, or an error reply the server sent unasked.
	EventError
	// EventFriend: Action (proto.EvRequest, EvRequested, EvDeclined,
	// EvCanceled, EvRemoved, EvBlocked, EvUnblocked) concerning UserID (Name).
	EventFriend
	// EventGroup: Action (proto.EvInvited, EvAsked, EvLeft, EvRemoved,
	// EvRole with Role, EvUpdated with Group, EvDeleted, EvWithdrawn) in
	// GroupID, concerning UserID (Name).
	EventGroup
	// EventRenamed: UserID (a friend, or the user on another session) is
	// now called Name.
	EventRenamed
)

var kindNames = map[EventKind]string{
	EventMessage: "message", EventPresence: "presence", EventFriendAdded: "friend-added",
	EventGroupJoined: "group-joined", EventRead: "read", EventReconnect: "reconnect",
	EventDisconnected: "disconnected", EventReconnected: "reconnected", EventError: "error",
	EventFriend: "friend", EventGroup: "group", EventRenamed: "renamed",
}

// String names the kind, for logs.
func (k EventKind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "unknown"
}

// Event is something the server (or the connection) did that no call asked
// for. Which fields are set depends on Kind.
type Event struct {
	Kind    EventKind
	Message *clusterchat.Message // EventMessage
	Sent    bool                 // EventMessage: sent by this Client (best effort, see package doc)
	UserID  int64                // presence, friend added, group joined
	Name    string               // friend added, group joined
	State   proto.State          // presence, friend added: proto.Online or proto.Offline
	GroupID int64                // group joined
	Conv    string               // read, error of a sync
	Seq     int64                // read
	Reason  string               // reconnect
	Err     error                // disconnected, error
	Action  string               // friend, group: what happened
	Role    string               // group (role)
	Group   *GroupInfo           // group (updated: the new settings; invited: Name)
}

// eventQueue decouples the read goroutine from the application: pushing
// never blocks (the queue grows), so a slow consumer can never stall reply
// routing and deadlock a caller that waits for a reply inside its handler.
type eventQueue struct {
	mu    sync.Mutex
	items []Event
	wake  chan struct{}
	out   chan Event
}

func newEventQueue() *eventQueue {
	return &eventQueue{wake: make(chan struct{}, 1), out: make(chan Event, 64)}
}

func (q *eventQueue) push(e Event) {
	q.mu.Lock()
	q.items = append(q.items, e)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run moves events to out in push order until ctx ends, then closes out.
func (q *eventQueue) run(ctx context.Context) {
	defer close(q.out)
	var batch []Event
	for {
		q.mu.Lock()
		batch, q.items = q.items, batch[:0]
		q.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-q.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		for i := range batch {
			select {
			case q.out <- batch[i]:
			case <-ctx.Done():
				return
			}
			batch[i] = Event{}
		}
	}
}
