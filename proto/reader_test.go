package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"clusterchat"
)

// chunkReader returns its data in the given chunk sizes, cycling.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := r.sizes[r.i%len(r.sizes)]
	r.i++
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func readAll(t *testing.T, r io.Reader, size, max int) ([]string, error) {
	t.Helper()
	rd := NewReader(r, size, max)
	var out []string
	for {
		v, err := rd.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, string(v))
	}
}

func TestReaderFraming(t *testing.T) {
	a := `{"msgid":1,"id":1,"password":"p}w{\"x"}`
	b := `{"msgid":6,"msg":"[nested] {braces}","x":[1,{"y":"}"}]}`
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"one", a, []string{a}},
		{"nul separated", a + "\x00" + b + "\x00", []string{a, b}},
		{"newline separated", a + "\n" + b + "\r\n", []string{a, b}},
		{"no separator", a + b + a, []string{a, b, a}},
		{"leading separators", "\x00\x00 \n\t" + a, []string{a}},
		{"scalars and arrays", `42 "str" [1,2]` + "\x00true null", []string{"42", `"str"`, "[1,2]", "true", "null"}},
		{"scalar then object", `7` + a, []string{"7", a}},
		{"escaped backslash at end of string", `{"a":"x\\"}` + a, []string{`{"a":"x\\"}`, a}},
		{"empty", "", nil},
		{"only separators", "\x00\n  \x00", nil},
	}
	for _, tt := range tests {
		for _, sizes := range [][]int{{1}, {2, 3}, {7}, {1 << 20}} {
			for _, bufSize := range []int{1, 8, 512} {
				got, err := readAll(t, &chunkReader{data: []byte(tt.input), sizes: sizes}, bufSize, 1<<16)
				if err != nil {
					t.Fatalf("%s (chunks %v, buf %d): %v", tt.name, sizes, bufSize, err)
				}
				if strings.Join(got, "|") != strings.Join(tt.want, "|") {
					t.Fatalf("%s (chunks %v, buf %d): got %q, want %q", tt.name, sizes, bufSize, got, tt.want)
				}
			}
		}
	}
}

func TestReaderErrors(t *testing.T) {
	big := `{"msg":"` + strings.Repeat("x", 200) + `"}`
	tests := []struct {
		name  string
		input string
		max   int
		want  error
		ok    int // values read before the error
	}{
		{"garbage", "hello", 1024, ErrGarbage, 0},
		{"garbage after value", `{"a":1}}`, 1024, ErrGarbage, 1},
		{"too large", big, 100, ErrFrameTooLarge, 0},
		{"too large after a good one", `{"a":1}` + big, 100, ErrFrameTooLarge, 1},
		{"cut inside object", `{"a":`, 1024, io.ErrUnexpectedEOF, 0},
		{"cut inside string", `{"a":"xx`, 1024, io.ErrUnexpectedEOF, 0},
	}
	for _, tt := range tests {
		got, err := readAll(t, strings.NewReader(tt.input), 16, tt.max)
		if !errors.Is(err, tt.want) || len(got) != tt.ok {
			t.Errorf("%s: got %d values, err %v; want %d, %v", tt.name, len(got), err, tt.ok, tt.want)
		}
	}
	// A reader error is passed on.
	_, err := readAll(t, iotest.ErrReader(errors.New("boom")), 16, 1024)
	if err == nil || err.Error() != "boom" {
		t.Errorf("reader error: %v", err)
	}
}

// errMore is what stuckReader returns once its data is used up: a reader
// that still wanted bytes to decide would report it.
var errMore = errors.New("reader wanted more bytes")

// stuckReader is a peer that sends no more bytes (without closing).
type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, errMore }

