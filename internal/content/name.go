package content

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest file name SafeName returns, in bytes: the 255 of
// common file systems minus room for the suffixes a download adds while it
// runs (".part.state.tmp").
const MaxNameLen = 240

// maxExtLen is the longest extension SafeName keeps when it must shorten a name.
const maxExtLen = 16

// fallbackName replaces a name with nothing usable left in it.
const fallbackName = "download"

// SafeName reduces an untrusted file name to a base name that is safe to
// create inside a chosen directory:
//   - only the part after the last '/' or '\' is kept ("../../etc/passwd" -> "passwd");
//   - invalid UTF-8, control characters and bidirectional-text overrides
//     (which can disguise an extension) become '_';
//   - a leading '.' becomes '_', so the result is never ".", "..", or a hidden
//     file such as ".bashrc";
//   - names longer than MaxNameLen bytes are cut on a rune boundary, keeping a
//     short extension;
//   - an empty result becomes "download".
//
// SafeName is idempotent: SafeName(SafeName(s)) == SafeName(s).
func SafeName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	b.Grow(min(len(name), MaxNameLen+utf8.UTFMax))
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteByte('_')
		case unicode.IsControl(r), isBidiControl(r), r == '\u2028', r == '\u2029':
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
		if b.Len() > 4*MaxNameLen { // enough to cut from; ignore the rest of a huge name
			break
		}
	}
	s := b.String()
	if s == "" {
		return fallbackName
	}
	if s[0] == '.' {
		s = "_" + s[1:]
	}
	if len(s) > MaxNameLen {
		s = shorten(s)
	}
	return s
}

// shorten cuts s to MaxNameLen bytes on a rune boundary, keeping its
// extension when the extension is short.
func shorten(s string) string {
	ext := ""
	if i := strings.LastIndexByte(s, '.'); i > 0 && len(s)-i <= maxExtLen {
		ext = s[i:]
	}
	stem := s[:len(s)-len(ext)]
	limit := MaxNameLen - len(ext)
	for limit > 0 && !utf8.RuneStart(stem[limit]) {
		limit--
	}
	return stem[:limit] + ext
}

// isBidiControl reports the Unicode bidirectional formatting characters,
// which can make "evil\u202Egnp.exe" display as "evilexe.png".
func isBidiControl(r rune) bool {
	return r == '\u061c' || r == '\u200e' || r == '\u200f' ||
		(r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}
