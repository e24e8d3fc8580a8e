package proto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"clusterchat"
)

func TestClassicRecord(t *testing.T) {
	for _, tc := range []struct {
		n, want int
	}{{1, 1024}, {1022, 1024}, {1023, 1024}, {1024, 2048}, {2047, 2048}, {2048, 3072}} {
		if got := ClassicRecordLen(tc.n); got != tc.want {
			t.Errorf("ClassicRecordLen(%d) = %d, want %d", tc.n, got, tc.want)
		}
		obj := []byte(strings.Repeat("x", tc.n))
		rec := AppendClassicRecord([]byte("head"), obj)
		if len(rec) != 4+tc.want || !bytes.Equal(rec[4:4+tc.n], obj) {
			t.Fatalf("record of %d bytes: len %d", tc.n, len(rec))
		}
		if pad := rec[4+tc.n:]; len(pad) == 0 || bytes.Count(pad, []byte{0}) != len(pad) {
			t.Fatalf("record of %d bytes: padding %q is not one or more NULs", tc.n, pad)
		}
	}
}

// TestAppendClassicWithin: the classic login reply cut to a size keeps, in
// order, as many friends, then groups, then offline messages as fit (each
// list up to its first entry that does not fit), is exactly AppendClassic
// when all fits, and says how many offline messages it carries.
func TestAppendClassicWithin(t *testing.T) {
	var friends []Friend
	for i := range 30 {
		friends = append(friends, Friend{ID: int64(i + 2), Name: fmt.Sprintf("friend-%02d <&>", i), State: Online})
	}
	group := Group{ID: 7, Name: "g", Desc: "d", Members: []Member{{ID: 1, Name: "al", State: Offline, Role: clusterchat.RoleCreator}}}
	var offline []*clusterchat.Message
	for i := range 50 {
		offline = append(offline, &clusterchat.Message{Conv: "d:1:2", Seq: int64(i + 1), From: 2, FromName: "bo", To: 1,
			Body: fmt.Sprintf("message %d \"quoted\"", i), CTime: "2026-01-02 03:04:05"})
	}
	small := &LoginReply{ID: 1, Name: "al", Friends: friends[:1], Groups: []Group{group}, Offline: offline[:2]}
	full := small.AppendClassic(nil)
	for _, tc := range []struct {
		name               string
		r                  *LoginReply
		max                int
		friends, groups, n int
	}{
		{"all fits", small, ClassicLoginMax, 1, 1, 2},
		{"all fits exactly", small, len(full), 1, 1, 2},
		{"one byte short: the last offline message waits", small, len(full) - 1, 1, 1, 1},
		{"offline only", &LoginReply{ID: 1, Name: "al", Offline: offline}, ClassicLoginMax, 0, 0, -1},
		{"friends first", &LoginReply{ID: 1, Name: "al", Friends: friends, Groups: []Group{group}, Offline: offline}, ClassicLoginMax, -1, -1, -1},
		{"nothing but the base", &LoginReply{ID: 1, Name: "al", Friends: friends, Offline: offline}, 40, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, n := tc.r.AppendClassicWithin([]byte("x"), tc.max)
			b = b[1:]
			if len(b) > tc.max {
				t.Fatalf("%d bytes, max %d: %s", len(b), tc.max, b)
			}
			var got struct {
				Friends, Groups []string
				Offline         []string `json:"offlinemsg"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if n != len(got.Offline) {
				t.Fatalf("returned %d offline messages, the reply holds %d", n, len(got.Offline))
			}
			want := tc.r.classic()
			for _, l := range []struct {
				name      string
				got, want []string
				n         int
			}{{"friends", got.Friends, want.Friends, tc.friends}, {"groups", got.Groups, want.Groups, tc.groups}, {"offline", got.Offline, want.Offline, tc.n}} {
				if l.n >= 0 && len(l.got) != l.n {
					t.Errorf("%s: %d entries, want %d", l.name, len(l.got), l.n)
				}
				if !slices.Equal(l.got, l.want[:len(l.got)]) {
					t.Errorf("%s: not the first entries in order", l.name)
				}
			}
			if len(got.Offline) == len(tc.r.Offline) && len(got.Friends) == len(tc.r.Friends) && len(got.Groups) == len(tc.r.Groups) {
				if !bytes.Equal(b, tc.r.AppendClassic(nil)) {
					t.Fatalf("all fits but the reply differs from AppendClassic:\n%s\n%s", b, tc.r.AppendClassic(nil))
				}
				return
			}
			// Greedy: one more offline message would not have fitted.
			if n < len(tc.r.Offline) {
				more := *tc.r
				more.Offline = tc.r.Offline[:n+1]
				more.Friends = tc.r.Friends[:len(got.Friends)]
				more.Groups = tc.r.Groups[:len(got.Groups)]
				if l := len(more.AppendClassic(nil)); l <= tc.max {
					t.Fatalf("offline message %d would have fitted (%d bytes, max %d)", n, l, tc.max)
				}
			}
		})
	}
}
