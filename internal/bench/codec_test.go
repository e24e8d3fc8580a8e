package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/proto"
)

func TestParseFrame(t *testing.T) {
	var f frame
	in := `{"msgid":11,"req":6,"rid":1099511627777,"errno":0,"mid":"abc","conv":"d:1:2","seq":42,` +
		`"ts":1700000000000,"time":"x","dup":true,"groups":[{"id":3,"users":[{"id":9}]}],"id":-7,"token":"t\"k"}`
	if err := parseFrame([]byte(in), &f); err != nil {
		t.Fatal(err)
	}
	want := frame{msgid: 11, req: 6, rid: 1<<40 | 1, seq: 42, id: -7, conv: []byte("d:1:2"), token: []byte(`t"k`), dup: true}
	if f.msgid != want.msgid || f.req != want.req || f.rid != want.rid || f.seq != want.seq || f.id != want.id ||
		!bytes.Equal(f.conv, want.conv) || !bytes.Equal(f.token, want.token) || !f.dup {
		t.Errorf("got %+v\nwant %+v", f, want)
	}
	if err := parseFrame([]byte(`{"a" 1}`), &f); err == nil {
		t.Error("missing colon accepted")
	}
}

func TestParseText(t *testing.T) {
	tests := []struct {
		in         string
		sid, n, ns int64
		ok         bool
	}{
		{"b:3:17:123456:xxxx", 3, 17, 123456, true},
		{"b:0:1:5:", 0, 1, 5, true},
		{"b:0:0:5:", 0, 0, 5, false},
		{"hello", 0, 0, 0, false},
		{"b:1:2", 0, 0, 0, false},
	}
	for _, tt := range tests {
		sid, n, ns, ok := parseText([]byte(tt.in))
		if ok != tt.ok || (ok && (sid != tt.sid || n != tt.n || ns != tt.ns)) {
			t.Errorf("%q: got %d %d %d %v", tt.in, sid, n, ns, ok)
		}
	}
}

// TestParseFrameReadsProto checks chatbench's field parser against proto's
// encoders of what it reads: chat deliveries, acks and errors.
func TestParseFrameReadsProto(t *testing.T) {
	m := &clusterchat.Message{ID: 9, Conv: "d:1:2", Seq: 3, From: 1, FromName: "a\"b", To: 2, Body: "a\"b\\c\x01", Time: time.UnixMilli(5)}
	var f frame
	if err := parseFrame(proto.AppendNativeChat(nil, m), &f); err != nil || f.msgid != proto.OneChat ||
		f.id != 1 || f.seq != 3 || string(f.conv) != m.Conv || string(f.msg) != m.Body {
		t.Errorf("chat: %+v %v", f, err)
	}
	if err := parseFrame(proto.AppendChatAck(nil, proto.OneChat, 1<<40|1, m), &f); err != nil ||
		f.msgid != proto.Reply || f.req != proto.OneChat || f.rid != 1<<40|1 || f.seq != 3 {
		t.Errorf("ack: %+v %v", f, err)
	}
	e := clusterchat.Errorf(clusterchat.ERATELIMIT, "slow \"down\"")
	if err := parseFrame((&proto.ErrorReply{Req: proto.OneChat, RID: 4, Err: e}).AppendNative(nil), &f); err != nil ||
		f.errno != clusterchat.ERATELIMIT || f.rid != 4 || string(f.err) != `slow "down"` {
		t.Errorf("error: %+v %v", f, err)
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 100000; v++ {
		h.Record(v)
	}
	for _, tt := range []struct {
		q    float64
		want int64
	}{{0.5, 50000}, {0.99, 99000}, {0.999, 99900}, {1, 100000}} {
		got := h.Quantile(tt.q)
		if d := float64(got-tt.want) / float64(tt.want); d < -0.02 || d > 0.02 {
			t.Errorf("q%v = %d, want %d within 2%%", tt.q, got, tt.want)
		}
	}
	var small Histogram
	small.Record(7)
	if small.Quantile(0.5) != 7 || small.Quantile(0.999) != 7 {
		t.Errorf("exact small values: %d", small.Quantile(0.5))
	}
	var m Histogram
	m.addSparse(h.sparse())
	if m.Count() != h.Count() || m.Quantile(0.5) != h.Quantile(0.5) {
		t.Errorf("sparse round trip: %d %d", m.Count(), m.Quantile(0.5))
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:6000", true}, {"127.8.9.10:1", true}, {"localhost:6000", true},
		{"10.0.0.1:6000", false}, {"0.0.0.0:6000", false}, {"[::1]:6000", false}, {"example.com:80", false},
	} {
		if err := CheckLoopback(tt.addr); (err == nil) != tt.ok {
			t.Errorf("%s: %v", tt.addr, err)
		}
	}
}

func TestParseMetric(t *testing.T) {
	text := "# HELP process_resident_memory_bytes x\n# TYPE process_resident_memory_bytes gauge\n" +
		"process_resident_memory_bytes_total 1\nprocess_resident_memory_bytes 1.2345e+07\n"
	v, err := parseMetric(strings.NewReader(text), "process_resident_memory_bytes")
	if err != nil || v != 12345000 {
		t.Errorf("got %v %v", v, err)
	}
}

// FuzzFrames feeds arbitrary bytes to the reader and the field parser: they
// may refuse, never panic.
func FuzzFrames(f *testing.F) {
	f.Add([]byte(`{"msgid":6,"msg":"b:1:2:3:x","conv":"d:1:2","seq":1}{"a":[1,{"b":"\""}]}`))
	f.Add([]byte("{\"a\":\x00}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := proto.NewReader(bytes.NewReader(data), 8, maxFrame)
		var fm frame
		for {
			b, err := fr.Next()
			if err != nil {
				return
			}
			_ = parseFrame(b, &fm)
			parseText(fm.msg)
		}
	})
}
