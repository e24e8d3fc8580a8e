package proto

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// checkScan holds ScanFrame to DecodeFrame on b, a frame the server sends
// (checkEncodings calls it for every such row of the encoder tables).
func checkScan(t *testing.T, b []byte, f *Frame) {
	t.Helper()
	var v FrameView
	if err := ScanFrame(b, &v); err != nil {
		t.Fatalf("ScanFrame: %v", err)
	}
	got := viewOf(&v)
	want := viewJSON{MsgID: int64(f.MsgID), RID: f.RID, Req: int64(f.Req), Errno: int64(f.Errno), RetryMS: f.RetryMS, ID: f.ID,
		Seq: f.Seq, GroupID: f.GroupID, Dup: f.Dup, Conv: f.Conv, Msg: f.Msg, Token: f.Token, Errmsg: f.Errmsg}
	if got != want {
		t.Fatalf("ScanFrame\n got %+v\nwant %+v", got, want)
	}
}

// viewOf is v with strings, to compare.
func viewOf(v *FrameView) viewJSON {
	return viewJSON{MsgID: v.MsgID, RID: v.RID, Req: v.Req, Errno: v.Errno, RetryMS: v.RetryMS, ID: v.ID, Seq: v.Seq,
		GroupID: v.GroupID, Dup: v.Dup, Conv: string(v.Conv), Msg: string(v.Msg), Token: string(v.Token), Errmsg: string(v.Errmsg)}
}

// viewJSON is FrameView as encoding/json reads it.
type viewJSON struct {
	MsgID   int64  `json:"msgid"`
	RID     int64  `json:"rid"`
	Req     int64  `json:"req"`
	Errno   int64  `json:"errno"`
	RetryMS int64  `json:"retry_ms"`
	ID      int64  `json:"id"`
	Seq     int64  `json:"seq"`
	GroupID int64  `json:"groupid"`
	Dup     bool   `json:"dup"`
	Conv    string `json:"conv"`
	Msg     string `json:"msg"`
	Token   string `json:"token"`
	Errmsg  string `json:"errmsg"`
}

// scanVsJSON compares ScanFrame and encoding/json on frame: the fields and
// the kind of error ("", "syntax", or the first wrongly typed field).
func scanVsJSON(frame []byte) (string, bool) {
	var w viewJSON
	err := json.Unmarshal(frame, &w)
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	wk := ""
	switch {
	case err == nil:
	case errors.As(err, &te):
		wk = te.Field
	case errors.As(err, &se):
		wk = "syntax"
	default:
		wk = "other: " + err.Error()
	}
	var v FrameView
	gk := ""
	if err := ScanFrame(frame, &v); err != nil {
		switch msg := err.Error(); {
		case strings.Contains(msg, "malformed JSON"), strings.Contains(msg, "must be a JSON object"):
			gk = "syntax"
		case strings.Contains(msg, "wrong type"):
			gk = msg[strings.Index(msg, `"`)+1 : strings.LastIndex(msg, `"`)]
		default:
			gk = "other: " + msg
		}
	}
	if i := (&decoder{b: frame}).ws(0); i == len(frame) || frame[i] != '{' {
		// encoding/json reads other values into a struct too (null, or a
		// type error); ScanFrame wants an object.
		return fmt.Sprintf("ScanFrame error %q", gk), gk == "syntax"
	}
	if g := viewOf(&v); g != w || gk != wk {
		return fmt.Sprintf("encoding/json %+v %q\n    ScanFrame %+v %q", w, wk, g, gk), false
	}
	return "", true
}

