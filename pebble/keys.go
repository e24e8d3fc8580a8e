package pebble

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"

	"clusterchat"
)

// Key layout. Every key starts with a one-byte prefix naming its "table";
// integers are 8-byte big-endian so that a scan of a prefix returns them in
// ascending order (ids are positive). Strings at the end of a key are raw
// (nothing follows them); a conversation name inside a message key is
// length-prefixed so that no conversation's keys can fall inside another's
// range, whatever bytes the name holds.
//
//	a<name>                     meta: "msgid" -> last message id (be64), "lastgroup" -> last group id
//	b<uid><target>              uid blocks target -> ""
//	c<sender><cmid>             cmid index -> the message's key
//	d<gid><uid>                 former member -> joined seq, left seq (be64 each)
//	e<gid><uid>                 group member -> role [0x00 joined seq (be64)]
//	f<uid><friend>              friendship, one row per direction -> ""
//	g<gid>                      group -> name, desc, creator
//	h<name>                     group name index -> gid
//	i<uid><gid>                 a user's groups -> ""
//	k<uid><conv>                cursors: the user's conversations -> delivered, read (be64 each)
//	m<len(conv)><conv><seq>     message -> encodeMsg
//	n<name>                     user name index -> uid
//	o<uid><gid>                 a user's pending invitations and requests -> ""
//	p<gid><uid>                 pending invitation or request -> kind, by, unix ms
//	q<from><to>                 friend request -> unix ms (be64)
//	r<to><from>                 friend requests received -> ""
//	t<hash>                     session token -> uid, expires (unix ms), be64 each
//	u<uid>                      user -> name, pass hash
//	T<uid><hash>                a user's tokens -> "" (index of t, for revoking them all)
const (
	pMeta      = 'a'
	pBlock     = 'b'
	pCMID      = 'c'
	pDeparted  = 'd'
	pMember    = 'e'
	pFriend    = 'f'
	pGroup     = 'g'
	pGroupName = 'h'
	pUserGroup = 'i'
	pCursor    = 'k'
	pMsg       = 'm'
	pUserName  = 'n'
	pUserPend  = 'o'
	pPending   = 'p'
	pFriendReq = 'q'
	pFriendRcv = 'r'
	pToken     = 't'
	pUser      = 'u'
	pUserToken = 'T'
)

// metaMsgID holds the last message id, written by every Append that stores
// a message: messages are keyed by conversation, so nothing else would give
// the highest id at Open without a full scan.
var metaMsgID = []byte{pMeta, 'm', 's', 'g', 'i', 'd'}

// metaTokenIndex marks a store whose every token has its T index row:
// stores made before the index are backfilled once at Open.
var metaTokenIndex = []byte{pMeta, 't', 'o', 'k', 'i', 'd', 'x'}

// metaLastGroup holds the last group id given out, so that a deleted group's
// id (possibly the last g key) is never given again.
var metaLastGroup = []byte("alastgroup")

// msgVersion is the first byte of every encoded message, so that the format
// can change without a migration of old rows.
const msgVersion = 1

func appendInt(b []byte, v int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(v)) }

func getInt(b []byte) int64 { return int64(binary.BigEndian.Uint64(b)) }

// key1 builds prefix + be64(a).
func key1(buf []byte, p byte, a int64) []byte { return appendInt(append(buf[:0], p), a) }

// key2 builds prefix + be64(a) + be64(b).
func key2(buf []byte, p byte, a, b int64) []byte { return appendInt(key1(buf, p, a), b) }

// keyStr builds prefix + s.
func keyStr(buf []byte, p byte, s string) []byte { return append(append(buf[:0], p), s...) }

// keyIntStr builds prefix + be64(a) + s.
func keyIntStr(buf []byte, p byte, a int64, s string) []byte { return append(key1(buf, p, a), s...) }

// msgPrefix is the prefix of every message key of conv.
func msgPrefix(buf []byte, conv string) []byte {
	buf = binary.AppendUvarint(append(buf[:0], pMsg), uint64(len(conv)))
	return append(buf, conv...)
}

// msgKey is the key of message seq of conv.
func msgKey(buf []byte, conv string, seq int64) []byte { return appendInt(msgPrefix(buf, conv), seq) }

// parseMsgKey splits a message key into its conversation and seq.
func parseMsgKey(k []byte) (conv string, seq int64, err error) {
	if len(k) < 1+1+8 || k[0] != pMsg {
		return "", 0, errCorrupt
	}
	n, w := binary.Uvarint(k[1:])
	if w <= 0 || uint64(len(k)) != 1+uint64(w)+n+8 {
		return "", 0, errCorrupt
	}
	return string(k[1+w : len(k)-8]), getInt(k[len(k)-8:]), nil
}

