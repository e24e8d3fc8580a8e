package proto

import (
	"testing"
)

// TestSocialMessages checks every social encoder like TestMessages
// (checkEncodings): exact bytes, readable by encoding/json, and decoded back
// by the other side (Decode for requests, DecodeFrame for what the server
// sends).
func TestSocialMessages(t *testing.T) {
	const odd = "q\"u\\o <&>"
	const oddJSON = `"q\"u\\o <&>"`
	member := Member{ID: 1, Name: "al", State: Offline, Role: "admin"}
	pending := PendingInfo{GroupID: 7, GroupName: "g", ID: 3, Name: "cy", Kind: "request", By: 3, TS: 5}
	rows := []encRow{
		{name: "user op", got: (&UserOpReq{Op: FriendRequest, ID: 2}).AppendNative(nil, 3),
			want: `{"msgid":60,"rid":3,"id":2}`, req: &Request{MsgID: FriendRequest, RID: 3, ID: 2}},
		{name: "block", got: (&UserOpReq{Op: Block, ID: 2}).AppendNative(nil, 4),
			want: `{"msgid":65,"rid":4,"id":2}`, req: &Request{MsgID: Block, RID: 4, ID: 2}},
		{name: "group op", got: (&GroupOpReq{Op: GroupRole, GroupID: 7, ID: 2, Role: "admin"}).AppendNative(nil, 5),
			want: `{"msgid":77,"rid":5,"groupid":7,"id":2,"role":"admin"}`, req: &Request{MsgID: GroupRole, RID: 5, GroupID: 7, ID: 2, Role: "admin"}},
		{name: "group leave", got: (&GroupOpReq{Op: GroupLeave, GroupID: 7}).AppendNative(nil, 5),
			want: `{"msgid":76,"rid":5,"groupid":7}`, req: &Request{MsgID: GroupLeave, RID: 5, GroupID: 7}},
		{name: "new group", got: (&NewGroupReq{Name: odd, Desc: "d", Private: true, History: "all"}).AppendNative(nil, 6),
			want: `{"msgid":8,"rid":6,"groupname":` + oddJSON + `,"groupdesc":"d","private":true,"history":"all"}`,
			req:  &Request{MsgID: CreateGroup, RID: 6, GroupName: odd, GroupDesc: "d", Private: true, History: "all"}},
		{name: "group update", got: (&GroupUpdateReq{GroupID: 7, Name: "g", Desc: "d"}).AppendNative(nil, 6),
			want: `{"msgid":78,"rid":6,"groupid":7,"groupname":"g","groupdesc":"d","private":false}`,
			req:  &Request{MsgID: GroupUpdate, RID: 6, GroupID: 7, GroupName: "g", GroupDesc: "d"}},
		{name: "social state", got: (&SocialStateReq{}).AppendNative(nil, 7),
			want: `{"msgid":67,"rid":7}`, req: &Request{MsgID: SocialState, RID: 7}},
		{name: "search", got: (&SearchReq{Prefix: "al", Cursor: "alb", Limit: 10}).AppendNative(nil, 8),
			want: `{"msgid":68,"rid":8,"name":"al","cursor":"alb","limit":10}`,
			req:  &Request{MsgID: SearchUsers, RID: 8, Name: "al", Cursor: "alb", Limit: 10}},
		{name: "set name", got: (&SetNameReq{Name: odd}).AppendNative(nil, 9),
			want: `{"msgid":69,"rid":9,"name":` + oddJSON + `}`, req: &Request{MsgID: SetName, RID: 9, Name: odd}},
		{name: "set password", got: (&SetPasswordReq{Password: "a", NewPassword: "b"}).AppendNative(nil, 9),
			want: `{"msgid":70,"rid":9,"password":"a","newpassword":"b"}`,
			req:  &Request{MsgID: SetPassword, RID: 9, Password: "a", NewPassword: "b"}},

		{name: "friend op reply", got: (&FriendOpReply{Req: FriendRequest, RID: 3, ID: 2, Name: odd}).AppendNative(nil),
			want:  `{"msgid":11,"req":60,"rid":3,"errno":0,"id":2,"name":` + oddJSON + `,"friend":false}`,
			frame: &Frame{MsgID: Reply, Req: FriendRequest, RID: 3, ID: 2, Name: odd}},
		{name: "friend op reply friends", got: (&FriendOpReply{Req: AddFriend, RID: 3, ID: 2, Name: "b", Friend: true, State: Online}).AppendNative(nil),
			want:  `{"msgid":11,"req":7,"rid":3,"errno":0,"id":2,"name":"b","friend":true,"state":"online"}`,
			frame: &Frame{MsgID: Reply, Req: AddFriend, RID: 3, ID: 2, Name: "b", Friend: true, State: Online}},
		{name: "social state reply", got: (&SocialStateReply{RID: 7, Requests: []FriendReqInfo{{From: 1, FromName: "a", To: 2, ToName: "b", TS: 9}},
			Blocked: []UserRef{{ID: 4, Name: odd}}, Pending: []PendingInfo{pending}}).AppendNative(nil),
			want: `{"msgid":11,"req":67,"rid":7,"errno":0,"requests":[{"from":1,"fromname":"a","to":2,"toname":"b","ts":9}],` +
				`"blocked":[{"id":4,"name":` + oddJSON + `}],"pending":[{"groupid":7,"groupname":"g","id":3,"name":"cy","kind":"request","by":3,"ts":5}]}`,
			frame: &Frame{MsgID: Reply, Req: SocialState, RID: 7, Requests: []FriendReqInfo{{From: 1, FromName: "a", To: 2, ToName: "b", TS: 9}},
				Blocked: []UserRef{{ID: 4, Name: odd}}, Pending: []PendingInfo{pending}}},
		{name: "social state empty", got: (&SocialStateReply{RID: 7}).AppendNative(nil),
			want:  `{"msgid":11,"req":67,"rid":7,"errno":0,"requests":[],"blocked":[],"pending":[]}`,
			frame: &Frame{MsgID: Reply, Req: SocialState, RID: 7, Requests: []FriendReqInfo{}, Blocked: []UserRef{}, Pending: []PendingInfo{}}},
		{name: "search reply", got: (&SearchReply{RID: 8, Users: []UserRef{{ID: 1, Name: "al"}}}).AppendNative(nil),
			want:  `{"msgid":11,"req":68,"rid":8,"errno":0,"users":[{"id":1,"name":"al"}]}`,
			frame: &Frame{MsgID: Reply, Req: SearchUsers, RID: 8, Users: []Member{{ID: 1, Name: "al"}}}},
		{name: "group info reply", got: (&GroupInfoReply{RID: 9, GroupID: 7, Name: "g", Desc: "d", Private: true, History: "joined", Role: "creator",
			Members: []Member{member}, Pending: []PendingInfo{pending}}).AppendNative(nil),
			want: `{"msgid":11,"req":71,"rid":9,"errno":0,"groupid":7,"groupname":"g","groupdesc":"d","private":true,"history":"joined","role":"creator",` +
				`"users":[{"id":1,"name":"al","state":"offline","role":"admin"}],"pending":[{"groupid":7,"groupname":"g","id":3,"name":"cy","kind":"request","by":3,"ts":5}]}`,
			frame: &Frame{MsgID: Reply, Req: GroupInfo, RID: 9, GroupID: 7, GroupName: "g", GroupDesc: "d", Private: true, History: "joined", Role: "creator",
				Users: []Member{member}, Pending: []PendingInfo{pending}}},
		{name: "page from", got: (&PageReply{Req: Sync, RID: 2, Conv: "g:7", Last: 9, From: 4}).AppendNative(nil),
			want:  `{"msgid":11,"req":14,"rid":2,"errno":0,"conv":"g:7","last":9,"from":4,"msgs":[]}`,
			frame: &Frame{MsgID: Reply, Req: Sync, RID: 2, Conv: "g:7", Last: 9, From: 4, Msgs: []Chat{}}},
		{name: "group join reply", got: (&GroupJoinReply{RID: 1, GroupID: 7, Joined: true}).AppendNative(nil),
			want:  `{"msgid":11,"req":73,"rid":1,"errno":0,"groupid":7,"joined":true}`,
			frame: &Frame{MsgID: Reply, Req: GroupAsk, RID: 1, GroupID: 7, Joined: true}},

		{name: "friend event", got: (&FriendEventMsg{Event: EvRequest, ID: 2, Name: odd}).AppendNative(nil),
			want:  `{"msgid":80,"event":"request","id":2,"name":` + oddJSON + `}`,
			frame: &Frame{MsgID: FriendEvent, Event: EvRequest, ID: 2, Name: odd}},
		{name: "group event role", got: (&GroupEventMsg{Event: EvRole, GroupID: 7, ID: 2, Name: "b", Role: "admin"}).AppendNative(nil),
			want:  `{"msgid":81,"event":"role","groupid":7,"id":2,"name":"b","role":"admin"}`,
			frame: &Frame{MsgID: GroupEvent, Event: EvRole, GroupID: 7, ID: 2, Name: "b", Role: "admin"}},
		{name: "group event updated", got: (&GroupEventMsg{Event: EvUpdated, GroupID: 7, ID: 2, Name: "b", GroupName: "g", GroupDesc: "d", Private: true, History: "all"}).AppendNative(nil),
			want:  `{"msgid":81,"event":"updated","groupid":7,"id":2,"name":"b","groupname":"g","groupdesc":"d","private":true,"history":"all"}`,
			frame: &Frame{MsgID: GroupEvent, Event: EvUpdated, GroupID: 7, ID: 2, Name: "b", GroupName: "g", GroupDesc: "d", Private: true, History: "all"}},
		{name: "group event invited", got: (&GroupEventMsg{Event: EvInvited, GroupID: 7, ID: 2, Name: "b", GroupName: "g"}).AppendNative(nil),
			want:  `{"msgid":81,"event":"invited","groupid":7,"id":2,"name":"b","groupname":"g"}`,
			frame: &Frame{MsgID: GroupEvent, Event: EvInvited, GroupID: 7, ID: 2, Name: "b", GroupName: "g"}},
		{name: "user event", got: (&UserEventMsg{ID: 2, Name: "bo"}).AppendNative(nil),
			want: `{"msgid":82,"id":2,"name":"bo"}`, frame: &Frame{MsgID: UserEvent, ID: 2, Name: "bo"}},
	}
	checkEncodings(t, rows)
}
