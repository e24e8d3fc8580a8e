package proto

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"clusterchat"
)

// TestMessages checks every encoder of the vocabulary: the exact bytes, that
// encoding/json reads them, and that the other side's decoder gets the
// fields back (Decode for requests, which must agree with encoding/json
// into Request; DecodeFrame, the Go client's decoder, for what the server
// sends natively). A new message adds its rows here.
func TestMessages(t *testing.T) {
	const odd = "q\"u\\o <&> \u00fcn\u00ef \x01\n"
	const oddJSON = `"q\"u\\o <&> ` + "\u00fcn\u00ef" + ` \u0001\n"`
	ts := time.UnixMilli(1700000000123)
	dm := &clusterchat.Message{ID: 9, Conv: "d:1:2", Seq: 3, From: 1, FromName: odd, To: 2, Body: "hi", CTime: "2026-01-02 03:04:05", Time: ts}
	gm := &clusterchat.Message{ID: 10, Conv: "g:7", Seq: 4, From: 1, FromName: "al", GroupID: 7, Body: odd, CTime: "2026-01-02 03:04:06", Time: ts}
	dup := *dm
	dup.Dup = true
	chat := func(m *clusterchat.Message, msgid int) Chat {
		return Chat{MsgID: msgid, MID: m.ID, Conv: m.Conv, Seq: m.Seq, From: m.From, Name: m.FromName, To: m.To,
			GroupID: m.GroupID, Msg: m.Body, Time: m.CTime, TS: ts.UnixMilli()}
	}
	friend := Friend{ID: 2, Name: odd, State: Online}
	group := Group{ID: 7, Name: "g", Desc: "d", Members: []Member{{ID: 1, Name: "al", State: Offline, Role: clusterchat.RoleCreator}}}
	conv := Conv{Conv: "d:1:2", Last: 5, Read: 3, Unread: 2}
	errNF := clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", 4)
	errAuth := clusterchat.Errorf(clusterchat.EAUTH, "id or password is invalid!")
	errLimit := clusterchat.RateLimited(1500*time.Millisecond, "sending too fast")

	rows := []encRow{
		// requests
		{name: "login native", got: (&LoginReq{ID: 5, Password: odd}).AppendNative(nil, 7),
			want: `{"msgid":1,"proto":2,"rid":7,"id":5,"password":` + oddJSON + `}`,
			req:  &Request{MsgID: Login, Proto: Native, RID: 7, ID: 5, Password: odd}},
		{name: "login token", got: (&LoginReq{Token: "tok"}).AppendNative(nil, 7),
			want: `{"msgid":1,"proto":2,"rid":7,"token":"tok"}`,
			req:  &Request{MsgID: Login, Proto: Native, RID: 7, Token: "tok"}},
		{name: "login classic", got: (&LoginReq{ID: 5, Password: "pw"}).AppendClassic(nil),
			want: `{"id":5,"msgid":1,"password":"pw"}`,
			req:  &Request{MsgID: Login, ID: 5, Password: "pw"}},
		{name: "login token classic", got: (&LoginReq{Token: "tok"}).AppendClassic(nil),
			want: `{"msgid":1,"token":"tok"}`, req: &Request{MsgID: Login, Token: "tok"}},
		{name: "register native", got: (&RegisterReq{Name: odd, Password: "pw"}).AppendNative(nil, 1),
			want: `{"msgid":4,"proto":2,"rid":1,"name":` + oddJSON + `,"password":"pw"}`,
			req:  &Request{MsgID: Register, Proto: Native, RID: 1, Name: odd, Password: "pw"}},
		{name: "register classic", got: (&RegisterReq{Name: "al", Password: "pw"}).AppendClassic(nil),
			want: `{"msgid":4,"name":"al","password":"pw"}`,
			req:  &Request{MsgID: Register, Name: "al", Password: "pw"}},
		{name: "logout native", got: (&LogoutReq{}).AppendNative(nil, 3),
			want: `{"msgid":3,"rid":3}`, req: &Request{MsgID: Logout, RID: 3}},
		{name: "logout all", got: (&LogoutAllReq{}).AppendNative(nil, 3),
			want: `{"msgid":40,"rid":3}`, req: &Request{MsgID: LogoutAll, RID: 3}},
		{name: "logout classic", got: (&LogoutReq{}).AppendClassic(nil),
			want: `{"msgid":3}`, req: &Request{MsgID: Logout}},
		{name: "chat native", got: (&ChatReq{To: 2, Msg: odd, CMID: "dev-1"}).AppendNative(nil, 4),
			want: `{"msgid":6,"rid":4,"to":2,"msg":` + oddJSON + `,"cmid":"dev-1"}`,
			req:  &Request{MsgID: OneChat, RID: 4, To: 2, Msg: odd, CMID: "dev-1"}},
		{name: "group chat native", got: (&ChatReq{GroupID: 7, Msg: "hi", CMID: "dev-2", Time: "t"}).AppendNative(nil, 5),
			want: `{"msgid":10,"rid":5,"groupid":7,"msg":"hi","cmid":"dev-2","time":"t"}`,
			req:  &Request{MsgID: GroupChat, RID: 5, GroupID: 7, Msg: "hi", CMID: "dev-2", Time: "t"}},
		{name: "chat classic", got: (&ChatReq{To: 2, Msg: "hi", Time: "t"}).AppendClassic(nil),
			want: `{"msg":"hi","msgid":6,"time":"t","to":2}`,
			req:  &Request{MsgID: OneChat, To: 2, Msg: "hi", Time: "t"}},
		{name: "group chat classic", got: (&ChatReq{GroupID: 7, Msg: "hi"}).AppendClassic(nil),
			want: `{"groupid":7,"msg":"hi","msgid":10}`,
			req:  &Request{MsgID: GroupChat, GroupID: 7, Msg: "hi"}},
		{name: "add friend native", got: (&AddFriendReq{FriendID: 2}).AppendNative(nil, 6),
			want: `{"msgid":7,"rid":6,"friendid":2}`, req: &Request{MsgID: AddFriend, RID: 6, FriendID: 2}},
		{name: "add friend classic", got: (&AddFriendReq{FriendID: 2}).AppendClassic(nil),
			want: `{"friendid":2,"msgid":7}`, req: &Request{MsgID: AddFriend, FriendID: 2}},
		{name: "create group native", got: (&CreateGroupReq{Name: "g", Desc: odd}).AppendNative(nil, 8),
			want: `{"msgid":8,"rid":8,"groupname":"g","groupdesc":` + oddJSON + `}`,
			req:  &Request{MsgID: CreateGroup, RID: 8, GroupName: "g", GroupDesc: odd}},
		{name: "create group classic", got: (&CreateGroupReq{Name: "g", Desc: "d"}).AppendClassic(nil),
			want: `{"groupdesc":"d","groupname":"g","msgid":8}`, req: &Request{MsgID: CreateGroup, GroupName: "g", GroupDesc: "d"}},
		{name: "add group native", got: (&AddGroupReq{GroupID: 7}).AppendNative(nil, 9),
			want: `{"msgid":9,"rid":9,"groupid":7}`, req: &Request{MsgID: AddGroup, RID: 9, GroupID: 7}},
		{name: "add group classic", got: (&AddGroupReq{GroupID: 7}).AppendClassic(nil),
			want: `{"groupid":7,"msgid":9}`, req: &Request{MsgID: AddGroup, GroupID: 7}},
		{name: "sync", got: (&SyncReq{Conv: "g:7", After: 3, Limit: 200}).AppendNative(nil, 10),
			want: `{"msgid":14,"rid":10,"conv":"g:7","after":3,"limit":200}`,
			req:  &Request{MsgID: Sync, RID: 10, Conv: "g:7", After: 3, Limit: 200}},
		{name: "history", got: (&HistoryReq{Conv: "d:1:2", Before: 9, Limit: 20}).AppendNative(nil, 11),
			want: `{"msgid":15,"rid":11,"conv":"d:1:2","before":9,"limit":20}`,
			req:  &Request{MsgID: History, RID: 11, Conv: "d:1:2", Before: 9, Limit: 20}},
		{name: "read", got: (&ReadReq{Conv: "d:1:2", Seq: 4}).AppendNative(nil, 12),
			want: `{"msgid":16,"rid":12,"conv":"d:1:2","seq":4}`, req: &Request{MsgID: Read, RID: 12, Conv: "d:1:2", Seq: 4}},
		{name: "ping", got: (&PingReq{}).AppendNative(nil, 13),
			want: `{"msgid":18,"rid":13}`, req: &Request{MsgID: Ping, RID: 13}},

		// replies
		{name: "register reply native", got: (&RegisterReply{RID: 1, ID: 5}).AppendNative(nil),
			want:  `{"errno":0,"id":5,"msgid":5,"rid":1}`,
			frame: &Frame{MsgID: RegisterAck, RID: 1, ID: 5}},
		{name: "register reply classic", got: (&RegisterReply{RID: 1, ID: 5}).AppendClassic(nil),
			want: `{"errno":0,"id":5,"msgid":5}`},
		{name: "login reply native", got: (&LoginReply{RID: 2, ID: 1, Name: "al", Token: "tok", Friends: []Friend{friend},
			Groups: []Group{group}, Convs: []Conv{conv}}).AppendNative(nil),
			want: `{"msgid":2,"rid":2,"errno":0,"id":1,"name":"al","token":"tok",` +
				`"friends":[{"id":2,"name":"q\"u\\o \u003c\u0026\u003e ` + "\u00fcn\u00ef" + ` \u0001\n","state":"online"}],` +
				`"groups":[{"id":7,"groupname":"g","groupdesc":"d","users":[{"id":1,"name":"al","state":"offline","role":"creator"}]}],` +
				`"convs":[{"conv":"d:1:2","last":5,"read":3,"unread":2}]}`,
			frame: &Frame{MsgID: LoginAck, RID: 2, ID: 1, Name: "al", Token: "tok", Friends: []Friend{friend},
				Groups: []Group{group}, Convs: []Conv{conv}}},
		{name: "login reply native empty", got: (&LoginReply{RID: 2, ID: 1, Name: "al", Groups: []Group{{ID: 3}}}).AppendNative(nil),
			want:  `{"msgid":2,"rid":2,"errno":0,"id":1,"name":"al","friends":[],"groups":[{"id":3,"groupname":"","groupdesc":"","users":[]}],"convs":[]}`,
			frame: &Frame{MsgID: LoginAck, RID: 2, ID: 1, Name: "al", Friends: []Friend{}, Groups: []Group{{ID: 3, Members: []Member{}}}, Convs: []Conv{}}},
		{name: "login reply classic empty", got: (&LoginReply{RID: 2, ID: 1, Name: "al", Token: "tok", Convs: []Conv{conv}}).AppendClassic(nil),
			want: `{"errno":0,"id":1,"msgid":2,"name":"al"}`},
		{name: "login reply classic", got: (&LoginReply{ID: 1, Name: "al", Friends: []Friend{{ID: 2, Name: "bo", State: Online}},
			Groups: []Group{group}, Offline: []*clusterchat.Message{dm, gm}}).AppendClassic(nil),
			want: `{"errno":0,"friends":["{\"id\":2,\"name\":\"bo\",\"state\":\"online\"}"],` +
				`"groups":["{\"groupdesc\":\"d\",\"groupname\":\"g\",\"id\":7,\"users\":[\"{\\\"id\\\":1,\\\"name\\\":\\\"al\\\",\\\"role\\\":\\\"creator\\\",\\\"state\\\":\\\"offline\\\"}\"]}"],` +
				`"id":1,"msgid":2,"name":"al","offlinemsg":[` + jsonQuote(t, string(AppendClassicChat(nil, dm))) + `,` + jsonQuote(t, string(AppendClassicChat(nil, gm))) + `]}`},
		{name: "password reply", got: (&PasswordReply{RID: 4, Token: "tok"}).AppendNative(nil),
			want: `{"msgid":11,"req":70,"rid":4,"errno":0,"token":"tok"}`, frame: &Frame{MsgID: Reply, Req: SetPassword, RID: 4, Token: "tok"}},
		{name: "read reply", got: (&ReadReply{RID: 3, Seq: 2}).AppendNative(nil),
			want: `{"msgid":11,"req":16,"rid":3,"errno":0,"seq":2}`, frame: &Frame{MsgID: Reply, Req: Read, RID: 3, Seq: 2}},
		{name: "rate limited native", got: (&ErrorReply{Req: OneChat, RID: 8, Err: errLimit}).AppendNative(nil),
			want:  `{"errmsg":"sending too fast; try again in 2s","errno":12,"msgid":11,"req":6,"rid":8,"retry_ms":1500}`,
			frame: &Frame{MsgID: Reply, Req: OneChat, RID: 8, Errno: clusterchat.ERATELIMIT, Errmsg: "sending too fast; try again in 2s", RetryMS: 1500}},
		{name: "revoked", got: (&ReconnectEvent{Reason: ReasonRevoked}).AppendNative(nil),
			want: `{"msgid":17,"reason":"revoked"}`, frame: &Frame{MsgID: Reconnect, Reason: ReasonRevoked}},
		{name: "ok reply", got: (&OKReply{Req: Ping, RID: 3}).AppendNative(nil),
			want: `{"msgid":11,"req":18,"rid":3,"errno":0}`, frame: &Frame{MsgID: Reply, Req: Ping, RID: 3}},
		{name: "friend reply", got: (&FriendReply{RID: 4, Friend: friend}).AppendNative(nil),
			want:  `{"msgid":11,"req":7,"rid":4,"errno":0,"id":2,"name":` + oddJSON + `,"state":"online"}`,
			frame: &Frame{MsgID: Reply, Req: AddFriend, RID: 4, ID: 2, Name: odd, State: Online}},
		{name: "create group reply", got: (&CreateGroupReply{RID: 5, GroupID: 7}).AppendNative(nil),
			want: `{"msgid":11,"req":8,"rid":5,"errno":0,"groupid":7}`, frame: &Frame{MsgID: Reply, Req: CreateGroup, RID: 5, GroupID: 7}},
		{name: "add group reply", got: (&AddGroupReply{RID: 6, GroupID: 7, Joined: true}).AppendNative(nil),
			want:  `{"msgid":11,"req":9,"rid":6,"errno":0,"groupid":7,"joined":true}`,
			frame: &Frame{MsgID: Reply, Req: AddGroup, RID: 6, GroupID: 7, Joined: true}},
		{name: "add group reply again", got: (&AddGroupReply{RID: 6, GroupID: 7}).AppendNative(nil),
			want: `{"msgid":11,"req":9,"rid":6,"errno":0,"groupid":7,"joined":false}`, frame: &Frame{MsgID: Reply, Req: AddGroup, RID: 6, GroupID: 7}},
		{name: "page reply", got: (&PageReply{Req: Sync, RID: 7, Conv: "d:1:2", Last: 3, Msgs: []*clusterchat.Message{dm}}).AppendNative(nil),
			want: `{"msgid":11,"req":14,"rid":7,"errno":0,"conv":"d:1:2","last":3,"msgs":[` +
				`{"msgid":6,"to":2,"mid":9,"conv":"d:1:2","seq":3,"id":1,"name":` + oddJSON + `,"msg":"hi","time":"2026-01-02 03:04:05","ts":1700000000123}]}`,
			frame: &Frame{MsgID: Reply, Req: Sync, RID: 7, Conv: "d:1:2", Last: 3, Msgs: []Chat{chat(dm, OneChat)}}},
		{name: "empty page", got: (&PageReply{Req: History, RID: 7, Conv: "g:7"}).AppendNative(nil),
			want: `{"msgid":11,"req":15,"rid":7,"errno":0,"conv":"g:7","last":0,"msgs":[]}`, frame: &Frame{MsgID: Reply, Req: History, RID: 7, Conv: "g:7", Msgs: []Chat{}}},
		{name: "error native", got: (&ErrorReply{Req: AddFriend, RID: 8, Err: errNF}).AppendNative(nil),
			want:  `{"errmsg":"no user 4","errno":4,"msgid":11,"req":7,"rid":8}`,
			frame: &Frame{MsgID: Reply, Req: AddFriend, RID: 8, Errno: clusterchat.ENOTFOUND, Errmsg: "no user 4"}},
		{name: "error classic", got: (&ErrorReply{Req: AddFriend, RID: 8, Err: errNF}).AppendClassic(nil),
			want: `{"errmsg":"no user 4","errno":4,"msgid":11,"req":7}`},
		{name: "login error classic", got: (&ErrorReply{Req: Login, Err: errAuth}).AppendClassic(nil),
			want: `{"errmsg":"id or password is invalid!","errno":1,"msgid":2}`},
		{name: "register error native", got: (&ErrorReply{Req: Register, RID: 2, Err: errAuth}).AppendNative(nil),
			want:  `{"errmsg":"id or password is invalid!","errno":1,"msgid":5,"rid":2}`,
			frame: &Frame{MsgID: RegisterAck, RID: 2, Errno: clusterchat.EAUTH, Errmsg: "id or password is invalid!"}},
		{name: "chat ack", got: (&ChatAck{Req: OneChat, RID: 9, M: dm}).AppendNative(nil),
			want:  `{"msgid":11,"req":6,"rid":9,"errno":0,"mid":9,"conv":"d:1:2","seq":3,"ts":1700000000123,"time":"2026-01-02 03:04:05"}`,
			frame: &Frame{MsgID: Reply, Req: OneChat, RID: 9, MID: 9, Conv: "d:1:2", Seq: 3, TS: ts.UnixMilli(), Time: dm.CTime}},
		{name: "chat ack dup", got: (&ChatAck{Req: OneChat, RID: 9, M: &dup}).AppendNative(nil),
			want:  `{"msgid":11,"req":6,"rid":9,"errno":0,"mid":9,"conv":"d:1:2","seq":3,"ts":1700000000123,"time":"2026-01-02 03:04:05","dup":true}`,
			frame: &Frame{MsgID: Reply, Req: OneChat, RID: 9, MID: 9, Conv: "d:1:2", Seq: 3, TS: ts.UnixMilli(), Time: dm.CTime, Dup: true}},

		// events
		{name: "chat native", got: (&ChatEvent{M: dm}).AppendNative(nil),
			want:  `{"msgid":6,"to":2,"mid":9,"conv":"d:1:2","seq":3,"id":1,"name":` + oddJSON + `,"msg":"hi","time":"2026-01-02 03:04:05","ts":1700000000123}`,
			frame: &Frame{MsgID: OneChat, To: 2, MID: 9, Conv: "d:1:2", Seq: 3, ID: 1, Name: odd, Msg: "hi", Time: dm.CTime, TS: ts.UnixMilli()}},
		{name: "group chat native", got: (&ChatEvent{M: gm}).AppendNative(nil),
			want:  `{"msgid":10,"groupid":7,"mid":10,"conv":"g:7","seq":4,"id":1,"name":"al","msg":` + oddJSON + `,"time":"2026-01-02 03:04:06","ts":1700000000123}`,
			frame: &Frame{MsgID: GroupChat, GroupID: 7, MID: 10, Conv: "g:7", Seq: 4, ID: 1, Name: "al", Msg: odd, Time: gm.CTime, TS: ts.UnixMilli()}},
		{name: "chat classic", got: (&ChatEvent{M: dm}).AppendClassic(nil),
			want: `{"id":1,"msg":"hi","msgid":6,"name":` + oddJSON + `,"time":"2026-01-02 03:04:05","to":2}`},
		{name: "group chat classic", got: (&ChatEvent{M: gm}).AppendClassic(nil),
			want: `{"groupid":7,"id":1,"msg":` + oddJSON + `,"msgid":10,"name":"al","time":"2026-01-02 03:04:06"}`},
		{name: "presence", got: (&PresenceEvent{ID: 2, State: Offline}).AppendNative(nil),
			want: `{"msgid":12,"id":2,"state":"offline"}`, frame: &Frame{MsgID: Presence, ID: 2, State: Offline}},
		{name: "friend added", got: (&FriendAddedEvent{Friend: friend}).AppendNative(nil),
			want:  `{"msgid":13,"id":2,"name":` + oddJSON + `,"state":"online"}`,
			frame: &Frame{MsgID: FriendAdded, ID: 2, Name: odd, State: Online}},
		{name: "group joined", got: (&GroupJoinedEvent{GroupID: 7, ID: 2, Name: "bo"}).AppendNative(nil),
			want: `{"msgid":19,"groupid":7,"id":2,"name":"bo"}`, frame: &Frame{MsgID: GroupJoined, GroupID: 7, ID: 2, Name: "bo"}},
		{name: "read event", got: (&ReadEvent{Conv: "g:7", Seq: 4}).AppendNative(nil),
			want: `{"msgid":16,"conv":"g:7","seq":4}`, frame: &Frame{MsgID: Read, Conv: "g:7", Seq: 4}},
		{name: "reconnect", got: (&ReconnectEvent{Reason: ReasonShutdown}).AppendNative(nil),
			want: `{"msgid":17,"reason":"shutdown"}`, frame: &Frame{MsgID: Reconnect, Reason: ReasonShutdown}},
	}
	checkEncodings(t, rows)
}

