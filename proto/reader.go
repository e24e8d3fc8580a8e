// Package proto implements the wire formats of clusterchat: the stream
// reader that cuts a connection into JSON values, request decoding, and the
// encoders of the classic and native protocols (docs/protocol.md).
package proto

import (
	"errors"
	"io"

	"clusterchat"
)

// ErrGarbage means the stream holds bytes that cannot start a JSON value, so
// the reader cannot find the next frame: the connection must be closed.
var ErrGarbage = clusterchat.Errorf(clusterchat.EINVALID, "stream is not JSON")

// ErrInvalidJSON means a value began but a byte in it cannot belong to any
// valid JSON value. It is reported as soon as that byte arrives, without
// waiting for the value's brackets to balance; the stream cannot be
// re-synchronised after it, so the connection must be closed.
var ErrInvalidJSON = clusterchat.Errorf(clusterchat.EINVALID, "frame is not valid JSON")

// ErrFrameTooLarge means a JSON value exceeded the frame limit. The rest of
// the stream cannot be trusted, so the connection must be closed.
var ErrFrameTooLarge = clusterchat.Errorf(clusterchat.ETOOLARGE, "frame exceeds 64 KiB")

// Reader cuts a byte stream into JSON values. Values may be separated by NUL
// bytes, whitespace or nothing; several may come in one read and one may be
// split over many. It checks the JSON syntax as the bytes come (not the
// UTF-8 in strings, which the decoder and the field checks judge): a value
// that cannot become valid JSON is refused with ErrInvalidJSON at the first
// byte that makes it so, not when its brackets balance, so a peer cannot make
// the server buffer up to the frame limit of what is already known to be
// junk. A well-formed value that is not a request (not an object, wrong
// fields) is returned; the decoder answers it.
//
// The buffer starts small, grows up to the frame limit for a large value and
// shrinks back afterwards: an idle connection holds only the small buffer.
type Reader struct {
	r       io.Reader
	buf     []byte
	start   int // first unconsumed byte
	end     int // end of buffered data
	max     int
	initial int
	scanPos int  // resume point of an incomplete scan, relative to start
	began   bool // a value has begun at start
	state   scanState
	stack   []byte // open containers of the current value: '{' or '['
	key     bool   // the string being scanned is an object key
	lit     string // the rest of the literal (true, false, null) being scanned
}

// scanState is where the syntax check stands inside the current value.
type scanState uint8

const (
	stValue      scanState = iota // a value must start (after ':' or ',' in an array)
	stValueOrEnd                  // after '[': a value or ']'
	stKeyOrEnd                    // after '{': a key or '}'
	stKey                         // after ',' in an object: a key
	stColon                       // after a key
	stCommaOrEnd                  // after a value inside a container
	stString                      // inside a string
	stEscape                      // after a backslash in a string
	stHex1                        // \u and 1-4 hex digits to go
	stHex2
	stHex3
	stHex4
	stLiteral // inside true, false or null
	stMinus   // a number after '-'
	stZero    // a number's leading 0 (complete)
	stInt     // integer digits (complete)
	stDot     // after '.'
	stFrac    // fraction digits (complete)
	stExp     // after 'e' or 'E'
	stExpSign // after the exponent's sign
	stExpInt  // exponent digits (complete)
)

// numberDone reports whether a number in state s is complete if it ends here.
func numberDone(s scanState) bool { return s == stZero || s == stInt || s == stFrac || s == stExpInt }

// NewReader returns a Reader with an initial buffer of size bytes and a frame
// limit of max bytes.
func NewReader(r io.Reader, size, max int) *Reader {
	if size <= 0 {
		size = 512
	}
	return &Reader{r: r, max: max, initial: size}
}

// Buffered reports whether bytes are waiting in the buffer, so a caller can
// flush replies only when no further request is already at hand.
func (r *Reader) Buffered() bool { return r.end > r.start }

// InFrame reports whether a value has begun and is not complete yet, so the
// next read from the underlying reader is one that finishes a frame (a
// caller bounds that wait more tightly than the wait for a new frame). It
// is meant to be called from the underlying reader's Read, by Next's
// goroutine.
func (r *Reader) InFrame() bool { return r.began }

