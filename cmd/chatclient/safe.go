package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What the console prints of what it receives (names, message text, group
// descriptions, error texts) goes through safe or safeBody, so that nothing
// received can drive the terminal: no escape sequence can move the cursor
// or clear the screen, no carriage return can overwrite a line, and no
// newline can start a line that looks like another message.

// continuation starts every further line of a multi-line message: indented
// and marked, it cannot pass for a "[time] name(id): text" line.
const continuation = "\n    | "

// safe returns s for printing on one line: control characters (C0, DEL,
// C1), line and paragraph separators, bidirectional and other invisible
// format characters (ZWJ and ZWNJ stay: emoji and scripts need them), the
// replacement character and bytes that are not UTF-8 are shown as escapes
// (\x1b, \u202e), never sent to the terminal.
func safe(s string) string {
	return escape(s, false)
}

// safeBody is safe for message text, whose newlines start indented
// continuation lines.
func safeBody(s string) string {
	return escape(s, true)
}

func escape(s string, multiline bool) string {
	clean := true
	for _, r := range s {
		if r == '\n' || unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' && multiline:
			b.WriteString(continuation)
		case r < 0x80 && (r < 0x20 || r == 0x7f):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	switch {
	case r == '\u200c' || r == '\u200d':
		return false
	case unicode.IsControl(r), r == '\u2028', r == '\u2029', r == utf8.RuneError:
		return true
	}
	return unicode.Is(unicode.Cf, r)
}
