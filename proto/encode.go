package proto

import (
	"strconv"
	"unicode/utf8"

	"clusterchat"
)

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, so
// the output is always valid JSON whatever a client sent.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hex = "0123456789abcdef"

func appendKeyInt(b []byte, key string, v int64) []byte {
	b = append(b, key...)
	return strconv.AppendInt(b, v, 10)
}

func appendKeyStr(b []byte, key, v string) []byte {
	b = append(b, key...)
	return AppendString(b, v)
}

// AppendClassicChat appends m as the classic protocol sends a chat message:
// compact, keys sorted, only the classic fields, so the classic client's
// parser finds exactly what it expects.
func AppendClassicChat(b []byte, m *clusterchat.Message) []byte {
	if m.IsGroup() {
		b = appendKeyInt(b, `{"groupid":`, m.GroupID)
		b = appendKeyInt(b, `,"id":`, m.From)
		b = appendKeyStr(b, `,"msg":`, m.Body)
		b = append(b, `,"msgid":10`...)
		b = appendKeyStr(b, `,"name":`, m.FromName)
		b = appendKeyStr(b, `,"time":`, m.CTime)
		return append(b, '}')
	}
	b = appendKeyInt(b, `{"id":`, m.From)
	b = appendKeyStr(b, `,"msg":`, m.Body)
	b = append(b, `,"msgid":6`...)
	b = appendKeyStr(b, `,"name":`, m.FromName)
	b = appendKeyStr(b, `,"time":`, m.CTime)
	b = appendKeyInt(b, `,"to":`, m.To)
	return append(b, '}')
}

// AppendNativeChat appends m as the native protocol delivers it: the classic
// fields plus mid, conv, seq and ts.
func AppendNativeChat(b []byte, m *clusterchat.Message) []byte {
	if m.IsGroup() {
		b = append(b, `{"msgid":10`...)
		b = appendKeyInt(b, `,"groupid":`, m.GroupID)
	} else {
		b = append(b, `{"msgid":6`...)
		b = appendKeyInt(b, `,"to":`, m.To)
	}
	b = appendKeyInt(b, `,"mid":`, m.ID)
	b = appendKeyStr(b, `,"conv":`, m.Conv)
	b = appendKeyInt(b, `,"seq":`, m.Seq)
	b = appendKeyInt(b, `,"id":`, m.From)
	b = appendKeyStr(b, `,"name":`, m.FromName)
	b = appendKeyStr(b, `,"msg":`, m.Body)
	b = appendKeyStr(b, `,"time":`, m.CTime)
	b = appendKeyInt(b, `,"ts":`, m.Time.UnixMilli())
	return append(b, '}')
}

// AppendChatAck appends the native acknowledgement of a committed message.
func AppendChatAck(b []byte, req int, rid int64, m *clusterchat.Message) []byte {
	b = appendKeyInt(appendReplyHead(b, req, rid), `,"mid":`, m.ID)
	b = appendKeyStr(b, `,"conv":`, m.Conv)
	b = appendKeyInt(b, `,"seq":`, m.Seq)
	b = appendKeyInt(b, `,"ts":`, m.Time.UnixMilli())
	b = appendKeyStr(b, `,"time":`, m.CTime)
	if m.Dup {
		b = append(b, `,"dup":true`...)
	}
	return append(b, '}')
}

// AppendError appends an error reply. Login and register failures use their
// classic ack msgid; everything else msgid 11 with req naming the request.
// native adds the rid.
func AppendError(b []byte, req int, rid int64, native bool, err error) []byte {
	code, text := clusterchat.ErrorCode(err), clusterchat.ErrorMessage(err)
	switch req {
	case Login, Register:
		ack := LoginAck
		if req == Register {
			ack = RegisterAck
		}
		b = appendKeyStr(b, `{"errmsg":`, text)
		b = appendKeyInt(b, `,"errno":`, int64(code))
		b = appendKeyInt(b, `,"msgid":`, int64(ack))
	default:
		b = appendKeyStr(b, `{"errmsg":`, text)
		b = appendKeyInt(b, `,"errno":`, int64(code))
		b = append(b, `,"msgid":11`...)
		b = appendKeyInt(b, `,"req":`, int64(req))
	}
	if native {
		b = appendKeyInt(b, `,"rid":`, rid)
		// The classic shape stays as it was: its errmsg says when, in words.
		if d := clusterchat.RetryAfter(err); d > 0 {
			b = appendKeyInt(b, `,"retry_ms":`, max(d.Milliseconds(), 1))
		}
	}
	return append(b, '}')
}