// encRow is one encoder's row: its bytes, what they must be, and what the
// other side decodes from them.
type encRow struct {
	name  string
	got   []byte
	want  string
	req   *Request // what the server decodes (requests)
	frame *Frame   // what the Go client decodes (server messages)
}

// checkEncodings checks rows: the exact bytes, that encoding/json reads
// them, and that Decode (which must agree with encoding/json into Request)
// or DecodeFrame gets the row's fields back (and ScanFrame the same as
// DecodeFrame). Every table of encoders in
// this package goes through it.
func checkEncodings(t *testing.T, rows []encRow) {
	t.Helper()
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			if string(r.got) != r.want {
				t.Fatalf("bytes\n got %s\nwant %s", r.got, r.want)
			}
			var v map[string]any
			if err := json.Unmarshal(r.got, &v); err != nil {
				t.Fatalf("encoding/json cannot read %s: %v", r.got, err)
			}
			if r.req != nil {
				var q, viaJSON Request
				if err := Decode(r.got, &q); err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if err := json.Unmarshal(r.got, &viaJSON); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(q, *r.req) || !reflect.DeepEqual(viaJSON, *r.req) {
					t.Fatalf("decoded\n     got %+v\nencoding/json %+v\n    want %+v", q, viaJSON, *r.req)
				}
			}
			if r.frame != nil {
				var f Frame
				if err := DecodeFrame(r.got, &f); err != nil {
					t.Fatalf("DecodeFrame: %v", err)
				}
				if !reflect.DeepEqual(f, *r.frame) {
					t.Fatalf("client decoded\n got %+v\nwant %+v", f, *r.frame)
				}
				checkScan(t, r.got, &f)
			}
		})
	}
}

