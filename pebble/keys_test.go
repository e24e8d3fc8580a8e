package pebble

import (
	"bytes"
	"testing"
	"time"

	"clusterchat"
)

func TestPrefixEnd(t *testing.T) {
	tests := []struct{ in, want []byte }{
		{[]byte{'m', 3}, []byte{'m', 4}},
		{[]byte{'m', 0xff}, []byte{'n'}},
		{[]byte{0xff, 0xff}, nil},
	}
	for _, tc := range tests {
		if got := prefixEnd(tc.in); !bytes.Equal(got, tc.want) {
			t.Errorf("prefixEnd(%x) = %x, want %x", tc.in, got, tc.want)
		}
	}
}

// TestMsgKeyRanges checks that no conversation's message keys fall in the
// range of another whose name it extends ("g:1" and "g:10").
func TestMsgKeyRanges(t *testing.T) {
	convs := []string{"", "g:1", "g:10", "g:1\x00", "g:1\xff", "d:1:2"}
	for _, a := range convs {
		lo, hi := msgPrefix(nil, a), prefixEnd(msgPrefix(nil, a))
		for _, b := range convs {
			for _, seq := range []int64{1, 1 << 40} {
				k := msgKey(nil, b, seq)
				in := bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0
				if in != (a == b) {
					t.Errorf("key of %q seq %d in range of %q: %v", b, seq, a, in)
				}
				conv, s, err := parseMsgKey(k)
				if err != nil || conv != b || s != seq {
					t.Errorf("parseMsgKey(msgKey(%q, %d)) = %q, %d, %v", b, seq, conv, s, err)
				}
			}
		}
	}
}

func TestMsgCodec(t *testing.T) {
	ms := time.Now().UnixMilli()
	tests := []clusterchat.Message{
		{},
		{ID: 1, From: 2, FromName: "alice", To: 3, Body: "hi", CTime: "2024-01-02 03:04:05", CMID: "c1"},
		{ID: 1 << 50, From: 7, GroupID: 9, Body: string(make([]byte, 5000)), CMID: "ünïcode"},
	}
	for _, want := range tests {
		want.Time = time.UnixMilli(ms)
		var got clusterchat.Message
		if err := decodeMsg(encodeMsg(nil, &want, ms), &got); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !got.Time.Equal(want.Time) {
			t.Errorf("Time %v, want %v", got.Time, want.Time)
		}
		got.Time, want.Time = time.Time{}, time.Time{}
		if got != want {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
		}
	}
	enc := encodeMsg(nil, &tests[1], ms)
	for n := range len(enc) {
		var m clusterchat.Message
		if err := decodeMsg(enc[:n], &m); err == nil {
			t.Errorf("decode of %d of %d bytes succeeded", n, len(enc))
		}
	}
}
