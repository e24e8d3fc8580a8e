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

// ErrFrameTooLarge means a JSON value exceeded the frame limit. The rest of
// the stream cannot be trusted, so the connection must be closed.
var ErrFrameTooLarge = clusterchat.Errorf(clusterchat.ETOOLARGE, "frame exceeds 64 KiB")

// Reader cuts a byte stream into JSON values. Values may be separated by NUL
// bytes, whitespace or nothing; several may come in one read and one may be
// split over many. It only delimits values (brackets, strings, escapes,
// scalars); whether a value is valid JSON is for the decoder to say, so a
// malformed object costs an error reply, not the connection.
//
// The buffer starts small, grows up to the frame limit for a large value and
// shrinks back afterwards: an idle connection holds only the small buffer.
type Reader struct {
	r        io.Reader
	buf      []byte
	start    int // first unconsumed byte
	end      int // end of buffered data
	max      int
	initial  int
	scanPos  int  // resume point of an incomplete scan, relative to start
	depth    int  // bracket depth at scanPos
	inString bool // scanPos is inside a string
	escaped  bool // previous byte was a backslash inside a string
	began    bool // a value has begun at start
}

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

// Next returns the next JSON value. The slice is valid until the next call.
// It returns io.EOF at a clean end of stream (only separators after the last
// value), io.ErrUnexpectedEOF if the stream ends inside a value,
// ErrFrameTooLarge or ErrGarbage when the stream cannot go on, and the
// underlying reader's error otherwise.
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
				if r.depth == 0 && !r.inString && r.buf[r.start] != '"' {
					// A scalar ends with the stream.
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
	r.scanPos, r.depth, r.inString, r.escaped, r.began = 0, 0, false, false, false
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

// scan looks for the end of the value starting at r.start (after skipping
// separators). It returns the value's length when complete.
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
	}
	b := r.buf[r.start:r.end]
	i := r.scanPos
	if i == 0 {
		switch b[0] {
		case '{', '[':
			r.depth = 1
		case '"':
			r.inString = true
		}
		i = 1
		if r.depth == 0 && !r.inString { // a scalar: it ends at a separator or a delimiter
			for ; i < len(b); i++ {
				c := b[i]
				if isSep(c) || c == '{' || c == '[' || c == '"' || c == '}' || c == ']' || c == ',' {
					return i, true, nil
				}
			}
			return r.keep(i)
		}
	}
	if r.depth == 0 && !r.inString { // resuming a scalar
		for ; i < len(b); i++ {
			c := b[i]
			if isSep(c) || c == '{' || c == '[' || c == '"' || c == '}' || c == ']' || c == ',' {
				return i, true, nil
			}
		}
		return r.keep(i)
	}
	for ; i < len(b); i++ {
		c := b[i]
		if r.inString {
			switch {
			case r.escaped:
				r.escaped = false
			case c == '\\':
				r.escaped = true
			case c == '"':
				r.inString = false
				if r.depth == 0 { // a top-level string ends here
					return i + 1, true, nil
				}
			}
			continue
		}
		switch c {
		case '"':
			r.inString = true
		case '{', '[':
			r.depth++
		case '}', ']':
			r.depth--
			if r.depth == 0 {
				return i + 1, true, nil
			}
		}
	}
	return r.keep(i)
}

func (r *Reader) keep(i int) (int, bool, error) {
	if i > r.max {
		return 0, false, ErrFrameTooLarge
	}
	r.scanPos = i
	return 0, false, nil
}