// TestScanFrameMatchesJSON: ScanFrame reads what encoding/json reads, on
// server frames and on the corners of JSON.
func TestScanFrameMatchesJSON(t *testing.T) {
	for _, frame := range []string{
		`{}`, `{"msgid":6,"mid":9,"conv":"d:1:2","seq":3,"id":1,"name":"a","to":2,"msg":"hi","time":"t","ts":5}`,
		`{"msgid":11,"req":6,"rid":1099511627777,"errno":0,"mid":"abc","conv":"d:1:2","seq":42,"dup":true,"id":-7,"token":"t\"k"}`,
		`{"msgid":11,"req":6,"rid":4,"errno":12,"errmsg":"slow \"down\"","retry_ms":1500}`,
		`{"msgid":2,"id":1,"friends":[{"id":9,"name":"x"}],"groups":[{"id":3,"users":[{"id":9}]}],"token":"k"}`,
		`{"MsgID":6,"SEQ":3,"ſeq":4,"Dup":true,"\u212aey":1,"to\u212aen":"k"}`, `{"seq":1,"seq":2}`, `{"seq":null,"msg":null,"dup":null}`,
		`{"seq":1.5}`, `{"seq":1e2}`, `{"seq":"1"}`, `{"seq":99999999999999999999}`, `{"msgid":-0}`, `{"dup":"true"}`, `{"dup":1}`,
		`{"dup":true,"dup":false}`, `{"conv":5}`, `{"msg":["a"],"seq":{"a":1},"msgid":6}`, `{"msg":"a\"b\\c\/\b\f\n\r\t\u00e9\ud83d\ude00"}`,
		`{"msg":"\ud83d"}`, "{\"msg\":\"bad\xff\xfe\"}", "{\"msg\":\"ctl\x01\"}", `{"msg":"ü你😀"}`, `{"msg":"\x"}`,
		`{"seq":6 "id":2}`, `{"seq":}`, `{"seq":6,}`, `{"seq":06}`, `{"seq":6}x`, `{"seq":6`, `[1]`, `"x"`, ``, ` {"seq":1} `,
		`{"a":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	} {
		if diff, ok := scanVsJSON([]byte(frame)); !ok {
			t.Errorf("%.60q:\n%s", frame, diff)
		}
	}
}

// FuzzScanFrameMatchesJSON: on any input ScanFrame and encoding/json agree
// (and ScanFrame never panics).
func FuzzScanFrameMatchesJSON(f *testing.F) {
	f.Add([]byte(`{"msgid":6,"mid":9,"conv":"d:1:2","seq":3,"id":1,"msg":"b:1:2:3:x","friends":[{"id":2}],"dup":false}`))
	f.Add([]byte(`{"msgid":11,"req":6,"rid":4,"errno":12,"errmsg":"slow \"down\" \u00e9","retry_ms":1500,"Token":"t"}`))
	f.Add([]byte("{\"a\":\x00}"))
	f.Fuzz(func(t *testing.T, frame []byte) {
		if diff, ok := scanVsJSON(frame); !ok {
			t.Fatalf("%q:\n%s", frame, diff)
		}
	})
}

// TestScanFrameAllocs: reading a chat delivery or an acknowledgement
// allocates nothing.
func TestScanFrameAllocs(t *testing.T) {
	frames := [][]byte{
		[]byte(`{"msgid":6,"mid":9,"conv":"d:1:2","seq":3,"id":1,"name":"al","to":2,"msg":"b:0:1:123:xxxx","time":"2026-01-02 03:04:05","ts":1700000000123}`),
		[]byte(`{"msgid":11,"req":6,"rid":1099511627777,"mid":9,"conv":"d:1:2","seq":3,"ts":1700000000123}`),
	}
	var v FrameView
	for _, b := range frames {
		if n := testing.AllocsPerRun(100, func() { ScanFrame(b, &v) }); n != 0 {
			t.Errorf("%s: %v allocations", b, n)
		}
	}
}

func BenchmarkScanFrame(b *testing.B) {
	frame := []byte(`{"msgid":6,"mid":9,"conv":"d:1:2","seq":3,"id":1,"name":"al","to":2,"msg":"b:0:1:123:xxxx","time":"2026-01-02 03:04:05","ts":1700000000123}`)
	var v FrameView
	b.ReportAllocs()
	for b.Loop() {
		if err := ScanFrame(frame, &v); err != nil {
			b.Fatal(err)
		}
	}
}
