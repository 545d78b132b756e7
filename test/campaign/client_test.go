package campaign

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// The raw client writes HTTP/1.1 requests byte for byte on a fresh TCP
// connection: header lines are sent exactly as generated, including bytes
// Go's http.Client refuses to send (control bytes, CR/LF, obs-fold,
// non-token names). Responses are read with net/http's parser, which is
// fine for the client side: only what is sent has to be raw.

// ioTimeout bounds every read and write of the raw client.
const ioTimeout = 15 * time.Second

// rawRequest is one request to send.
type rawRequest struct {
	Method, Path string
	Lines        []string // header lines without their CRLF, Host and Content-Length excluded
	Body         []byte
}

// wire is the request's bytes, with Host first and Content-Length last
// (for requests with a body).
func (r rawRequest) wire(host string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", r.Method, r.Path, host)
	for _, l := range r.Lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	if r.Method != "GET" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.Body))
	}
	b.WriteString("\r\n")
	b.Write(r.Body)
	return b.Bytes()
}

// rawConn is one client connection with its response reader.
type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dial(addr string) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	return &rawConn{c: c, br: bufio.NewReader(c)}, nil
}

func (rc *rawConn) Close() error { return rc.c.Close() }

// send writes r and reads the response's status line and headers.
//
// Go's HTTP server answers a request it cannot parse with 400 and closes
// the connection with the rest of the request unread, so the kernel may
// reset the connection before the answer is read: a reset (or a broken
// pipe while writing) is reported as that 400.
func (rc *rawConn) send(addr string, r rawRequest) (*http.Response, error) {
	_ = rc.c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := rc.c.Write(r.wire(addr)); err != nil {
		if refusedAndClosed(err) {
			return resetAnswer(), nil
		}
		return nil, fmt.Errorf("write %s %s: %w", r.Method, r.Path, err)
	}
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		if refusedAndClosed(err) {
			return resetAnswer(), nil
		}
		return nil, fmt.Errorf("read the response to %s %s: %w", r.Method, r.Path, err)
	}
	return resp, nil
}

func refusedAndClosed(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func resetAnswer() *http.Response {
	return &http.Response{StatusCode: http.StatusBadRequest, Status: "400 (connection reset after a refusal)",
		Header: http.Header{}, Body: http.NoBody}
}

// roundTrip sends r on a connection of its own and returns the status, the
// response headers and the body (JSON, or the first event-stream message
// answering wantID).
func roundTrip(addr string, r rawRequest, wantID string) (int, http.Header, []byte, error) {
	rc, err := dial(addr)
	if err != nil {
		return 0, nil, nil, err
	}
	defer rc.Close()
	resp, err := rc.send(addr, r)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		msg, err := awaitAnswer(bufio.NewReader(resp.Body), wantID)
		return resp.StatusCode, resp.Header, msg, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil && refusedAndClosed(err) && resp.StatusCode >= 400 {
		err = nil // the refusal's text, cut short by the reset
	}
	return resp.StatusCode, resp.Header, body, err
}

// awaitAnswer reads an event stream up to the message with JSON-RPC id
// wantID ("" for any message).
func awaitAnswer(br *bufio.Reader, wantID string) ([]byte, error) {
	for range 1000 {
		e, err := mcptest.ReadEvent(br)
		if err != nil {
			return nil, fmt.Errorf("event stream ended before the answer to id %s: %w", wantID, err)
		}
		if e.Data == "" || e.Name == "endpoint" {
			continue // a comment, a keep-alive or the endpoint
		}
		if wantID == "" || answers([]byte(e.Data), wantID) {
			return []byte(e.Data), nil
		}
	}
	return nil, fmt.Errorf("no answer to id %s in 1000 events", wantID)
}

// answers reports whether msg is the response with id.
func answers(msg []byte, id string) bool {
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	return json.Unmarshal(msg, &m) == nil && m.Method == "" && string(m.ID) == id
}

// sseStream is an open legacy SSE stream (GET /sse).
type sseStream struct {
	rc   *rawConn
	body *bufio.Reader
}

// openSSE sends the GET and reads up to the endpoint event.
func openSSE(addr string, r rawRequest) (status int, s *sseStream, endpoint string, err error) {
	rc, err := dial(addr)
	if err != nil {
		return 0, nil, "", err
	}
	resp, err := rc.send(addr, r)
	if err != nil {
		rc.Close()
		return 0, nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		rc.Close()
		return resp.StatusCode, nil, "", nil
	}
	s = &sseStream{rc: rc, body: bufio.NewReader(resp.Body)}
	for range 100 {
		e, err := mcptest.ReadEvent(s.body)
		if err != nil {
			rc.Close()
			return resp.StatusCode, nil, "", fmt.Errorf("no endpoint event: %w", err)
		}
		if e.Name == "endpoint" {
			return resp.StatusCode, s, e.Data, nil
		}
	}
	rc.Close()
	return resp.StatusCode, nil, "", errors.New("no endpoint event in 100 events")
}

func (s *sseStream) await(id string) ([]byte, error) {
	_ = s.rc.c.SetDeadline(time.Now().Add(ioTimeout))
	return awaitAnswer(s.body, id)
}

func (s *sseStream) Close() error { return s.rc.Close() }

// wsConn is a client WebSocket connection framed by hand (RFC 6455), so
// that the upgrade request can carry raw header bytes.
type wsConn struct{ rc *rawConn }

// openWebSocket sends the upgrade request r (its lines must not hold the
// handshake headers; they are added) and returns the status and, on 101,
// the connection.
func openWebSocket(addr string, r rawRequest) (int, *wsConn, error) {
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	r.Lines = append([]string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key), "Sec-WebSocket-Protocol: mcp"}, r.Lines...)
	rc, err := dial(addr)
	if err != nil {
		return 0, nil, err
	}
	resp, err := rc.send(addr, r)
	if err != nil {
		rc.Close()
		return 0, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		rc.Close()
		return resp.StatusCode, nil, nil
	}
	return resp.StatusCode, &wsConn{rc: rc}, nil
}

