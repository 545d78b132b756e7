package mcptest

import (
	"bufio"
	"strings"
)

// Event is one server-sent event as a client reads it, or a comment.
type Event struct {
	Name    string // the event field; "" for a comment
	Data    string // the data lines, joined with newlines
	Comment string // the text of a comment line (a keep-alive, say)
}

// ReadEvent reads the next event or comment from an event stream, as the
// SSE specification has a client do it: data lines joined with newlines, a
// blank line ending the event. Tests use it to read mcpgate's streams.
func ReadEvent(br *bufio.Reader) (Event, error) {
	var e Event
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return e, err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if e.Name == "" && data == nil && e.Comment == "" {
				continue
			}
			e.Data = strings.Join(data, "\n")
			return e, nil
		case strings.HasPrefix(line, ":"):
			e.Comment = strings.TrimSpace(line[1:])
		case strings.HasPrefix(line, "event:"):
			e.Name = strings.TrimSpace(line[len("event:"):])
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(line[len("data:"):], " "))
		}
	}
}
