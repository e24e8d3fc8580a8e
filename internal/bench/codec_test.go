package bench

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestFrameReader(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   []string
	}{
		{"newline", "{\"a\":1}\n{\"b\":2}\n", []string{`{"a":1}`, `{"b":2}`}},
		{"nul", "{\"a\":1}\x00{\"b\":2}\x00", []string{`{"a":1}`, `{"b":2}`}},
		{"no terminator (classic server)", `{"a":1}{"b":"}{"}{"c":[1,{"d":2}]}`, []string{`{"a":1}`, `{"b":"}{"}`, `{"c":[1,{"d":2}]}`}},
		{"escaped quote", `{"m":"x\"}y\\"}{"n":1}`, []string{`{"m":"x\"}y\\"}`, `{"n":1}`}},
		{"large", `{"m":"` + strings.Repeat("z", 40000) + `"}`, []string{`{"m":"` + strings.Repeat("z", 40000) + `"}`}},
	}
	for _, tt := range tests {
		for _, rd := range []struct {
			name string
			r    io.Reader
		}{{"whole", strings.NewReader(tt.stream)}, {"bytewise", iotest.OneByteReader(strings.NewReader(tt.stream))}} {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				fr := newFrameReader(rd.r, 16)
				var got []string
				for {
					b, err := fr.next()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, string(b))
				}
				if strings.Join(got, "|") != strings.Join(tt.want, "|") {
					t.Errorf("got %q, want %q", got, tt.want)
				}
			})
		}
	}
}

func TestFrameReaderRefuses(t *testing.T) {
	for _, s := range []string{"[1]", "garbage", "{\"m\":\"" + strings.Repeat("z", 2*maxFrame) + "\"}"} {
		fr := newFrameReader(strings.NewReader(s), 64)
		if _, err := fr.next(); err == nil || err == io.EOF {
			t.Errorf("%.20q: err %v, want a refusal", s, err)
		}
	}
}

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

func TestAppendJSONString(t *testing.T) {
	var f frame
	b := append([]byte(`{"msg":`), appendJSONString(nil, "a\"b\\c\x01")...)
	if err := parseFrame(append(b, '}'), &f); err != nil || string(f.msg) != "a\"b\\c\x01" {
		t.Errorf("round trip: %q %v", f.msg, err)
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
		fr := newFrameReader(bytes.NewReader(data), 8)
		var fm frame
		for {
			b, err := fr.next()
			if err != nil {
				return
			}
			_ = parseFrame(b, &fm)
			parseText(fm.msg)
		}
	})
}
