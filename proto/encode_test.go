package proto

import (
	"encoding/json"
	"testing"
	"time"

	"clusterchat"
)

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uo\te`, "ctl\x00\x01\x1f\n\r\t", "ünïcödé 你好 😀", "bad\xff\xfeutf8", "\u2028"} {
		b := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("AppendString(%q) = %s: %v", s, b, err)
		}
		want := string([]rune(s)) // invalid bytes become U+FFFD either way
		if back != want {
			t.Errorf("round trip of %q gave %q", s, back)
		}
	}
}

func TestClassicChatShape(t *testing.T) {
	m := &clusterchat.Message{From: 1, FromName: "al\"ice", To: 2, Body: "hi", CTime: "2026-01-02 03:04:05", Time: time.UnixMilli(5)}
	want := `{"id":1,"msg":"hi","msgid":6,"name":"al\"ice","time":"2026-01-02 03:04:05","to":2}`
	if got := string(AppendClassicChat(nil, m)); got != want {
		t.Errorf("classic 1:1:\n got %s\nwant %s", got, want)
	}
	m.To, m.GroupID = 0, 7
	want = `{"groupid":7,"id":1,"msg":"hi","msgid":10,"name":"al\"ice","time":"2026-01-02 03:04:05"}`
	if got := string(AppendClassicChat(nil, m)); got != want {
		t.Errorf("classic group:\n got %s\nwant %s", got, want)
	}
	// The native form is valid JSON with the extra fields.
	var v map[string]any
	if err := json.Unmarshal(AppendNativeChat(nil, m), &v); err != nil || v["seq"] == nil || v["conv"] == nil {
		t.Errorf("native chat: %v %v", v, err)
	}
}

func BenchmarkReader(b *testing.B) {
	frame := []byte(`{"msgid":6,"rid":12345,"to":2,"msg":"hello there, this is a message","cmid":"dev-1-123"}` + "\n")
	data := make([]byte, 0, len(frame)*1000)
	for range 1000 {
		data = append(data, frame...)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		rd := NewReader(&chunkReader{data: data, sizes: []int{4096}}, 4096, 1<<16)
		for {
			if _, err := rd.Next(); err != nil {
				break
			}
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	frame := []byte(`{"msgid":6,"rid":12345,"to":2,"msg":"hello there, this is a message","cmid":"dev-1-123"}`)
	var q Request
	for b.Loop() {
		if err := Decode(frame, &q); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeNativeChat(b *testing.B) {
	m := &clusterchat.Message{ID: 1234567, Conv: "d:1:2", Seq: 4567, From: 1, FromName: "alice", To: 2, Body: "hello there, this is a message", CTime: "2026-01-02 03:04:05", Time: time.Now()}
	buf := make([]byte, 0, 512)
	for b.Loop() {
		buf = AppendNativeChat(buf[:0], m)
	}
}