// TestReaderRefusesEarly checks that a value is refused at the byte that
// makes it invalid JSON, without waiting for more bytes (its brackets never
// balance here), while well-formed prefixes wait.
func TestReaderRefusesEarly(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  error // ErrInvalidJSON, or errMore for a valid prefix
	}{
		{"missing comma", `{"msgid":6 "to":2`, ErrInvalidJSON},
		{"missing value", `{"msgid":6,"to":}`, ErrInvalidJSON},
		{"double comma", `{"a":1,,`, ErrInvalidJSON},
		{"trailing comma in array", `[1,]`, ErrInvalidJSON},
		{"trailing comma in object", `{"a":1,}`, ErrInvalidJSON},
		{"unquoted key", `{msgid:1`, ErrInvalidJSON},
		{"number key", `{1:2`, ErrInvalidJSON},
		{"bad literal", `{"a":tru `, ErrInvalidJSON},
		{"capital literal", `[True`, ErrInvalidJSON},
		{"leading zero", `{"a":01`, ErrInvalidJSON},
		{"bare minus", `[-]`, ErrInvalidJSON},
		{"dot without digits", `[1.]`, ErrInvalidJSON},
		{"exponent without digits", `[1e]`, ErrInvalidJSON},
		{"plus sign", `[+1`, ErrInvalidJSON},
		{"mismatched brackets", `{"a":[1}`, ErrInvalidJSON},
		{"array closed as object", `[}`, ErrInvalidJSON},
		{"control character in string", "{\"a\":\"x\x01", ErrInvalidJSON},
		{"newline in string", "[\"x\n", ErrInvalidJSON},
		{"bad escape", `{"a":"\x`, ErrInvalidJSON},
		{"bad unicode escape", `{"a":"\u12g`, ErrInvalidJSON},
		{"NUL inside value", "{\"a\":1\x00", ErrInvalidJSON},
		{"garbage in deep nesting", strings.Repeat("[", 1000) + "x", ErrInvalidJSON},
		{"slowloris prefix", `{"msgid":6,"msg":"abc`, errMore},
		{"open nesting", strings.Repeat(`{"a":[`, 100), errMore},
		{"number may go on", `{"a":-12.5e+`, errMore},
		{"escape may go on", `{"a":"\u00`, errMore},
		{"literal may go on", `[nul`, errMore},
	}
	for _, tt := range tests {
		for _, sizes := range [][]int{{1}, {3}, {1 << 20}} {
			rd := NewReader(io.MultiReader(&chunkReader{data: []byte(tt.input), sizes: sizes}, &stuckReader{}), 8, 1<<16)
			v, err := rd.Next()
			if !errors.Is(err, tt.want) {
				t.Errorf("%s (chunks %v): got %q, %v; want %v", tt.name, sizes, v, err, tt.want)
			}
			if tt.want == errMore && !rd.InFrame() {
				t.Errorf("%s: InFrame false inside a value", tt.name)
			}
		}
	}
}

// TestReaderShrinks checks that a large frame does not pin a large buffer.
func TestReaderShrinks(t *testing.T) {
	big := `{"msg":"` + strings.Repeat("x", 10000) + `"}`
	rd := NewReader(strings.NewReader(big+`{"a":1}`), 64, 1<<16)
	if _, err := rd.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Next(); err != nil {
		t.Fatal(err)
	}
	rd.Next() // EOF: the buffer is empty and gets replaced
	if len(rd.buf) > 64 {
		t.Errorf("buffer still %d bytes after the big frame", len(rd.buf))
	}
}

// FuzzReader checks that the reader never panics, never returns a value
// larger than the limit, and that for any input made of valid JSON objects
// joined by random separators it returns exactly those objects, however the
// bytes are chunked.
func FuzzReader(f *testing.F) {
	f.Add([]byte(`{"msgid":1}`+"\x00"+`{"msgid":6,"msg":"a\"}b"}`), uint8(3))
	f.Add([]byte(`[1,2]{"a":[{"b":"\\"}]}  42 true`), uint8(1))
	f.Add([]byte("\x00\x00{\n}"), uint8(7))
	f.Add([]byte(`{"a":[1,-0.5e+3,true,null,"\u00e9\n"]} {"b" 1}`), uint8(2))
	f.Add([]byte(`[1,]{"x":01}`), uint8(5))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		size := int(chunk%16) + 1
		rd := NewReader(&chunkReader{data: data, sizes: []int{size}}, 8, 256)
		var got [][]byte
		var err error
		for {
			var v []byte
			v, err = rd.Next()
			if err != nil {
				break
			}
			if len(v) > 256+1 {
				t.Fatalf("value of %d bytes over the limit", len(v))
			}
			got = append(got, bytes.Clone(v))
		}
		// Valid JSON input comes back as exactly one valid value.
		if json.Valid(data) && len(data) <= 256 {
			if len(got) != 1 || !json.Valid(got[0]) {
				t.Fatalf("reader cut %q out of valid JSON %q", got, data)
			}
		}
		// Whatever the input, every value returned is valid JSON: the
		// syntax is checked as the bytes come.
		for _, v := range got {
			if !json.Valid(v) {
				t.Fatalf("reader returned invalid JSON %q from %q", v, data)
			}
		}
		// ErrInvalidJSON is only said of input that is not valid JSON.
		if errors.Is(err, ErrInvalidJSON) && json.Valid(data) {
			t.Fatalf("valid JSON %q refused as invalid", data)
		}
	})
}

// FuzzDecode checks that request decoding never panics and that every
// failure is a coded EINVALID error.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"msgid":6,"to":2,"msg":"hi","id":1}`))
	f.Add([]byte(`{"msgid":"6"}`))
	f.Add([]byte(`{"msgid":1,"id":1e30}`))
	f.Add([]byte(`{"msgid":1,"id":99999999999999999999}`))
	f.Add([]byte(`[1]`))
	f.Add([]byte(`{"msgid":6,"msg":{"x":1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var q Request
		err := Decode(data, &q)
		if err != nil && clusterchat.ErrorCode(err) != clusterchat.EINVALID {
			t.Fatalf("Decode(%q) = %v, want an EINVALID error", data, err)
		}
		// An error reply can always be encoded as valid JSON.
		if b := AppendError(nil, q.MsgID, q.RID, true, err); err != nil && !json.Valid(b) {
			t.Fatalf("error reply %q is not JSON", b)
		}
	})
}
