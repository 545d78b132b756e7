package campaign

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawUpstream is a Streamable HTTP MCP server written on a bare socket: it
// reads each request's header block byte for byte, so the campaign sees
// exactly what mcpgate put on the wire (duplicate names, spelling, raw
// bytes), which a net/http server would have folded and canonicalised.
// It answers what mcpgate's upstream client sends (initialize,
// notifications, tools/list, tools/call, ping; GET and DELETE are
// declined with 405) and records the header lines of every tools/call by
// the call's correlation id (arguments.cid).
type rawUpstream struct {
	ln   net.Listener
	done chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	calls map[string][]rawLine // by correlation id
	conns map[net.Conn]struct{}
}

// rawLine is one header line as received: the name and the value with
// only the separator and surrounding blanks of the field syntax removed.
type rawLine struct{ Name, Value string }

// upstreamIdle bounds how long the upstream waits for the next request on
// a kept-alive connection; mcpgate's pool reopens one when it is gone.
const upstreamIdle = 30 * time.Second

func newRawUpstream(t *testing.T) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, done: make(chan struct{}), calls: map[string][]rawLine{}, conns: map[net.Conn]struct{}{}}
	u.wg.Go(u.accept)
	t.Cleanup(u.close)
	return u
}

// url is the MCP endpoint of upstream number i (each registration gets a
// path of its own so that mcpgate pools nothing between them by accident).
func (u *rawUpstream) url(i int) string { return fmt.Sprintf("http://%s/u%d/mcp", u.ln.Addr(), i) }

func (u *rawUpstream) close() {
	close(u.done)
	_ = u.ln.Close()
	u.mu.Lock()
	for c := range u.conns {
		_ = c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

// call returns, and forgets, the header lines recorded for correlation id
// cid.
func (u *rawUpstream) call(cid string) ([]rawLine, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	lines, ok := u.calls[cid]
	delete(u.calls, cid)
	return lines, ok
}

func (u *rawUpstream) accept() {
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		select {
		case <-u.done:
			u.mu.Unlock()
			_ = c.Close()
			return
		default:
		}
		u.conns[c] = struct{}{}
		u.mu.Unlock()
		u.wg.Go(func() {
			defer func() {
				_ = c.Close()
				u.mu.Lock()
				delete(u.conns, c)
				u.mu.Unlock()
			}()
			u.serve(c)
		})
	}
}

// serve answers the requests of one connection until it ends.
func (u *rawUpstream) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(upstreamIdle))
		method, lines, err := readHeaderBlock(br)
		if err != nil {
			return
		}
		body, err := readBody(br, lines)
		if err != nil {
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if !u.answer(c, method, lines, body) {
			return
		}
	}
}

// readHeaderBlock reads a request line and header lines up to the empty
// line. Lines are split at the first colon; a line starting with a blank
// (obs-fold, which mcpgate must never send) is kept as a line of its own
// with the name "" so that the check sees it.
func readHeaderBlock(br *bufio.Reader) (method string, lines []rawLine, err error) {
	readLine := func() (string, error) {
		var b []byte
		for {
			chunk, isPrefix, err := br.ReadLine()
			if err != nil {
				return "", err
			}
			b = append(b, chunk...)
			if len(b) > 2<<20 {
				return "", errors.New("header line too long")
			}
			if !isPrefix {
				return string(b), nil
			}
		}
	}
	first, err := readLine()
	if err != nil {
		return "", nil, err
	}
	method, _, _ = strings.Cut(first, " ")
	for {
		l, err := readLine()
		if err != nil {
			return "", nil, err
		}
		if l == "" {
			return method, lines, nil
		}
		if l[0] == ' ' || l[0] == '\t' {
			lines = append(lines, rawLine{"", l})
			continue
		}
		name, value, _ := strings.Cut(l, ":")
		lines = append(lines, rawLine{name, strings.Trim(value, " \t")})
	}
}

func lineValue(lines []rawLine, name string) string {
	for _, l := range lines {
		if strings.EqualFold(l.Name, name) {
			return l.Value
		}
	}
	return ""
}

func readBody(br *bufio.Reader, lines []rawLine) ([]byte, error) {
	if strings.EqualFold(lineValue(lines, "Transfer-Encoding"), "chunked") {
		return io.ReadAll(io.LimitReader(httputil.NewChunkedReader(br), 8<<20))
	}
	n, _ := strconv.Atoi(lineValue(lines, "Content-Length"))
	if n < 0 || n > 8<<20 {
		return nil, errors.New("bad Content-Length")
	}
	b := make([]byte, n)
	_, err := io.ReadFull(br, b)
	return b, err
}

// answer writes the response to one request; false ends the connection.
func (u *rawUpstream) answer(c net.Conn, method string, lines []rawLine, body []byte) bool {
	write := func(status string, extra, body string) bool {
		resp := "HTTP/1.1 " + status + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n" + extra + "\r\n" + body
		_, err := io.WriteString(c, resp)
		return err == nil
	}
	if method != "POST" {
		return write("405 Method Not Allowed", "Allow: POST\r\n", "")
	}
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Arguments struct {
				CID string `json:"cid"`
			} `json:"arguments"`
		} `json:"params"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		return write("400 Bad Request", "", "")
	}
	if len(msg.ID) == 0 { // a notification or a response
		return write("202 Accepted", "", "")
	}
	result := `{}`
	extra := ""
	switch msg.Method {
	case "initialize":
		result = `{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"campaign-raw","version":"1"}}`
		extra = "Mcp-Session-Id: " + rand.Text() + "\r\n"
	case "tools/list":
		result = `{"tools":[{"name":"echo","description":"records the call's headers","inputSchema":{"type":"object"}}]}`
	case "tools/call":
		u.mu.Lock()
		u.calls[msg.Params.Arguments.CID] = lines
		u.mu.Unlock()
		result = `{"content":[{"type":"text","text":"recorded"}]}`
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%s,"result":%s}`, msg.ID, result)
	return write("200 OK", "Content-Type: application/json\r\n"+extra, b.String())
}
