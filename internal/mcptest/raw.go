package mcptest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// NewRaw starts a small hand-rolled Streamable HTTP MCP server on 127.0.0.1,
// for results the SDK cannot produce (unknown fields, unknown content
// types). It answers initialize itself (with an Mcp-Session-Id), accepts
// notifications and responses with 202, and gives every other request to
// handler with the request's HTTP headers. The handler's response is sent as
// an application/json body with its result or error bytes exactly as
// returned; a response without an id gets the request's, and a nil handler
// answers {}. Requests of an unknown session get 404, GET gets 405. It
// records requests like the other servers and honours WithName,
// WithRequireAuthorization, WithStatus, WithDelay, WithOnRequest,
// WithProtocolVersion, WithCapabilities and WithInstructions.
func NewRaw(tb testing.TB, handler func(req jsonrpc.Message, h http.Header) jsonrpc.Message, opts ...Option) *Server {
	tb.Helper()
	s := newServer(tb, opts)
	s.raw = &rawHandler{name: s.cfg.name, version: s.cfg.version, capabilities: s.cfg.capabilities, instructions: s.cfg.instructions,
		handle: handler, sessions: make(map[string]bool)}
	s.start(s.raw)
	return s
}

type rawHandler struct {
	name, version string
	capabilities  map[string]any // nil: tools only
	instructions  string         // "": none
	handle        func(jsonrpc.Message, http.Header) jsonrpc.Message

	mu       sync.Mutex
	sessions map[string]bool
}

func (h *rawHandler) known(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[id]
}

func (h *rawHandler) expire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.sessions)
}

func (h *rawHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sid := r.Header.Get("Mcp-Session-Id")
	switch r.Method {
	case http.MethodPost:
	case http.MethodDelete:
		if !h.known(sid) {
			http.Error(w, "mcptest: session not found", http.StatusNotFound)
			return
		}
		h.mu.Lock()
		delete(h.sessions, sid)
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		w.Header().Set("Allow", "POST, DELETE")
		http.Error(w, "mcptest: method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "mcptest: read body", http.StatusBadRequest)
		return
	}
	msg, err := jsonrpc.DecodeMessage(body)
	if err != nil {
		var jerr *jsonrpc.Error
		if !errors.As(err, &jerr) {
			jerr = jsonrpc.Errorf(jsonrpc.CodeParseError, "%v", err)
		}
		writeMessage(w, http.StatusBadRequest, jsonrpc.NewError(nil, jerr))
		return
	}
	if msg.Method == "initialize" {
		h.initialize(w, msg)
		return
	}
	switch {
	case sid == "":
		http.Error(w, "mcptest: Mcp-Session-Id is missing", http.StatusBadRequest)
		return
	case !h.known(sid):
		http.Error(w, "mcptest: session not found", http.StatusNotFound)
		return
	case !msg.IsRequest():
		w.WriteHeader(http.StatusAccepted)
		return
	}
	resp := jsonrpc.Message{Result: json.RawMessage("{}")}
	if h.handle != nil {
		resp = h.handle(msg, r.Header.Clone())
	}
	if len(resp.ID) == 0 {
		resp.ID = msg.ID
	}
	writeMessage(w, http.StatusOK, resp)
}

func (h *rawHandler) initialize(w http.ResponseWriter, msg jsonrpc.Message) {
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	json.Unmarshal(msg.Params, &p)
	version := h.version
	if version == "" {
		version = protocol.Negotiate(p.ProtocolVersion)
	}
	caps := h.capabilities
	if caps == nil {
		caps = map[string]any{"tools": map[string]any{}}
	}
	answer := map[string]any{
		"protocolVersion": version,
		"capabilities":    caps,
		"serverInfo":      map[string]string{"name": h.name, "version": "test"},
	}
	if h.instructions != "" {
		answer["instructions"] = h.instructions
	}
	result, err := json.Marshal(answer)
	if err != nil {
		http.Error(w, "mcptest: encode initialize result", http.StatusInternalServerError)
		return
	}
	sid := rand.Text()
	h.mu.Lock()
	h.sessions[sid] = true
	h.mu.Unlock()
	w.Header().Set("Mcp-Session-Id", sid)
	writeMessage(w, http.StatusOK, jsonrpc.Message{ID: msg.ID, Result: result})
}

// writeMessage writes a response with its id, result and error data bytes
// exactly as they are (jsonrpc.Encode would compact them).
func writeMessage(w http.ResponseWriter, status int, m jsonrpc.Message) {
	var b bytes.Buffer
	b.WriteString(`{"jsonrpc":"2.0","id":`)
	if len(m.ID) == 0 {
		b.WriteString("null")
	} else {
		b.Write(m.ID)
	}
	if m.Error != nil {
		b.WriteString(`,"error":{"code":`)
		code, _ := json.Marshal(m.Error.Code)
		b.Write(code)
		b.WriteString(`,"message":`)
		text, _ := json.Marshal(m.Error.Message)
		b.Write(text)
		if len(m.Error.Data) > 0 {
			b.WriteString(`,"data":`)
			b.Write(m.Error.Data)
		}
		b.WriteString("}")
	} else {
		b.WriteString(`,"result":`)
		if len(m.Result) == 0 {
			b.WriteString("{}")
		} else {
			b.Write(m.Result)
		}
	}
	b.WriteString("}")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
