package explain

import (
	"bufio"
	"fmt"
	"strconv"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/mcpgate/mcpgate/passthrough"
)

// writer writes the answer to one input line.
type writer interface {
	result(w *bufio.Writer, line int, res passthrough.Result) error
	failure(w *bufio.Writer, line int, err error) error
}

// jsonWriter writes FormatJSON. It builds each line by hand, reusing one
// buffer, so that the headers object keeps Result.Headers order (a Go map
// would not) and 100 000 cases take no more than a few allocations each.
type jsonWriter struct {
	buf []byte
}

func (j *jsonWriter) result(w *bufio.Writer, _ int, res passthrough.Result) error {
	b := append(j.buf[:0], `{"headers":{`...)
	for i, h := range res.Headers {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, h.Name)
		b = append(b, ':')
		b = appendJSONString(b, h.Value)
	}
	b = append(b, `},"decisions":[`...)
	for i, d := range res.Decisions {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"header":`...)
		b = appendJSONString(b, d.Header)
		b = append(b, `,"action":`...)
		b = appendJSONString(b, d.Action.String())
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, d.Reason.String())
		b = append(b, `,"message":`...)
		b = appendJSONString(b, res.Message(d))
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	j.buf = b
	_, err := w.Write(b)
	return err
}

func (j *jsonWriter) failure(w *bufio.Writer, line int, err error) error {
	b := append(j.buf[:0], `{"line":`...)
	b = strconv.AppendInt(b, int64(line), 10)
	b = append(b, `,"error":`...)
	b = appendJSONString(b, err.Error())
	b = append(b, "}\n"...)
	j.buf = b
	_, werr := w.Write(b)
	return werr
}

// appendJSONString appends s as a JSON string, escaping as encoding/json
// does, HTML characters aside: invalid UTF-8 becomes U+FFFD, and U+2028 and
// U+2029 are escaped for JavaScript.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0 // s[start:i] is yet to be appended, unchanged
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			switch r {
			case utf8.RuneError:
				b = append(b, `\ufffd`...)
			default:
				b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// tableWriter writes FormatTable: per case a heading, the headers that go
// upstream as "Name: value" lines, and an aligned table of the decisions.
type tableWriter struct {
	cases int
}

func (t *tableWriter) heading(w *bufio.Writer, line int) {
	if t.cases > 0 {
		w.WriteByte('\n')
	}
	t.cases++
	fmt.Fprintf(w, "case %d\n", line)
}

func (t *tableWriter) result(w *bufio.Writer, line int, res passthrough.Result) error {
	t.heading(w, line)
	w.WriteString("  headers:\n")
	if len(res.Headers) == 0 {
		w.WriteString("    (none)\n")
	}
	for _, h := range res.Headers {
		fmt.Fprintf(w, "    %s: %s\n", printable(h.Name), printable(h.Value))
	}
	w.WriteString("  decisions:\n")
	if len(res.Decisions) == 0 {
		_, err := w.WriteString("    (none)\n") // a bufio.Writer reports its first error on every write
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "    HEADER\tACTION\tREASON\tMESSAGE")
	for _, d := range res.Decisions {
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", printable(d.Header), d.Action, d.Reason, printable(res.Message(d)))
	}
	return tw.Flush()
}

func (t *tableWriter) failure(w *bufio.Writer, line int, err error) error {
	t.heading(w, line)
	_, werr := fmt.Fprintf(w, "  error: %s\n", printable(err.Error()))
	return werr
}

// printable returns s, or s quoted when it holds control characters or
// invalid UTF-8 that would garble a table.
func printable(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return strconv.Quote(s)
		}
	}
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	return s
}