// Next returns the next JSON value. The slice is valid until the next call.
// It returns io.EOF at a clean end of stream (only separators after the last
// value), io.ErrUnexpectedEOF if the stream ends inside a value,
// ErrFrameTooLarge, ErrGarbage or ErrInvalidJSON when the stream cannot go
// on, and the underlying reader's error otherwise.
func (r *Reader) Next() ([]byte, error) {
	for {
		if n, ok, err := r.scan(); err != nil {
			return nil, err
		} else if ok {
			v := r.buf[r.start : r.start+n]
			r.start += n
			r.reset()
			return v, nil
		}
		if err := r.fill(); err != nil {
			if errors.Is(err, io.EOF) && r.began {
				if len(r.stack) == 0 && numberDone(r.state) {
					// A top-level number ends with the stream.
					v := r.buf[r.start:r.end]
					r.start = r.end
					r.reset()
					return v, nil
				}
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

func (r *Reader) reset() {
	r.scanPos, r.began, r.state, r.key, r.lit = 0, false, stValue, false, ""
	if cap(r.stack) > 64 { // a deeply nested frame has passed
		r.stack = nil
	}
	r.stack = r.stack[:0]
}

// fill reads more bytes, compacting or growing the buffer first.
func (r *Reader) fill() error {
	if r.buf == nil {
		r.buf = make([]byte, r.initial)
	}
	if r.start == r.end {
		r.start, r.end = 0, 0
		if len(r.buf) > r.initial { // a big frame has passed: give the memory back
			r.buf = make([]byte, r.initial)
		}
	}
	if r.end == len(r.buf) {
		if r.start > 0 {
			copy(r.buf, r.buf[r.start:r.end])
			r.end -= r.start
			r.start = 0
		} else {
			if len(r.buf) >= r.max+1 {
				return ErrFrameTooLarge
			}
			nb := make([]byte, min(2*len(r.buf), r.max+1))
			copy(nb, r.buf[:r.end])
			r.buf = nb
		}
	}
	n, err := r.r.Read(r.buf[r.end:])
	r.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

func isSep(c byte) bool { return c == 0 || c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// isSpace is JSON's whitespace, allowed between the tokens of a value.
func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// scan checks the value starting at r.start (after skipping separators) up
// to the buffered end, resuming where the last call stopped. It returns the
// value's length when complete.
func (r *Reader) scan() (int, bool, error) {
	if !r.began {
		for r.start < r.end && isSep(r.buf[r.start]) {
			r.start++
		}
		if r.start == r.end {
			return 0, false, nil
		}
		c := r.buf[r.start]
		switch {
		case c == '{' || c == '[' || c == '"' || c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n':
		default:
			return 0, false, ErrGarbage
		}
		r.began = true
		r.scanPos = 0
		r.state = stValue
	}
	b := r.buf[r.start:r.end]
	i := r.scanPos
	for i < len(b) {
		c := b[i]
		switch r.state {
		case stString:
			// The bulk of a frame: run through plain string bytes.
			for c != '"' && c != '\\' && c >= 0x20 {
				i++
				if i == len(b) {
					return r.keep(i)
				}
				c = b[i]
			}
			switch {
			case c == '"':
				if r.key {
					r.key = false
					r.state = stColon
				} else if r.endValue() {
					return i + 1, true, nil
				}
			case c == '\\':
				r.state = stEscape
			default:
				return 0, false, ErrInvalidJSON // a control character in a string
			}
		case stEscape:
			switch c {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				r.state = stString
			case 'u':
				r.state = stHex1
			default:
				return 0, false, ErrInvalidJSON
			}
		case stHex1, stHex2, stHex3, stHex4:
			if !isHex(c) {
				return 0, false, ErrInvalidJSON
			}
			if r.state == stHex4 {
				r.state = stString
			} else {
				r.state++
			}
		case stLiteral:
			if c != r.lit[0] {
				return 0, false, ErrInvalidJSON
			}
			r.lit = r.lit[1:]
			if r.lit == "" && r.endValue() {
				return i + 1, true, nil
			}
		case stValue, stValueOrEnd:
			switch {
			case isSpace(c):
			case c == ']' && r.state == stValueOrEnd:
				if r.pop() {
					return i + 1, true, nil
				}
			default:
				if !r.beginValue(c) {
					return 0, false, ErrInvalidJSON
				}
			}
		case stKeyOrEnd, stKey:
			switch {
			case isSpace(c):
			case c == '"':
				r.state, r.key = stString, true
			case c == '}' && r.state == stKeyOrEnd:
				if r.pop() {
					return i + 1, true, nil
				}
			default:
				return 0, false, ErrInvalidJSON
			}
		case stColon:
			switch {
			case isSpace(c):
			case c == ':':
				r.state = stValue
			default:
				return 0, false, ErrInvalidJSON
			}
		case stCommaOrEnd:
			top := r.stack[len(r.stack)-1]
			switch {
			case isSpace(c):
			case c == ',':
				if top == '{' {
					r.state = stKey
				} else {
					r.state = stValue
				}
			case c == '}' || c == ']':
				if top != c-2 { // '{'+2 == '}', '['+2 == ']'
					return 0, false, ErrInvalidJSON
				}
				if r.pop() {
					return i + 1, true, nil
				}
			default:
				return 0, false, ErrInvalidJSON
			}
		default: // inside a number
			next, ok := numberStep(r.state, c)
			if ok {
				r.state = next
				break
			}
			if !numberDone(r.state) {
				return 0, false, ErrInvalidJSON
			}
			// The number ended just before c; c is looked at again as
			// what follows a value.
			if r.endValue() {
				return i, true, nil
			}
			continue
		}
		i++
	}
	return r.keep(i)
}

// beginValue starts the value whose first byte is c, or reports that no
// value starts with c.
func (r *Reader) beginValue(c byte) bool {
	switch c {
	case '{', '[':
		r.stack = append(r.stack, c)
		r.state = stKeyOrEnd
		if c == '[' {
			r.state = stValueOrEnd
		}
	case '"':
		r.state = stString
	case 't':
		r.state, r.lit = stLiteral, "rue"
	case 'f':
		r.state, r.lit = stLiteral, "alse"
	case 'n':
		r.state, r.lit = stLiteral, "ull"
	case '-':
		r.state = stMinus
	case '0':
		r.state = stZero
	default:
		if c < '1' || c > '9' {
			return false
		}
		r.state = stInt
	}
	return true
}

// numberStep moves a number's state on by byte c; ok is false when c cannot
// continue the number.
func numberStep(s scanState, c byte) (next scanState, ok bool) {
	digit := c >= '0' && c <= '9'
	switch s {
	case stMinus:
		if c == '0' {
			return stZero, true
		}
		if digit {
			return stInt, true
		}
	case stZero, stInt:
		switch {
		case digit && s == stInt:
			return stInt, true
		case c == '.':
			return stDot, true
		case c == 'e' || c == 'E':
			return stExp, true
		}
	case stDot, stFrac:
		switch {
		case digit:
			return stFrac, true
		case s == stFrac && (c == 'e' || c == 'E'):
			return stExp, true
		}
	case stExp:
		if c == '+' || c == '-' {
			return stExpSign, true
		}
		if digit {
			return stExpInt, true
		}
	case stExpSign, stExpInt:
		if digit {
			return stExpInt, true
		}
	}
	return s, false
}

// endValue records that a value just ended; it reports whether that was the
// top-level value, i.e. the frame is complete.
func (r *Reader) endValue() bool {
	if len(r.stack) == 0 {
		return true
	}
	r.state = stCommaOrEnd
	return false
}

// pop closes the innermost container and ends it as a value.
func (r *Reader) pop() bool {
	r.stack = r.stack[:len(r.stack)-1]
	return r.endValue()
}

func (r *Reader) keep(i int) (int, bool, error) {
	if i > r.max {
		return 0, false, ErrFrameTooLarge
	}
	r.scanPos = i
	return 0, false, nil
}
