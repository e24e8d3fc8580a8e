package wiretest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// Obj is a decoded server object; numbers stay json.Number. Raw is the line
// it was read from, terminator included.
type Obj struct {
	M   map[string]any
	Raw string
}

// DecodeObj decodes one object.
func DecodeObj(line string) (Obj, error) {
	d := json.NewDecoder(strings.NewReader(line))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return Obj{}, fmt.Errorf("decode %q: %v", line, err)
	}
	return Obj{M: m, Raw: line}, nil
}

// MustDecode decodes one object or fails the test.
func MustDecode(tb testing.TB, line string) Obj {
	tb.Helper()
	o, err := DecodeObj(line)
	if err != nil {
		tb.Fatal(err)
	}
	return o
}

// Has tells whether field k is present.
func (o Obj) Has(k string) bool { _, ok := o.M[k]; return ok }

// Int is field k as an integer, 0 when absent or not one.
func (o Obj) Int(k string) int64 {
	n, ok := o.M[k].(json.Number)
	if !ok {
		return 0
	}
	v, err := n.Int64()
	if err != nil {
		return 0
	}
	return v
}

// Str is field k as a string, "" when absent or not one.
func (o Obj) Str(k string) string {
	s, _ := o.M[k].(string)
	return s
}

// List is field k as an array, nil when absent or not one.
func (o Obj) List(k string) []any {
	l, _ := o.M[k].([]any)
	return l
}

// Nested decodes a classic nested array: each element a string holding one
// JSON object.
func (o Obj) Nested(tb testing.TB, k string) []Obj {
	tb.Helper()
	l := o.List(k)
	out := make([]Obj, 0, len(l))
	for _, v := range l {
		s, ok := v.(string)
		if !ok {
			tb.Fatalf("%s: element %v is not a JSON string in %s", k, v, o.Raw)
		}
		out = append(out, MustDecode(tb, s))
	}
	return out
}

// Check compares fields: kv is key, value pairs, values compared by their
// JSON encoding.
func (o Obj) Check(tb testing.TB, kv ...any) {
	tb.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		want, _ := json.Marshal(kv[i+1])
		v, ok := o.M[k]
		if !ok {
			tb.Fatalf("field %q missing (want %s) in %s", k, want, o.Raw)
		}
		got, _ := json.Marshal(v)
		if string(got) != string(want) {
			tb.Fatalf("field %q = %s, want %s in %s", k, got, want, o.Raw)
		}
	}
}
