// Package frontdoor is mcpgate's client-facing MCP transports — plain
// JSON-RPC at /rpc, Streamable HTTP at /mcp, legacy HTTP+SSE at /sse,
// WebSocket at /ws, and the same per-session transports for the 1:1 relay —
// with their sessions. It reads and writes messages and hands each one to
// the dispatcher, or to the session's own backend, with the headers the
// passthrough engine must see (spec §4).
package frontdoor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"

	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// Handler answers one client message; *dispatch.Dispatcher is one.
type Handler interface {
	Handle(ctx context.Context, msg jsonrpc.Message, in dispatch.Inbound) (jsonrpc.Message, bool)
}

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 8 << 20

// RequestID returns the id the gateway gave the HTTP request, for logs.
type RequestID func(*http.Request) string

// RPC serves plain JSON-RPC over HTTP POST at /rpc: one message or a batch
// in, the answers out. Each call is forwarded with this request's headers.
type RPC struct {
	Handler   Handler
	Logger    *slog.Logger
	RequestID RequestID
}

func (h *RPC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSONRPCError(w, http.StatusMethodNotAllowed, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "use POST with a JSON-RPC body"))
		return
	}
	// JSON-RPC over plain HTTP answers a malformed request with 200 and the error.
	msgs, batch, ok := readMessages(w, r, http.StatusOK)
	if !ok {
		return
	}
	in := dispatch.Inbound{Header: r.Header, RequestID: h.RequestID(r)}
	var answers []jsonrpc.Message
	for _, m := range msgs {
		if m.IsResponse() {
			continue // nothing asked for it on this transport
		}
		if resp, ok := h.Handler.Handle(r.Context(), m, in); ok {
			answers = append(answers, resp)
		}
	}
	if len(answers) == 0 {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	writeAnswers(w, answers, batch)
}

// writeAnswers writes JSON-RPC answers as they are, raw fields untouched.
func writeAnswers(w http.ResponseWriter, answers []jsonrpc.Message, batch bool) {
	var body []byte
	var err error
	if batch {
		body, err = jsonrpc.EncodeBatch(answers)
	} else {
		body, err = jsonrpc.Encode(answers[0])
	}
	if err != nil {
		writeJSONRPCError(w, http.StatusInternalServerError, jsonrpc.Errorf(jsonrpc.CodeInternalError, "%v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// readMessages reads the request's JSON-RPC message or batch; when it cannot,
// it answers with a JSON-RPC error and the HTTP status badStatus (413 for a
// body too large, 408 for one too slow to arrive, 415 for a form or text
// body) and returns false.
func readMessages(w http.ResponseWriter, r *http.Request, badStatus int) (msgs []jsonrpc.Message, batch, ok bool) {
	body, status, err := readBody(w, r)
	if err != nil {
		writeJSONRPCError(w, status, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "%v", err))
		return nil, false, false
	}
	msgs, batch, err = jsonrpc.Decode(body)
	if err != nil {
		writeJSONRPCError(w, badStatus, asRPCError(err))
		return nil, false, false
	}
	return msgs, batch, true
}

// readBody reads a message body of at most MaxBodyBytes; on failure it
// returns the HTTP status to answer with. A body declared as text or a form
// is refused before it is read: those are the types a browser page posts
// across origins without a CORS preflight, and no MCP client sends them
// (MCP basic/transports: messages are JSON). A missing Content-Type is
// accepted, as existing non-browser clients may omit it.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err != nil:
			return nil, http.StatusUnsupportedMediaType, fmt.Errorf("Content-Type %q cannot be parsed; send Content-Type: application/json", ct)
		case mt == "text/plain", mt == "application/x-www-form-urlencoded", mt == "multipart/form-data":
			return nil, http.StatusUnsupportedMediaType, fmt.Errorf("Content-Type %q is not accepted; send Content-Type: application/json", ct)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, http.StatusRequestEntityTooLarge, errors.New("request body larger than 8 MiB")
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The gateway bounds how long a body may take to arrive.
		return nil, http.StatusRequestTimeout, errors.New("the request body did not arrive in time")
	case err != nil:
		return nil, http.StatusBadRequest, fmt.Errorf("the request body could not be read: %w", err)
	}
	return body, 0, nil
}

func asRPCError(err error) *jsonrpc.Error {
	var e *jsonrpc.Error
	if errors.As(err, &e) {
		return e
	}
	return jsonrpc.Errorf(jsonrpc.CodeParseError, "parse error: %v", err)
}

func writeJSONRPCError(w http.ResponseWriter, status int, e *jsonrpc.Error) {
	body := encodeError(e)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
