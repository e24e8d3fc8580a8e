package clusterchat_test

import (
	"strings"
	"testing"
	"time"

	"clusterchat"
)

func TestCleanName(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" with ok false: refused with EINVALID
		ok   bool
	}{
		{"alice", "alice", true},
		{"  alice \t", "alice", true},            // trimmed (the tab is outside)
		{"e\u0301mile", "\u00e9mile", true},      // NFC: e + combining acute -> é
		{"Zoë Ünal", "Zoë Ünal", true},           // inner space is fine
		{"👩\u200d💻", "👩\u200d💻", true},           // ZWJ emoji sequence
		{"می\u200cخواهم", "می\u200cخواهم", true}, // ZWNJ in Persian
		{strings.Repeat("a", 50), strings.Repeat("a", 50), true},
		{strings.Repeat("é", 50), strings.Repeat("é", 50), true},
		{strings.Repeat("a", 51), "", false},
		{"", "", false},
		{"   ", "", false},
		{"\u3000", "", false},                            // ideographic space only
		{"al\nice", "", false},                           // newline
		{"al\x00ice", "", false},                         // NUL
		{"\x1b[2Jalice", "", false},                      // terminal escape
		{"al\u0085ice", "", false},                       // C1 NEL
		{"al\u2028ice", "", false},                       // line separator
		{"\u202eecila", "", false},                       // right-to-left override
		{"a\u202ab", "", false},                          // embedding
		{"a\u2066b\u2069", "", false},                    // isolate
		{"a\u200fb", "", false},                          // RLM
		{"a\u200eb", "", false},                          // LRM
		{"a\u061cb", "", false},                          // Arabic letter mark
		{"a\u200bb", "", false},                          // zero-width space
		{"\ufeffalice", "", false},                       // BOM
		{"\u3164", "", false},                            // Hangul filler: looks blank
		{"\u0301\u0301", "", false},                      // marks only: nothing visible
		{"a\xffb", "", false},                            // invalid UTF-8
		{"a" + strings.Repeat("\u0301", 300), "", false}, // over MaxNameBytes
	}
	for _, tc := range tests {
		got, err := clusterchat.CleanName(tc.in, clusterchat.MaxNameLen)
		if tc.ok {
			if err != nil || got != tc.want {
				t.Errorf("CleanName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			continue
		}
		if clusterchat.ErrorCode(err) != clusterchat.EINVALID {
			t.Errorf("CleanName(%q) = %q, %v; want EINVALID", tc.in, got, err)
		}
	}
}

func TestCheckText(t *testing.T) {
	tests := []struct {
		in        string
		multiline bool
		ok        bool
	}{
		{"hello", false, true},
		{"line one\nline two", true, true},
		{"line one\nline two", false, false},
		{"עברית \u202e mixed 👋", true, true}, // printable, bidi included
		{"tab\there", true, false},
		{"cr\rhere", true, false},
		{"\x1b[31mred", true, false},
		{"bell\a", true, false},
		{"nel\u0085", true, false},
		{"ls\u2028", true, false},
		{"bad\xc3", true, false},
		{"", true, true}, // emptiness is the caller's rule
	}
	for _, tc := range tests {
		err := clusterchat.CheckText(tc.in, tc.multiline)
		if (err == nil) != tc.ok || (err != nil && clusterchat.ErrorCode(err) != clusterchat.EINVALID) {
			t.Errorf("CheckText(%q, %v) = %v, want ok=%v", tc.in, tc.multiline, err, tc.ok)
		}
	}
}

func TestRateLimited(t *testing.T) {
	err := clusterchat.RateLimited(1500*time.Millisecond, "too many logins")
	if err.Code != clusterchat.ERATELIMIT || err.RetryAfter != 1500*time.Millisecond ||
		err.Message != "too many logins; try again in 2s" {
		t.Errorf("RateLimited = %+v", err)
	}
	if clusterchat.RetryAfter(err) != err.RetryAfter || clusterchat.RetryAfter(nil) != 0 {
		t.Error("RetryAfter does not read the hint back")
	}
}
