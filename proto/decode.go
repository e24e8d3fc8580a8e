package proto

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"clusterchat"
)

// Decode parses one frame into q. On failure it returns an *clusterchat.Error
// (EINVALID) and fills as much of q as it could, so the error reply can name
// the msgid and rid it answers.
//
// It reads exactly what encoding/json.Unmarshal into a Request reads (the
// same fields, case-insensitive key matching, unescaping, U+FFFD for
// invalid UTF-8, later duplicates winning, null leaving a field alone, a
// wrongly typed field skipped while the others are still set, nothing set
// for malformed JSON), without reflection: requests are the server's
// hottest parse (FuzzDecode holds the two to the same answers).
func Decode(frame []byte, q *Request) error {
	*q = Request{}
	if len(frame) == 0 || frame[0] != '{' {
		return clusterchat.Errorf(clusterchat.EINVALID, "a request must be a JSON object")
	}
	d := decoder{b: frame, syntax: -1, depth: 1}
	d.members(func(key []byte) { d.field(q, key) })
	if malformed, err := d.result(); err != nil {
		if malformed {
			*q = Request{}
		}
		// Otherwise the other fields are set, so msgid and rid are when
		// well typed.
		return err
	}
	if q.MsgID == 0 {
		return clusterchat.Errorf(clusterchat.EINVALID, "missing msgid")
	}
	return nil
}

// result ends a pass over one object, which only blank may follow, with
// the pass's error: malformed JSON (then the caller keeps nothing, as
// encoding/json checks the whole text before setting anything) or the
// first field of the wrong type (the others are set).
func (d *decoder) result() (malformed bool, err error) {
	if d.syntax < 0 && d.ws(d.i) != len(d.b) {
		d.fail(d.ws(d.i))
	}
	if d.syntax >= 0 {
		return true, clusterchat.Errorf(clusterchat.EINVALID, "malformed JSON at offset %d", d.syntax)
	}
	if d.badField != "" {
		return false, clusterchat.Errorf(clusterchat.EINVALID, "field %q has the wrong type or is out of range", d.badField)
	}
	return false, nil
}

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// decoder is one pass over a request. syntax is the offset of the first
// syntax error (-1: none yet); badField the first wrongly typed field.
type decoder struct {
	b        []byte
	i        int
	syntax   int
	badField string
	depth    int
	key      []byte // scratch for escaped keys
}

func (d *decoder) fail(at int) {
	if d.syntax < 0 {
		d.syntax = at
	}
	d.i = len(d.b)
}

func (d *decoder) ws(i int) int {
	for i < len(d.b) {
		switch d.b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// members passes over the object at d.i (a '{'), calling field with d.i at
// each member's value that is not null (null leaves a field alone), which
// field must pass over (Decode's and ScanFrame's objects differ only in
// their fields).
func (d *decoder) members(field func(key []byte)) {
	d.i = d.ws(d.i + 1)
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return
	}
	for {
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			d.fail(d.i)
			return
		}
		key, ok := d.rawKey()
		if !ok || !d.colon() {
			return
		}
		if d.i < len(d.b) && d.b[d.i] != 'n' {
			field(key)
		} else {
			d.skip()
		}
		if !d.afterValue('}') {
			return
		}
	}
}

// colon passes the ':' after a key and the space around it.
func (d *decoder) colon() bool {
	d.i = d.ws(d.i)
	if d.i >= len(d.b) || d.b[d.i] != ':' {
		d.fail(d.i)
		return false
	}
	d.i = d.ws(d.i + 1)
	return true
}

// afterValue passes what follows a member or an element: true after a ','
// (another one follows), false after closer or at a syntax error.
func (d *decoder) afterValue(closer byte) bool {
	d.i = d.ws(d.i)
	if d.syntax >= 0 || d.i >= len(d.b) {
		d.fail(d.i)
		return false
	}
	switch d.b[d.i] {
	case ',':
		d.i = d.ws(d.i + 1)
		return true
	case closer:
		d.i++
		return false
	}
	d.fail(d.i)
	return false
}

