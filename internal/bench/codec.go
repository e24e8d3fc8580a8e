package bench

import (
	"encoding/json"

	"clusterchat"
)

// maxFrame bounds one incoming JSON object. Replies are small, but a
// login reply lists friends and groups, so allow more than a request.
const maxFrame = 2 * clusterchat.MaxFrame

func isSep(c byte) bool { return c == 0 || c == ' ' || c == '\n' || c == '\r' || c == '\t' }

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