// prefixEnd returns the smallest key above every key that starts with p
// (nil: no such key, p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// errCorrupt reports a row this package cannot have written.
var errCorrupt = errors.New("pebble: corrupt row")

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// reader decodes the values written with appendStr and binary varints; the
// first malformed field sets err and every later read returns zero.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errCorrupt
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string { return string(r.bytes()) }

// encodeUser is the value of a u row.
func encodeUser(b []byte, name, passHash string) []byte {
	return appendStr(appendStr(b, name), passHash)
}

func decodeUser(v []byte, u *clusterchat.User) error {
	r := reader{b: v}
	u.Name, u.PassHash = r.str(), r.str()
	return r.err
}

// encodeGroup is the value of a g row: name, desc, creator, then (since the
// social settings) a private flag and the history setting. Rows written
// before have nothing after creator and decode as public, HistoryJoined:
// that is the whole migration of old groups.
func encodeGroup(b []byte, g *clusterchat.Group, creator int64) []byte {
	b = binary.AppendVarint(appendStr(appendStr(b, g.Name), g.Desc), creator)
	private := byte(0)
	if g.Private {
		private = 1
	}
	return appendStr(append(b, private), g.History)
}

// decodeGroup fills g from a g row and returns its creator.
func decodeGroup(v []byte, g *clusterchat.Group) (int64, error) {
	r := reader{b: v}
	g.Name, g.Desc = r.str(), r.str()
	creator := r.varint()
	g.Private, g.History = false, clusterchat.HistoryJoined
	if r.err == nil && len(r.b) > 0 {
		g.Private = r.b[0] == 1
		r.b = r.b[1:]
		g.History = r.str()
	}
	return creator, r.err
}

// memberVal is the value of an e row: the role, then 0x00 and the join seq.
// Rows written before the social settings hold the role alone (join seq 0:
// their members read the whole history, as they always did).
func memberVal(role string, joined int64) []byte {
	return appendInt(append([]byte(role), 0), joined)
}

func parseMember(v []byte) (role string, joined int64, err error) {
	i := bytes.IndexByte(v, 0)
	if i < 0 {
		return string(v), 0, nil
	}
	if len(v) != i+9 {
		return "", 0, errCorrupt
	}
	return string(v[:i]), getInt(v[i+1:]), nil
}

// encodeMsg is the value of an m row: everything but Conv and Seq (they are
// in the key) and Dup (the caller's flag). Integers are varints and strings
// length-prefixed: a typical chat message takes some 20 bytes beyond its
// text.
func encodeMsg(b []byte, m *clusterchat.Message, ms int64) []byte {
	b = append(b, msgVersion)
	b = binary.AppendUvarint(b, uint64(m.ID))
	b = binary.AppendVarint(b, m.From)
	b = binary.AppendVarint(b, m.To)
	b = binary.AppendVarint(b, m.GroupID)
	b = binary.AppendVarint(b, ms)
	b = appendStr(b, m.FromName)
	b = appendStr(b, m.Body)
	b = appendStr(b, m.CTime)
	return appendStr(b, m.CMID)
}

// decodeMsg fills m from the value of an m row (Conv and Seq are the
// caller's, from the key). The four strings share one allocation.
func decodeMsg(v []byte, m *clusterchat.Message) error {
	if len(v) == 0 || v[0] != msgVersion {
		return errCorrupt
	}
	r := reader{b: v[1:]}
	m.ID = int64(r.uvarint())
	m.From, m.To, m.GroupID = r.varint(), r.varint(), r.varint()
	ms := r.varint()
	if r.err != nil {
		return r.err
	}
	all := string(r.b)
	field := func() string {
		n := r.uvarint()
		if r.err != nil || n > uint64(len(r.b)) {
			r.err = errCorrupt
			return ""
		}
		w := len(all) - len(r.b) // after the length
		r.b = r.b[n:]
		return all[w : w+int(n)]
	}
	m.FromName, m.Body, m.CTime, m.CMID = field(), field(), field(), field()
	m.Time = time.UnixMilli(ms)
	m.Dup = false
	return r.err
}

// cursorVal is the value of a k row.
func cursorVal(b []byte, delivered, read int64) []byte {
	return appendInt(appendInt(b[:0], delivered), read)
}

func parseCursor(v []byte) (delivered, read int64, err error) {
	if len(v) != 16 {
		return 0, 0, errCorrupt
	}
	return getInt(v), getInt(v[8:]), nil
}