// rawKey reads the key string at d.i, unescaped when it has escapes.
func (d *decoder) rawKey() ([]byte, bool) {
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return d.b[start:j], true
		case c == '\\' || c < 0x20:
			s, ok := d.slowString()
			d.key = append(d.key[:0], s...)
			return d.key, ok
		}
	}
	d.fail(len(d.b))
	return nil, false
}

// The fields of Request and of FrameView (ScanFrame), by wire name: one
// name space for what clients and the server send.
const (
	fNone = iota
	fMsgID
	fRID
	fProto
	fID
	fTo
	fToID
	fName
	fPassword
	fToken
	fMsg
	fTime
	fFriendID
	fGroupID
	fGroupName
	fGroupDesc
	fCMID
	fConv
	fAfter
	fBefore
	fLimit
	fSeq
	fRole    // social (social.go)
	fPrivate // the one boolean field
	fHistory
	fNewPassword
	fCursor
	fReq // FrameView's alone from here on
	fErrno
	fRetryMS
	fDup
	fErrmsg
	fCount

	lastRequestField = fCursor
)

var fieldNames = [...]string{fMsgID: "msgid", fRID: "rid", fProto: "proto", fID: "id", fTo: "to", fToID: "toid",
	fName: "name", fPassword: "password", fToken: "token", fMsg: "msg", fTime: "time", fFriendID: "friendid",
	fGroupID: "groupid", fGroupName: "groupname", fGroupDesc: "groupdesc", fCMID: "cmid", fConv: "conv",
	fAfter: "after", fBefore: "before", fLimit: "limit", fSeq: "seq",
	fRole: "role", fPrivate: "private", fHistory: "history", fNewPassword: "newpassword", fCursor: "cursor",
	fReq: "req", fErrno: "errno", fRetryMS: "retry_ms", fDup: "dup", fErrmsg: "errmsg"}

// lookup returns the field named key: exactly, else the one whose name key
// folds to (foldKey), as encoding/json matches names; fNone for none.
func lookup(key []byte) int {
	if f := lookupExact(key); f != fNone {
		return f
	}
	var buf [16]byte
	if folded, ok := foldKey(key, &buf); ok {
		return lookupExact(folded)
	}
	return fNone
}

func lookupExact(key []byte) int {
	switch string(key) {
	case "msgid":
		return fMsgID
	case "rid":
		return fRID
	case "proto":
		return fProto
	case "id":
		return fID
	case "to":
		return fTo
	case "toid":
		return fToID
	case "name":
		return fName
	case "password":
		return fPassword
	case "token":
		return fToken
	case "msg":
		return fMsg
	case "time":
		return fTime
	case "friendid":
		return fFriendID
	case "groupid":
		return fGroupID
	case "groupname":
		return fGroupName
	case "groupdesc":
		return fGroupDesc
	case "cmid":
		return fCMID
	case "conv":
		return fConv
	case "after":
		return fAfter
	case "before":
		return fBefore
	case "limit":
		return fLimit
	case "seq":
		return fSeq
	case "role":
		return fRole
	case "private":
		return fPrivate
	case "history":
		return fHistory
	case "newpassword":
		return fNewPassword
	case "cursor":
		return fCursor
	case "req":
		return fReq
	case "errno":
		return fErrno
	case "retry_ms":
		return fRetryMS
	case "dup":
		return fDup
	case "errmsg":
		return fErrmsg
	}
	return fNone
}

