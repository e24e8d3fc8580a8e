// Package client is the Go client of clusterchat: one device's connection
// over TCP speaking the native protocol ("proto":2, docs/protocol.md). The
// tests, cmd/chatclient and the benchmark use it.
//
// # Calls
//
// Dial connects; Register, Login (or LoginToken), then Send, SendGroup,
// AddFriend, CreateGroup, JoinGroup, History, MarkRead, Sync, Logout. Every
// call is one request with a fresh rid and waits for its reply, for ctx, or
// for Options.RequestTimeout per attempt. Failures are *clusterchat.Error:
// the server's errno and errmsg as sent, or EUNAVAILABLE for a lost
// connection, a timeout (the request may or may not have been done) or a
// closed Client. Everything else the server sends arrives on Events.
//
// # Delivery guarantees
//
// For every conversation the Client keeps a cursor, the last seq it applied,
// and emits EventMessage so that, per conversation:
//   - every message is emitted exactly once, in seq order, with no gap: a
//     live message seq == cursor+1 is emitted at once; seq <= cursor is a
//     duplicate and dropped; seq > cursor+1 is held while SYNC fetches the
//     gap, and then everything comes out in order;
//   - after Login (and after every reconnect) each conversation of the login
//     reply whose last seq is beyond the cursor is caught up with SYNC, and
//     live messages of that conversation are held until it is, so missed
//     messages come before live ones. Synced waits for that;
//   - the device's own messages are part of its log. A message this Client
//     sent is emitted (Sent true) when its ack arrives and seq == cursor+1;
//     otherwise the ack is held like a live message and the gap is fetched,
//     so the own message comes out in its place. Sent is best effort: if a
//     sync page delivers the message before its ack arrives it is emitted
//     with Sent false (it is still emitted exactly once). Messages sent by
//     the same user on other devices arrive like anyone else's.
//
// A live message that is lost with no later message in its conversation
// reveals no gap: it arrives with the next message, the next reconnect, a
// "resync" notice, Sync, or the periodic sync of Options.SyncInterval.
//
// Cursors live in memory; Cursors returns them and Options.Cursors restores
// them, so a program that persists them resumes where it stopped. Without
// cursors a new device fetches the whole log of each conversation, unless
// Options.FromRead starts it at the user's read marker. A conversation the
// Client first hears of after login (a new peer, a joined group) starts at 0:
// its earlier messages are fetched when its first live message arrives.
//
// # Sending
//
// Send and SendGroup give each message a cmid, the DeviceID and a counter,
// and retry with the SAME cmid after a timeout, an "unavailable" reply, or
// (with Options.Reconnect) a connection loss once reconnected, until ctx
// ends. The server stores a cmid once and answers a resend with the original
// ack (Dup), so a message is stored at most once and, when Send returns nil,
// exactly once. A Send whose ctx ended may or may not have been stored.
//
// # Reconnecting
//
// With Options.Reconnect, a lost connection or a RECONNECT event (msgid 17)
// makes the Client dial the addresses (Dial's, then Options.Addrs) round
// robin with jittered exponential backoff, log in with its token, and catch
// up as after Login. Calls made meanwhile wait for the new connection (or
// their ctx). EventDisconnected and EventReconnected report it. A RECONNECT
// with reason "resync" only syncs every known conversation.
//
// # Concurrency
//
// A Client is safe for concurrent use. One goroutine per connection reads
// and routes replies by rid; events go through an unbounded queue to the
// Events channel, so a slow consumer never blocks replies (but holds memory
// until it reads). Lock order: Client.mu, then conn.mu or the event queue's
// lock; the socket write lock is never held with either. Close stops every
// goroutine the Client started and closes Events.
package client
