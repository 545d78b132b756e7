package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// dotenvEntry is one KEY=VALUE line of a .env file.
type dotenvEntry struct {
	key, value string
	line       int // 1-based, for messages
}

// parseDotenv reads the KEY=VALUE lines of a .env file, in order; name is
// the file's name, for error messages. The syntax, as python-dotenv and
// Docker Compose write it for single-line values:
//
//   - blank lines and lines whose first non-blank character is # are ignored;
//   - a line may start with "export ";
//   - KEY is letters, digits, "_" and ".", not starting with a digit;
//     blanks around "=" are ignored;
//   - 'VALUE' is taken literally;
//   - "VALUE" understands the escapes \n, \" and \\; any other backslash is
//     kept as it is;
//   - an unquoted VALUE is trimmed, and a # preceded by a blank starts a
//     comment (so KEY=a#b is "a#b" but KEY=a #b is "a");
//   - after a closing quote only blanks and a # comment may follow.
//
// Values span one line; there is no ${VAR} expansion. A malformed line is an
// error naming the file and the line. Error messages never repeat a value,
// which may be a secret.
func parseDotenv(name string, r io.Reader) ([]dotenvEntry, error) {
	br := bufio.NewReader(r)
	var entries []dotenvEntry
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff") // a byte order mark some editors write
		}
		e, ok, perr := parseDotenvLine(line)
		if perr != nil {
			return nil, fmt.Errorf("parse %s line %d: %w", name, n, perr)
		}
		if ok {
			e.line = n
			entries = append(entries, e)
		}
		if err == io.EOF {
			return entries, nil
		}
	}
}

// parseDotenvLine parses one line; ok is false for a blank or comment line.
func parseDotenvLine(line string) (e dotenvEntry, ok bool, err error) {
	s := strings.TrimSpace(line)
	if s == "" || s[0] == '#' {
		return e, false, nil
	}
	if rest, found := strings.CutPrefix(s, "export"); found && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
		s = strings.TrimLeft(rest, " \t")
	}
	key, raw, found := strings.Cut(s, "=")
	if !found {
		return e, false, errors.New("want KEY=VALUE, found no '='")
	}
	key = strings.TrimRight(key, " \t")
	if !validDotenvKey(key) {
		return e, false, fmt.Errorf("invalid name %q: want letters, digits, '_' and '.', not starting with a digit", key)
	}
	value, err := parseDotenvValue(raw)
	if err != nil {
		return e, false, fmt.Errorf("%s: %w", key, err)
	}
	return dotenvEntry{key: key, value: value}, true, nil
}

// parseDotenvValue parses what follows the "=" of a line already trimmed
// at its end.
func parseDotenvValue(raw string) (string, error) {
	v := strings.TrimLeft(raw, " \t")
	if v == "" {
		return "", nil
	}
	switch v[0] {
	case '\'':
		end := strings.IndexByte(v[1:], '\'')
		if end < 0 {
			return "", errors.New("single-quoted value has no closing quote")
		}
		return v[1 : 1+end], afterQuote(v[2+end:])
	case '"':
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			switch c := v[i]; {
			case c == '"':
				return b.String(), afterQuote(v[i+1:])
			case c == '\\' && i+1 < len(v):
				i++
				switch v[i] {
				case 'n':
					b.WriteByte('\n')
				case '"', '\\':
					b.WriteByte(v[i])
				default:
					b.WriteByte('\\')
					b.WriteByte(v[i])
				}
			default:
				b.WriteByte(c)
			}
		}
		return "", errors.New("double-quoted value has no closing quote")
	}
	// Unquoted: a # after a blank starts a comment. raw, not v, so that the
	// blank between "=" and "#" counts.
	for i := 1; i < len(raw); i++ {
		if raw[i] == '#' && (raw[i-1] == ' ' || raw[i-1] == '\t') {
			raw = raw[:i]
			break
		}
	}
	return strings.TrimSpace(raw), nil
}

// afterQuote checks what follows a closing quote: blanks, then nothing or a comment.
func afterQuote(rest string) error {
	rest = strings.TrimLeft(rest, " \t")
	if rest == "" || rest[0] == '#' {
		return nil
	}
	return errors.New("unexpected text after the closing quote")
}

func validDotenvKey(k string) bool {
	if k == "" || '0' <= k[0] && k[0] <= '9' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
