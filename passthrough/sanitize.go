package passthrough

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxValueLength is the longest value, in code points, that is ever forwarded.
const MaxValueLength = 4096

// ValidName reports whether name may be used as a passthrough header name:
// one or more ASCII letters, digits or hyphens, and nothing else (spec §2.3).
// Unlike ContextForge's regular expression it accepts no trailing newline
// (deviation D1).
func ValidName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// SanitizeValue makes an untrusted header value safe to forward (spec §2,
// "Sanitising a value"), in this order: every CR and LF is removed; the value
// is cut to MaxValueLength code points; every remaining character below 0x20
// except TAB is removed, and so is DEL (deviation D2: Go's HTTP client refuses
// it); Unicode white space is trimmed from both ends.
//
// Values are read as UTF-8; a byte that is not valid UTF-8 counts as one code
// point and is kept, as net/http allows it. SanitizeValue is idempotent, and
// returns its argument without allocating when there is nothing to change.
func SanitizeValue(v string) string {
	if clean(v) {
		return v
	}
	buf := make([]byte, 0, min(len(v), 4*MaxValueLength))
	kept := 0 // code points kept after CR/LF removal, control characters included
	for i := 0; i < len(v); {
		c := v[i]
		if c == '\r' || c == '\n' {
			i++
			continue
		}
		if kept == MaxValueLength {
			break
		}
		kept++
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != 0x7f || c == '\t' {
				buf = append(buf, c)
			}
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(v[i:])
		buf = append(buf, v[i:i+size]...)
		i += size
	}
	return strings.TrimFunc(string(buf), unicode.IsSpace)
}

// clean reports whether SanitizeValue would return v unchanged.
func clean(v string) bool {
	if v == "" {
		return true
	}
	if len(v) > MaxValueLength && utf8.RuneCountInString(v) > MaxValueLength {
		return false
	}
	// Eight bytes at a time: is any byte below 0x20, or equal to 0x7f?
	// (Exact: a borrow only crosses into the next byte from a byte that
	// matches.)
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	rest := v
	for ; len(rest) >= 8; rest = rest[8:] {
		w := rest[:8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		del := x ^ 0x7f*ones
		if (x-0x20*ones)&^x&highs != 0 || (del-ones)&^del&highs != 0 {
			return false
		}
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return !spaceAt(v, v[0] >= utf8.RuneSelf, true) && !spaceAt(v, v[len(v)-1] >= utf8.RuneSelf, false)
}

// spaceAt reports whether v starts (or ends) with Unicode white space. The
// only ASCII white space left after the control check is ' '.
func spaceAt(v string, multibyte, start bool) bool {
	if !multibyte {
		if start {
			return v[0] == ' '
		}
		return v[len(v)-1] == ' '
	}
	var r rune
	if start {
		r, _ = utf8.DecodeRuneInString(v)
	} else {
		r, _ = utf8.DecodeLastRuneInString(v)
	}
	return unicode.IsSpace(r)
}
