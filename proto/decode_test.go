package proto

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// viaJSON is what encoding/json makes of frame: the Request and the kind of
// error ("", "syntax", or the name of the first wrongly typed field).
func viaJSON(frame []byte) (Request, string) {
	var q Request
	err := json.Unmarshal(frame, &q)
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case err == nil:
		return q, ""
	case errors.As(err, &te):
		return q, te.Field
	case errors.As(err, &se):
		return q, "syntax"
	}
	return q, "other: " + err.Error()
}

// viaDecode is the same for Decode.
func viaDecode(frame []byte) (Request, string) {
	var q Request
	err := Decode(frame, &q)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	switch {
	case err == nil, strings.Contains(msg, "missing msgid"):
		return q, ""
	case strings.Contains(msg, "malformed JSON"):
		return q, "syntax"
	case strings.Contains(msg, "wrong type"):
		return q, msg[strings.Index(msg, `"`)+1 : strings.LastIndex(msg, `"`)]
	}
	return q, "other: " + msg
}

// TestDecodeMatchesJSON holds Decode to encoding/json's answers on the
// corners of JSON a client may send.
func TestDecodeMatchesJSON(t *testing.T) {
	for _, frame := range []string{
		`{}`, `{"msgid":6,"rid":1,"to":2,"msg":"hi","cmid":"c"}`, `{"msgid":1} `, "{\n\"msgid\"\t:\r1}",
		`{"MsgID":6,"TO":2,"ſeq":3,"toKen":"t","Token":"u"}`, `{"msgid":6,"msgid":7}`, `{"msgid":null,"msg":null}`,
		`{"msgid":6 "to":2}`, `{"msgid":6,"to":}`, `{"msgid":6,}`, `{"msgid":06}`, `{"msgid":-}`, `{"msgid":1.}`,
		`{"msgid":"6"}`, `{"msgid":99999999999999999999,"rid":5}`, `{"to":1e30,"msgid":6}`, `{"to":1.5,"msgid":6}`,
		`{"to":-0,"msgid":6}`, `{"to":true,"msg":5,"msgid":6,"rid":3}`, `{"msg":["a"],"to":{"a":1},"msgid":6}`,
		`{"msg":"a\"b\\c\/\b\f\n\r\t\u00e9\ud83d\ude00","msgid":6}`, `{"msg":"\ud83d","msgid":6}`, `{"msg":"\ud83dx\ude00","msgid":6}`,
		`{"msg":"\udc00\ud800","msgid":6}`, "{\"msg\":\"bad\xff\xfe\",\"msgid\":6}", "{\"msg\":\"ctl\x01\",\"msgid\":6}",
		`{"msg":"\x","msgid":6}`, `{"msg":"\u12","msgid":6}`, `{"msg":"\u12g4"}`, `{"m\u0073g":"k","msgid":6}`,
		`{"other":[1,{"a":[true,false,null,"x\"]"]}],"msgid":6}`, `{"other":tru,"msgid":6}`, `{"other":[1,],"msgid":6}`,
		`{"msgid":6}x`, `{"msgid":6}}`, `{"msgid":6`, `{"msgid"`, `{"msgid":6,"msg":"abc`, `{"a":{"b":}}`,
		`{"msgid":1e2}`, `{"msgid":1E+2}`, `{"msgid":-1}`, `{"proto":2.0,"msgid":1}`, `{"msg":"ü你😀","msgid":6}`,
		`{"\u212aey":1,"to\u212a":1,"msgid":6}`, `{"` + "\u212a" + `":1}`, `{"groupdesc":"x","GROUPDESC":"y","msgid":8}`,
		`{"msgid":8,"private":true,"history":"all","role":"admin","newpassword":"n","cursor":"c"}`,
		`{"msgid":8,"private":false}`, `{"msgid":8,"private":1}`, `{"msgid":8,"private":"true"}`, `{"msgid":8,"PRIVATE":tru}`,
		`{"a":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
		`{"a":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `,"msgid":6}`,
	} {
		wq, wk := viaJSON([]byte(frame))
		gq, gk := viaDecode([]byte(frame))
		if wq != gq || wk != gk {
			t.Errorf("%.60q:\nencoding/json %+v %q\n       Decode %+v %q", frame, wq, wk, gq, gk)
		}
	}
}

// FuzzDecodeMatchesJSON: on any object Decode and encoding/json agree.
func FuzzDecodeMatchesJSON(f *testing.F) {
	f.Add([]byte(`{"msgid":6,"rid":12345,"to":2,"msg":"hello \u00e9\n","cmid":"dev-1-123","x":[1,{"y":null}]}`))
	f.Add([]byte(`{"msgid":"6","to":1.5,"TOKEN":"t","groupname":"\ud83d"}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) == 0 || frame[0] != '{' {
			return
		}
		wq, wk := viaJSON(frame)
		gq, gk := viaDecode(frame)
		if wq != gq || wk != gk {
			t.Fatalf("%q:\nencoding/json %+v %q\n       Decode %+v %q", frame, wq, wk, gq, gk)
		}
	})
}
