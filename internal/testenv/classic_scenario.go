package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// ClassicSetup says where RunClassicScenarios runs. The target logs in at
// Target; sender i connects to Senders[i%len(Senders)], so senders on other
// servers than the target's make the scenarios cross servers.
type ClassicSetup struct {
	Target  string
	Senders []string
	// Committed returns how many chat messages the servers have committed
	// in all (a classic sender gets no acknowledgement).
	Committed func(tb testing.TB) float64
	// Stall, when set, runs before each of the target's reads (n counts
	// them), so that several objects can wait in its socket when it reads:
	// the case that breaks the original client unless objects are framed
	// for it.
	Stall func(n int)
}

// ClassicReaders are the ways the scenarios' target reads: as fast as it
// can, like the original client; with a pause now and then, so that many
// objects wait in its socket when it reads (the case a read while two
// writes land stands for); and with one long pause in the burst, so that
// its receive window fills and the server must hold records back. Through
// a proxy only the first applies (docs/protocol.md: the proxy's leg).
var ClassicReaders = []struct {
	Name  string
	Stall func(n int)
}{
	{"fast reader", nil},
	{"stalling reader", func(n int) {
		if n%25 == 24 {
			time.Sleep(30 * time.Millisecond) // let records pile up in the socket
		}
	}},
	{"lagging reader", func(n int) {
		if n == 90 { // in the burst
			time.Sleep(500 * time.Millisecond) // let the burst fill the receive window
		}
	}},
}

// recvTimeout bounds one read of a scenario; a passing run never waits it.
const recvTimeout = 20 * time.Second

// classicUser is one registered user and its emulating client.
type classicUser struct {
	id    int64
	name  string
	c     *ClassicClient
	reads int
	stall func(int)
}

func register(tb testing.TB, addr, name string) *classicUser {
	tb.Helper()
	u := &classicUser{name: name, c: DialClassic(tb, addr)}
	u.send(tb, `{"msgid":4,"name":%q,"password":"pw"}`, name)
	var ack struct{ Errno, ID int64 }
	u.recvJSON(tb, &ack)
	if ack.Errno != 0 || ack.ID <= 0 {
		tb.Fatalf("register %s: %+v", name, ack)
	}
	u.id = ack.ID
	return u
}

func (u *classicUser) send(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if err := u.c.Send(fmt.Sprintf(format, args...)); err != nil {
		tb.Fatalf("%s: send: %v", u.name, err)
	}
}

func (u *classicUser) recv(tb testing.TB) string {
	tb.Helper()
	if u.stall != nil {
		u.stall(u.reads)
	}
	u.reads++
	obj, err := u.c.Recv(recvTimeout)
	if err != nil {
		tb.Fatalf("%s, read %d: the original client would fail here: %v", u.name, u.reads, err)
	}
	return obj
}

func (u *classicUser) recvJSON(tb testing.TB, v any) string {
	tb.Helper()
	obj := u.recv(tb)
	if err := json.Unmarshal([]byte(obj), v); err != nil {
		tb.Fatalf("%s: %s: %v", u.name, obj, err)
	}
	return obj
}

// classicLoginReply is a classic login reply as the original reads it.
type classicLoginReply struct {
	MsgID, Errno int64
	Groups       []string
	OfflineMsg   []string `json:"offlinemsg"`
}

// login logs u in on its connection and checks that the reply fits one
// read with room for the NUL.
func (u *classicUser) login(tb testing.TB) classicLoginReply {
	tb.Helper()
	u.send(tb, `{"msgid":1,"id":%d,"password":"pw"}`, u.id)
	var r classicLoginReply
	raw := u.recvJSON(tb, &r)
	if r.MsgID != 2 || r.Errno != 0 {
		tb.Fatalf("%s: login reply %s", u.name, raw)
	}
	return r
}

// loggedOut waits until u's logout has been handled: a classic logout has
// no reply, so it sends a login with a wrong password, answered in order
// after it.
func (u *classicUser) loggedOut(tb testing.TB) {
	tb.Helper()
	u.send(tb, `{"msgid":1,"id":%d,"password":"wrong"}`, u.id)
	var r struct{ MsgID, Errno int64 }
	if raw := u.recvJSON(tb, &r); r.MsgID != 2 || r.Errno != 1 {
		tb.Fatalf("%s: expected the failed login's reply, got %s", u.name, raw)
	}
}

// chat reads the next object, which must be a chat message.
func (u *classicUser) chat(tb testing.TB) ClassicChat {
	tb.Helper()
	m, err := ParseClassicChat(u.recv(tb))
	if err != nil {
		tb.Fatalf("%s: %v", u.name, err)
	}
	return m
}

// tally checks that messages arrive exactly once and, per sender and kind,
// in the order sent (bodies are "KIND-SENDER-N").
type tally struct {
	seen map[string]bool
	last map[string]int
}

func newTally() *tally { return &tally{seen: map[string]bool{}, last: map[string]int{}} }

func (t *tally) add(tb testing.TB, body string) {
	tb.Helper()
	if t.seen[body] {
		tb.Fatalf("message %q arrived twice", body)
	}
	t.seen[body] = true
	var kind string
	var sender, n int
	if _, err := fmt.Sscanf(body, "%1s-%d-%d", &kind, &sender, &n); err != nil {
		tb.Fatalf("unexpected message %q", body)
	}
	key := fmt.Sprintf("%s-%d", kind, sender)
	if last, ok := t.last[key]; ok && n <= last {
		tb.Fatalf("message %q arrived after %s-%d", body, key, last)
	}
	t.last[key] = n
}

