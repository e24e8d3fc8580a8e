package proto

import "clusterchat"

// FrameView is the scalar fields of an object the server sends, read by
// ScanFrame without allocating: the string fields are slices of the
// scanned bytes (copies only when a string has escapes or invalid UTF-8).
// It is for clients that read many frames and few fields (chatbench);
// DecodeFrame reads every field into a Frame. The fields mean what Frame's
// of the same name mean.
type FrameView struct {
	MsgID   int64
	RID     int64
	Req     int64
	Errno   int64
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
// winning), passing over every other member, nested ones included: the
// decoder is Decode's. A malformed object or a field of the wrong type is
// an EINVALID error; with a wrongly typed field the others are still set.
func ScanFrame(b []byte, v *FrameView) error {
	*v = FrameView{}
	d := decoder{b: b, syntax: -1, depth: 1}
	d.i = d.ws(0)
	if d.i >= len(b) || b[d.i] != '{' {
		return clusterchat.Errorf(clusterchat.EINVALID, "a frame must be a JSON object")
	}
	// v's fields by the index of their names (decode.go).
	ints := [fCount]*int64{fMsgID: &v.MsgID, fRID: &v.RID, fReq: &v.Req, fErrno: &v.Errno, fRetryMS: &v.RetryMS,
		fID: &v.ID, fSeq: &v.Seq, fGroupID: &v.GroupID}
	strs := [fCount]*[]byte{fConv: &v.Conv, fMsg: &v.Msg, fToken: &v.Token, fErrmsg: &v.Errmsg}
	d.members(func(key []byte) {
		f := lookup(key)
		switch {
		case f == fDup:
			if b, ok := d.boolValue(fieldNames[f]); ok {
				v.Dup = b
			}
		case ints[f] != nil:
			if n, ok := d.intValue(fieldNames[f]); ok {
				*ints[f] = n
			}
		case strs[f] != nil:
			if s, ok := d.stringValue(fieldNames[f]); ok {
				*strs[f] = s
			}
		default:
			d.skip()
		}
	})
	malformed, err := d.result()
	if malformed {
		*v = FrameView{}
	}
	return err
}