func (w *wsConn) Close() error { return w.rc.Close() }

// writeFrame writes one masked frame (clients must mask, RFC 6455 §5.3).
func (w *wsConn) writeFrame(opcode byte, payload []byte) error {
	var b bytes.Buffer
	b.WriteByte(0x80 | opcode)
	switch n := len(payload); {
	case n < 126:
		b.WriteByte(0x80 | byte(n))
	case n <= 0xffff:
		b.WriteByte(0x80 | 126)
		_ = binary.Write(&b, binary.BigEndian, uint16(n))
	default:
		b.WriteByte(0x80 | 127)
		_ = binary.Write(&b, binary.BigEndian, uint64(n))
	}
	mask := make([]byte, 4)
	_, _ = rand.Read(mask)
	b.Write(mask)
	for i, c := range payload {
		b.WriteByte(c ^ mask[i%4])
	}
	_ = w.rc.c.SetDeadline(time.Now().Add(ioTimeout))
	_, err := w.rc.c.Write(b.Bytes())
	return err
}

func (w *wsConn) send(msg string) error { return w.writeFrame(0x1, []byte(msg)) }

// readMessage reads one whole data message, answering pings.
func (w *wsConn) readMessage() ([]byte, error) {
	var msg []byte
	for range 10000 {
		_ = w.rc.c.SetDeadline(time.Now().Add(ioTimeout))
		var h [2]byte
		if _, err := io.ReadFull(w.rc.br, h[:]); err != nil {
			return nil, err
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var l uint16
			if err := binary.Read(w.rc.br, binary.BigEndian, &l); err != nil {
				return nil, err
			}
			n = uint64(l)
		case 127:
			if err := binary.Read(w.rc.br, binary.BigEndian, &n); err != nil {
				return nil, err
			}
		}
		if n > 8<<20 {
			return nil, fmt.Errorf("frame of %d bytes", n)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(w.rc.br, payload); err != nil {
			return nil, err
		}
		switch opcode := h[0] & 0x0f; opcode {
		case 0x8:
			return nil, fmt.Errorf("closed by the server: %q", payload)
		case 0x9:
			if err := w.writeFrame(0xA, payload); err != nil {
				return nil, err
			}
			continue
		case 0xA:
			continue
		}
		msg = append(msg, payload...)
		if h[0]&0x80 != 0 {
			return msg, nil
		}
	}
	return nil, errors.New("no whole message in 10000 frames")
}

// await reads messages up to the response with id.
func (w *wsConn) await(id string) ([]byte, error) {
	for range 1000 {
		m, err := w.readMessage()
		if err != nil {
			return nil, err
		}
		if answers(m, id) {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no answer to id %s in 1000 messages", id)
}

// jsonRPC builds a request (id != "") or notification.
func jsonRPC(id, method string, params any) []byte {
	p, _ := json.Marshal(params)
	if id == "" {
		return fmt.Appendf(nil, `{"jsonrpc":"2.0","method":%q,"params":%s}`, method, p)
	}
	return fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"method":%q,"params":%s}`, id, method, p)
}

// callFailed reports a JSON-RPC error in an answer, or "" for a result.
func callFailed(msg []byte) string {
	var m struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg, &m); err != nil {
		return "unreadable answer: " + strconv.Quote(string(msg))
	}
	if m.Error != nil {
		return fmt.Sprintf("JSON-RPC error %d: %s", m.Error.Code, m.Error.Message)
	}
	if m.Result == nil {
		return "answer without result: " + strconv.Quote(string(msg))
	}
	return ""
}