// RunClassicScenarios runs, with clients that behave exactly like the
// original classic client (ClassicClient), the two cases that crashed it:
//   - a login with 50 offline messages from 5 senders (1:1 and group), with
//     friends and a group in the reply too: the reply fits one read, every
//     message arrives once (in the reply or after it) and a new login
//     finds none left;
//   - a burst of 200 messages (5 senders at once, 20 1:1 and 20 group
//     messages each) to the logged-in client: every message arrives once,
//     in each sender's order.
//
// Every read of the target must hold exactly one object.
func RunClassicScenarios(t *testing.T, s ClassicSetup) {
	const senders, offlinePer, burstPer = 5, 10, 40
	tag := time.Now().UnixNano() % 1e6
	target := register(t, s.Target, fmt.Sprintf("target_%d", tag))
	target.stall = s.Stall
	var from []*classicUser
	for i := range senders {
		u := register(t, s.Senders[i%len(s.Senders)], fmt.Sprintf("sender%d_%d", i, tag))
		u.login(t)
		u.send(t, `{"msgid":7,"id":%d,"friendid":%d}`, u.id, target.id)
		from = append(from, u)
	}
	// Sender 0 creates a group of all; its id comes in its next login
	// (after the logout: on one connection, requests run in order).
	group := fmt.Sprintf("g%d", tag)
	from[0].send(t, `{"msgid":8,"id":%d,"groupname":%q,"groupdesc":"all of us"}`, from[0].id, group)
	from[0].send(t, `{"msgid":3,"id":%d}`, from[0].id)
	gid := groupID(t, from[0].login(t), group)
	for _, u := range from[1:] {
		u.send(t, `{"msgid":9,"id":%d,"groupid":%d}`, u.id, gid)
	}
	target.login(t)
	target.send(t, `{"msgid":9,"id":%d,"groupid":%d}`, target.id, gid)
	// Joined once this login's reply is read; then offline.
	target.send(t, `{"msgid":3,"id":%d}`, target.id)
	target.login(t)
	target.send(t, `{"msgid":3,"id":%d}`, target.id)
	target.loggedOut(t)
	for _, u := range from {
		// The senders get each other's group messages: read them away.
		go io.Copy(io.Discard, u.c.Conn)
	}

	sendAll := func(per int) {
		var wg sync.WaitGroup
		for i, u := range from {
			wg.Go(func() {
				for n := range per / 2 {
					u.send(t, `{"msgid":6,"id":%d,"to":%d,"msg":"o-%d-%d","time":"2026-01-01 00:00:00"}`, u.id, target.id, i, n)
					u.send(t, `{"msgid":10,"id":%d,"groupid":%d,"msg":"g-%d-%d","time":"2026-01-01 00:00:00"}`, u.id, gid, i, n)
				}
			})
		}
		wg.Wait()
	}

	// 1. Offline messages at login.
	base := s.Committed(t)
	sendAll(offlinePer)
	WaitFor(t, recvTimeout, "the offline messages committed", func() bool {
		return s.Committed(t) >= base+senders*offlinePer
	})
	got := newTally()
	r := target.login(t)
	for _, raw := range r.OfflineMsg {
		m, err := ParseClassicChat(raw)
		if err != nil {
			t.Fatalf("offlinemsg entry: %v", err)
		}
		got.add(t, m.Msg)
	}
	if len(r.OfflineMsg) == senders*offlinePer {
		t.Fatalf("all %d offline messages fit the login reply: the test does not reach the messages sent after it", len(r.OfflineMsg))
	}
	for len(got.seen) < senders*offlinePer {
		got.add(t, target.chat(t).Msg)
	}
	sentinel := func(name string) {
		from[0].send(t, `{"msgid":6,"id":%d,"to":%d,"msg":%q}`, from[0].id, target.id, name)
		if m := target.chat(t); m.Msg != name {
			t.Fatalf("got %q where %q was next: an extra message", m.Msg, name)
		}
	}
	sentinel("after offline")
	// Delivered means delivered: logging in again brings none of them.
	target.send(t, `{"msgid":3,"id":%d}`, target.id)
	if r := target.login(t); len(r.OfflineMsg) > 0 {
		t.Fatalf("offline messages delivered again at the next login: %q", r.OfflineMsg)
	}

	// 2. A burst while logged in.
	got = newTally()
	go sendAll(burstPer)
	for len(got.seen) < senders*burstPer {
		got.add(t, target.chat(t).Msg)
	}
	sentinel("after burst")
}

// groupID finds the group named name in a login reply.
func groupID(tb testing.TB, r classicLoginReply, name string) int64 {
	tb.Helper()
	for _, g := range r.Groups {
		var gr struct {
			ID   int64
			Name string `json:"groupname"`
		}
		if json.Unmarshal([]byte(g), &gr) == nil && gr.Name == name {
			return gr.ID
		}
	}
	tb.Fatalf("group %s not in the login reply (%q)", name, r.Groups)
	return 0
}
