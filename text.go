package clusterchat

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxNameBytes bounds a name's encoded length: 50 visible characters may
// carry combining marks and emoji sequences, but not without end.
const MaxNameBytes = 256

// CleanName returns name as it is stored and shown: trimmed of surrounding
// white space and NFC-normalised, so that two names that look the same are
// the same string. It refuses (EINVALID), never repairs:
//   - invalid UTF-8;
//   - control characters (C0, DEL, C1), line and paragraph separators;
//   - bidirectional formatting characters: embeddings and overrides
//     (U+202A-U+202E), isolates (U+2066-U+2069) and the marks U+200E, U+200F
//     and U+061C. A name is shown inside other text (a message line, a
//     member list); any of them could reorder what follows it, and no name
//     needs one: the renderer's bidi algorithm orders a name's own letters;
//   - U+FFFD, the replacement character (what broken text decodes to);
//   - other invisible format characters and default-ignorable fillers
//     (U+200B, U+2060, U+FEFF, U+3164...), which make blank or look-alike
//     names. ZWJ and ZWNJ (U+200D, U+200C) stay: emoji sequences and some
//     scripts need them;
//   - fewer than 1 or more than max visible characters (combining marks,
//     ZWJ/ZWNJ and variation selectors do not count), or more than
//     MaxNameBytes bytes.
func CleanName(name string, max int) (string, error) {
	if !utf8.ValidString(name) {
		return "", Errorf(EINVALID, "name is not valid UTF-8")
	}
	name = norm.NFC.String(strings.TrimSpace(name))
	visible := 0
	for _, r := range name {
		if bad, what := forbiddenInName(r); bad {
			return "", Errorf(EINVALID, "name may not contain %s (U+%04X)", what, r)
		}
		if !invisible(r) {
			visible++
		}
	}
	if visible < 1 || visible > max || len(name) > MaxNameBytes {
		return "", Errorf(EINVALID, "name must be 1-%d visible characters (at most %d bytes)", max, MaxNameBytes)
	}
	return name, nil
}

// forbiddenInName reports whether r may not appear in a name, and what it is.
func forbiddenInName(r rune) (bool, string) {
	switch {
	case unicode.IsControl(r):
		return true, "a control character"
	case isBidiControl(r):
		return true, "a bidirectional formatting character"
	case r == '\u2028' || r == '\u2029':
		return true, "a line separator"
	case r == '\u200c' || r == '\u200d':
		return false, ""
	case r == utf8.RuneError:
		// What a decoder puts for bytes it could not read: refused so that
		// a lone surrogate (\ud800 in JSON) cannot sneak it in either.
		return true, "the replacement character"
	case unicode.Is(unicode.Cf, r), unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r):
		return true, "an invisible character"
	}
	return false, ""
}

// isBidiControl reports the characters that change the direction of the
// text around them: embeddings, overrides, isolates and the directional
// marks.
func isBidiControl(r rune) bool {
	return (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') ||
		r == '\u200e' || r == '\u200f' || r == '\u061c'
}

// invisible reports runes that attach to the character before them rather
// than being one: combining marks, joiners and variation selectors.
func invisible(r rune) bool {
	return unicode.In(r, unicode.Mn, unicode.Me) || r == '\u200c' || r == '\u200d' ||
		unicode.Is(unicode.Variation_Selector, r)
}

// CheckText checks message text (multiline true) or a one-line description
// (multiline false): valid UTF-8, and no control character except newline
// in message text (and no line or paragraph separator). Printable text is
// free, bidi characters included: people write mixed-direction text, and a
// body comes last on its line, after the sender's name; chatclient shows
// bidi controls escaped anyway. It never repairs (EINVALID).
func CheckText(s string, multiline bool) error {
	if !utf8.ValidString(s) {
		return Errorf(EINVALID, "text is not valid UTF-8")
	}
	for _, r := range s {
		if r == '\n' && multiline {
			continue
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return Errorf(EINVALID, "text may not contain control characters (U+%04X)", r)
		}
	}
	return nil
}
