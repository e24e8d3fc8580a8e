package proto

import "clusterchat"

// FrameView is the scalar fields of an object the server sends, read by
// ScanFrame without allocating: the string fields are slices of the
// scanned bytes (copies only when a string has escapes or invalid UTF-8).
// It is for clients that read many frames and few fields (chatbench);
// DecodeFrame reads every field into a Frame. The fields mean what Frame's
// of the same name mean.
type FrameView struct {
	MsgID   int
	RID     int64
	Req     int
	Errno   int
	RetryMS int64
	ID      int64
	Seq     int64
	GroupID int64
	Dup     bool

	Conv, Msg, Token, Errmsg []byte
}

// ScanFrame reads one object the server sent into v. It reads what
// encoding/json would read into a struct of v's fields (keys matched
// case-insensitively, null leaving a field alone, later duplicates
// winning), skipping every other member, nested ones included: the same
// decoder as Decode's. A malformed object or a field of the wrong type is
// an EINVALID error; with a wrongly typed field the others are still set.
func ScanFrame(b []byte, v *FrameView) error {
	*v = FrameView{}
	d := decoder{b: b, syntax: -1, depth: 1}
	d.i = d.ws(0)
	if d.i >= len(b) || b[d.i] != '{' {
		return clusterchat.Errorf(clusterchat.EINVALID, "a frame must be a JSON object")
	}
	d.members(func(key []byte) { d.viewField(v, key) })
	if d.syntax < 0 && d.ws(d.i) != len(d.b) {
		d.fail(d.ws(d.i))
	}
	if d.syntax >= 0 {
		*v = FrameView{}
		return clusterchat.Errorf(clusterchat.EINVALID, "malformed JSON at offset %d", d.syntax)
	}
	if d.badField != "" {
		return clusterchat.Errorf(clusterchat.EINVALID, "field %q has the wrong type or is out of range", d.badField)
	}
	return nil
}

// The fields of FrameView, by wire name.
const (
	vNone = iota
	vMsgID
	vRID
	vReq
	vErrno
	vRetryMS
	vID
	vSeq
	vGroupID
	vDup
	vConv
	vMsg
	vToken
	vErrmsg
)

var viewNames = [...]string{vMsgID: "msgid", vRID: "rid", vReq: "req", vErrno: "errno", vRetryMS: "retry_ms",
	vID: "id", vSeq: "seq", vGroupID: "groupid", vDup: "dup", vConv: "conv", vMsg: "msg", vToken: "token", vErrmsg: "errmsg"}

func viewLookup(key []byte) int {
	switch string(key) {
	case "msgid":
		return vMsgID
	case "rid":
		return vRID
	case "req":
		return vReq
	case "errno":
		return vErrno
	case "retry_ms":
		return vRetryMS
	case "id":
		return vID
	case "seq":
		return vSeq
	case "groupid":
		return vGroupID
	case "dup":
		return vDup
	case "conv":
		return vConv
	case "msg":
		return vMsg
	case "token":
		return vToken
	case "errmsg":
		return vErrmsg
	}
	return vNone
}

// viewField reads the value at d.i into v's field named key.
func (d *decoder) viewField(v *FrameView, key []byte) {
	f := viewLookup(key)
	if f == vNone {
		var buf [16]byte
		if folded, ok := foldKey(key, &buf); ok {
			f = viewLookup(folded)
		}
	}
	if f == vNone || d.i >= len(d.b) || d.b[d.i] == 'n' { // null leaves the field alone
		d.skip()
		return
	}
	name := viewNames[f]
	switch f {
	case vDup:
		if b, ok := d.boolValue(name); ok {
			v.Dup = b
		}
	case vConv, vMsg, vToken, vErrmsg:
		s, ok := d.stringValue(name)
		if !ok {
			return
		}
		switch f {
		case vConv:
			v.Conv = s
		case vMsg:
			v.Msg = s
		case vToken:
			v.Token = s
		case vErrmsg:
			v.Errmsg = s
		}
	default:
		n, ok := d.intValue(name)
		if !ok {
			return
		}
		switch f {
		case vMsgID:
			v.MsgID = int(n)
		case vRID:
			v.RID = n
		case vReq:
			v.Req = int(n)
		case vErrno:
			v.Errno = int(n)
		case vRetryMS:
			v.RetryMS = n
		case vID:
			v.ID = n
		case vSeq:
			v.Seq = n
		case vGroupID:
			v.GroupID = n
		}
	}
}
