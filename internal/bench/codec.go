package bench

import (
	"encoding/json"
	"io"

	"clusterchat"
)

// maxFrame bounds one incoming JSON object; the server refuses larger ones
// too (docs/protocol.md, MaxFrame), so anything bigger is a broken stream.
const maxFrame = 64 << 10

// frameReader splits a byte stream into top-level JSON objects. It accepts
// objects separated by NUL, whitespace or nothing (the classic server writes
// no terminator at all), and hands out slices of its own buffer so reading
// allocates nothing once the buffer has grown to the largest frame.
type frameReader struct {
	r          io.Reader
	buf        []byte
	start, end int
	// scan state of the partial object at start, so a frame split over
	// many reads is scanned once, not once per read
	scanned int // bytes of buf[start:] already scanned
	depth   int
	inStr   bool
	esc     bool
}

func newFrameReader(r io.Reader, size int) *frameReader {
	return &frameReader{r: r, buf: make([]byte, size)}
}

func isSep(c byte) bool { return c == 0 || c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// next returns the next object. The slice is valid until the next call.
func (f *frameReader) next() ([]byte, error) {
	for {
		for f.start < f.end && isSep(f.buf[f.start]) {
			f.start++
		}
		if f.start < f.end {
			if f.buf[f.start] != '{' {
				return nil, clusterchat.Errorf(clusterchat.EINVALID, "stream does not start an object: %q", f.buf[f.start])
			}
			if n := f.scan(); n > 0 {
				v := f.buf[f.start : f.start+n]
				f.start += n
				f.scanned, f.depth, f.inStr, f.esc = 0, 0, false, false
				return v, nil
			}
		}
		if f.start == f.end {
			f.start, f.end = 0, 0
		} else if f.start > 0 && f.end == len(f.buf) {
			f.end = copy(f.buf, f.buf[f.start:f.end])
			f.start = 0
		}
		if f.end == len(f.buf) {
			if len(f.buf) >= 2*maxFrame {
				return nil, clusterchat.Errorf(clusterchat.ETOOLARGE, "frame over %d bytes", maxFrame)
			}
			nb := make([]byte, 2*len(f.buf))
			f.end = copy(nb, f.buf[f.start:f.end])
			f.start = 0
			f.buf = nb
		}
		n, err := f.r.Read(f.buf[f.end:])
		f.end += n
		if n == 0 && err != nil {
			return nil, err
		}
	}
}

// scan continues scanning the object at start and returns its length once
// complete, 0 while it is still partial.
func (f *frameReader) scan() int {
	b := f.buf[f.start:f.end]
	for i := f.scanned; i < len(b); i++ {
		c := b[i]
		if f.inStr {
			switch {
			case f.esc:
				f.esc = false
			case c == '\\':
				f.esc = true
			case c == '"':
				f.inStr = false
			}
			continue
		}
		switch c {
		case '"':
			f.inStr = true
		case '{', '[':
			f.depth++
		case '}', ']':
			f.depth--
			if f.depth == 0 {
				return i + 1
			}
		}
	}
	f.scanned = len(b)
	return 0
}

// objectLen returns the length of the complete object at the start of b, or
// 0 if b holds only part of it.
func objectLen(b []byte) int {
	depth := 0
	inStr := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inStr {
			switch c {
			case '\\':
				i++
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return 0
}

// frame holds the few fields chatbench reads from a server object. String
// fields are slices into the reader's buffer (raw, still JSON-escaped, which
// the texts chatbench itself sends never need).
type frame struct {
	msgid, rid, errno, req int64
	id, seq, groupid       int64
	conv, msg, token, err  []byte
	dup                    bool
}

// parseFrame fills f from one object; unknown fields and nested values are
// skipped without decoding, so the hot path allocates nothing.
func parseFrame(b []byte, f *frame) error {
	*f = frame{}
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return clusterchat.Errorf(clusterchat.EINVALID, "not an object")
	}
	i++
	for {
		i = skipWS(b, i)
		if i < len(b) && b[i] == '}' {
			return nil
		}
		if i >= len(b) || b[i] != '"' {
			return clusterchat.Errorf(clusterchat.EINVALID, "bad key at %d", i)
		}
		kend := strEnd(b, i)
		if kend < 0 {
			return clusterchat.Errorf(clusterchat.EINVALID, "unterminated key")
		}
		key := b[i+1 : kend-1]
		i = skipWS(b, kend)
		if i >= len(b) || b[i] != ':' {
			return clusterchat.Errorf(clusterchat.EINVALID, "missing colon")
		}
		i = skipWS(b, i+1)
		vend := valueEnd(b, i)
		if vend < 0 {
			return clusterchat.Errorf(clusterchat.EINVALID, "bad value")
		}
		val := b[i:vend]
		switch string(key) {
		case "msgid":
			f.msgid = atoi(val)
		case "rid":
			f.rid = atoi(val)
		case "errno":
			f.errno = atoi(val)
		case "req":
			f.req = atoi(val)
		case "id":
			f.id = atoi(val)
		case "seq":
			f.seq = atoi(val)
		case "groupid":
			f.groupid = atoi(val)
		case "conv":
			f.conv = unq(val)
		case "msg":
			f.msg = unq(val)
		case "token":
			f.token = unq(val)
		case "errmsg":
			f.err = unq(val)
		case "dup":
			f.dup = string(val) == "true"
		}
		i = skipWS(b, vend)
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && isSep(b[i]) {
		i++
	}
	return i
}

// strEnd returns the index just past the string starting at b[i] == '"'.
func strEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// valueEnd returns the index just past the JSON value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return strEnd(b, i)
	case '{', '[':
		n := objectLen(b[i:])
		if n == 0 {
			return -1
		}
		return i + n
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && !isSep(b[j]) {
		j++
	}
	return j
}

// atoi parses a JSON integer; anything else (a string id, a float) is 0.
func atoi(b []byte) int64 {
	var n int64
	neg := false
	for k, c := range b {
		if k == 0 && c == '-' {
			neg = true
			continue
		}
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		return -n
	}
	return n
}

// unq strips the quotes of a JSON string value. Escaped strings (only error
// texts in practice) are decoded properly, at the cost of an allocation.
func unq(v []byte) []byte {
	if len(v) < 2 || v[0] != '"' {
		return nil
	}
	s := v[1 : len(v)-1]
	for _, c := range s {
		if c == '\\' {
			var out string
			if json.Unmarshal(v, &out) == nil {
				return []byte(out)
			}
			return s
		}
	}
	return s
}

// appendJSONString appends s as a JSON string; chatbench's own names and
// texts are ASCII letters, digits and punctuation, but quote whatever comes.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