// foldKey folds key into buf as encoding/json matches a name when none
// matches exactly: under Unicode simple case folding. The names are
// lower-case ASCII of at most 16 bytes, whose only non-ASCII fold partners
// are K (U+212A) for k and ſ (U+017F) for s; ok is false for a key that
// cannot fold to such a name, or that folding leaves as it is (its exact
// lookup failed already: most unknown keys).
func foldKey(key []byte, buf *[16]byte) (folded []byte, ok bool) {
	out := buf[:0]
	changed := false
	for i := 0; i < len(key); {
		if len(out) == len(buf) {
			return nil, false
		}
		c := key[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
				changed = true
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(key[i:])
		switch r {
		case '\u212a':
			out = append(out, 'k')
		case '\u017f':
			out = append(out, 's')
		default:
			return nil, false
		}
		changed = true
		i += n
	}
	return out, changed
}

// field decodes the value at d.i into q's field named key.
func (d *decoder) field(q *Request, key []byte) {
	f := lookup(key)
	if f == fNone || f > lastRequestField {
		d.skip()
		return
	}
	name := fieldNames[f]
	switch f {
	case fPrivate:
		if v, ok := d.boolValue(name); ok {
			q.Private = v
		}
	case fName, fPassword, fToken, fMsg, fTime, fGroupName, fGroupDesc, fCMID, fConv, fRole, fHistory, fNewPassword, fCursor:
		b, ok := d.stringValue(name)
		if !ok {
			return
		}
		s := string(b)
		switch f {
		case fName:
			q.Name = s
		case fPassword:
			q.Password = s
		case fToken:
			q.Token = s
		case fMsg:
			q.Msg = s
		case fTime:
			q.Time = s
		case fGroupName:
			q.GroupName = s
		case fGroupDesc:
			q.GroupDesc = s
		case fCMID:
			q.CMID = s
		case fConv:
			q.Conv = s
		case fRole:
			q.Role = s
		case fHistory:
			q.History = s
		case fNewPassword:
			q.NewPassword = s
		case fCursor:
			q.Cursor = s
		}
	default:
		v, ok := d.intValue(name)
		if !ok {
			return
		}
		switch f {
		case fMsgID:
			q.MsgID = int(v)
		case fRID:
			q.RID = v
		case fProto:
			q.Proto = int(v)
		case fID:
			q.ID = v
		case fTo:
			q.To = v
		case fToID:
			q.ToID = v
		case fFriendID:
			q.FriendID = v
		case fGroupID:
			q.GroupID = v
		case fAfter:
			q.After = v
		case fBefore:
			q.Before = v
		case fLimit:
			q.Limit = int(v)
		case fSeq:
			q.Seq = v
		}
	}
}

// The values of fields (a field named name at d.i, not null): each reads a
// value of its type, or passes over one of another type and records name
// as wrongly typed (ok false either way, and on a syntax error).

// boolValue reads true or false.
func (d *decoder) boolValue(name string) (v, ok bool) {
	switch d.b[d.i] {
	case 't':
		d.literal("true")
		return true, d.syntax < 0
	case 'f':
		d.literal("false")
		return false, d.syntax < 0
	}
	d.skip()
	d.badName(name)
	return false, false
}

// stringValue reads a string (bytes: a slice of d.b when it can).
func (d *decoder) stringValue(name string) ([]byte, bool) {
	if d.b[d.i] != '"' {
		d.skip()
		d.badName(name)
		return nil, false
	}
	return d.bytes()
}

// intValue reads an integer; a fraction, an exponent or a number out of
// int64's range is wrongly typed, as encoding/json has it.
func (d *decoder) intValue(name string) (int64, bool) {
	if c := d.b[d.i]; c != '-' && (c < '0' || c > '9') {
		d.skip()
		d.badName(name)
		return 0, false
	}
	start := d.i
	if !d.number() {
		return 0, false
	}
	v, err := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	if err != nil {
		d.badName(name)
		return 0, false
	}
	return v, true
}

// badName records name as the first wrongly typed field, unless there was
// one already or a syntax error.
func (d *decoder) badName(name string) {
	if d.badField == "" && d.syntax < 0 {
		d.badField = name
	}
}

// bytes reads the string at d.i (a '"'): a slice of d.b when it has no
// escape and is valid UTF-8 (no allocation), else slowString's copy.
func (d *decoder) bytes() ([]byte, bool) {
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			if !ascii && !utf8.Valid(d.b[start:j]) {
				return d.slowString()
			}
			d.i = j + 1
			return d.b[start:j:j], true
		case c == '\\' || c < 0x20:
			return d.slowString()
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	d.fail(len(d.b))
	return nil, false
}

// slowString reads the string at d.i with escapes, validating UTF-8 as
// encoding/json does: invalid bytes and lone surrogates become U+FFFD.
func (d *decoder) slowString() ([]byte, bool) {
	out := make([]byte, 0, 64)
	j := d.i + 1
	for j < len(d.b) {
		c := d.b[j]
		switch {
		case c == '"':
			d.i = j + 1
			return out, true
		case c < 0x20:
			d.fail(j)
			return nil, false
		case c == '\\':
			if j+1 >= len(d.b) {
				d.fail(len(d.b))
				return nil, false
			}
			switch e := d.b[j+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
				j += 2
			case 'b':
				out, j = append(out, '\b'), j+2
			case 'f':
				out, j = append(out, '\f'), j+2
			case 'n':
				out, j = append(out, '\n'), j+2
			case 'r':
				out, j = append(out, '\r'), j+2
			case 't':
				out, j = append(out, '\t'), j+2
			case 'u':
				r, ok := hex4(d.b, j+2)
				if !ok {
					d.fail(j)
					return nil, false
				}
				j += 6
				if utf16.IsSurrogate(r) {
					r2, ok := rune(-1), false
					if j+1 < len(d.b) && d.b[j] == '\\' && d.b[j+1] == 'u' {
						r2, ok = hex4(d.b, j+2)
					}
					if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
						r = dec
						j += 6
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				d.fail(j)
				return nil, false
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			j++
		default:
			r, size := utf8.DecodeRune(d.b[j:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, d.b[j:j+size]...)
			}
			j += size
		}
	}
	d.fail(len(d.b))
	return nil, false
}

// hex4 reads four hex digits at b[i:] as a rune; an incomplete or bad
// escape is a syntax error.
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	return r, true
}

// number reads a JSON number at d.i.
func (d *decoder) number() bool {
	b, i := d.b, d.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() bool {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > start
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		d.fail(i)
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			d.fail(i)
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			d.fail(i)
			return false
		}
	}
	d.i = i
	return true
}

// skip validates and passes over the value at d.i.
func (d *decoder) skip() {
	if d.i >= len(d.b) {
		d.fail(d.i)
		return
	}
	switch c := d.b[d.i]; c {
	case '"':
		d.skipString()
	case '{', '[':
		d.skipNested(c)
	case 't':
		d.literal("true")
	case 'f':
		d.literal("false")
	case 'n':
		d.literal("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			d.number()
			return
		}
		d.fail(d.i)
	}
}

func (d *decoder) literal(s string) {
	if len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		d.fail(d.i)
		return
	}
	d.i += len(s)
}

// skipString passes over a string, checking its escapes and control bytes.
func (d *decoder) skipString() {
	for j := d.i + 1; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return
		case c < 0x20:
			d.fail(j)
			return
		case c == '\\':
			if j+1 >= len(d.b) {
				d.fail(len(d.b))
				return
			}
			switch d.b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				if _, ok := hex4(d.b, j+2); !ok {
					d.fail(j)
					return
				}
				j += 5
			default:
				d.fail(j)
				return
			}
		}
	}
	d.fail(len(d.b))
}

// skipNested passes over an object or array.
func (d *decoder) skipNested(open byte) {
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxDepth {
		d.fail(d.i)
		return
	}
	closer := byte(']')
	if open == '{' {
		closer = '}'
	}
	d.i = d.ws(d.i + 1)
	if d.i < len(d.b) && d.b[d.i] == closer {
		d.i++
		return
	}
	for {
		if open == '{' {
			if d.i >= len(d.b) || d.b[d.i] != '"' {
				d.fail(d.i)
				return
			}
			if d.skipString(); d.syntax >= 0 || !d.colon() {
				return
			}
		}
		d.skip()
		if !d.afterValue(closer) {
			return
		}
	}
}