// jsonQuote is s as encoding/json writes a string (HTML characters escaped,
// as the classic login reply's nested strings are).
func jsonQuote(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzAppendString checks that every string, valid UTF-8 or not, comes out
// as a JSON string that encoding/json and the client's decoder read back as
// the same text (invalid bytes as U+FFFD), and that the frame reader cuts it
// as one value.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uo\te`, "ctl\x00\x01\x1f\n\r\t", "ünïcödé 你好 😀", "bad\xff\xfeutf8", "\u2028", `\u0000`, "\\\"\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := string([]rune(s))
		b := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil || back != want {
			t.Fatalf("AppendString(%q) = %s: encoding/json reads %q, %v", s, b, back, err)
		}
		frame := (&PresenceEvent{ID: 1, State: State(s)}).AppendNative(nil)
		var fr Frame
		if err := DecodeFrame(frame, &fr); err != nil || string(fr.State) != want {
			t.Fatalf("client decoded %q from %s, want %q (%v)", fr.State, frame, want, err)
		}
		var q Request
		if err := Decode((&RegisterReq{Name: s, Password: s}).AppendNative(nil, 1), &q); err != nil || q.Name != want || q.Password != want {
			t.Fatalf("server decoded %q, %q, want %q (%v)", q.Name, q.Password, want, err)
		}
		rd := NewReader(&chunkReader{data: append(append(frame, 0), frame...), sizes: []int{1, 3, 7}}, 4, 1<<20)
		for range 2 {
			if v, err := rd.Next(); err != nil || string(v) != string(frame) {
				t.Fatalf("reader cut %q from %q: %v", v, frame, err)
			}
		}
	})
}
