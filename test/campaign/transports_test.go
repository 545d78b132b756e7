package campaign

import (
	"fmt"
	"net/http"
)

// The five client paths a call can take to an upstream, each driven with
// the raw client. Each returns where it stopped: the status of the request
// that carried the case's header lines at open (0 where there is no
// separate open), the status of the call, and the call's JSON-RPC answer
// ("" for a result, else what failed).

// transports are the paths the campaign drives.
// relay is the 1:1 relay's Streamable HTTP endpoint, relay-sse its SSE one.
var transports = []string{"rpc", "mcp", "sse", "ws", "relay", "relay-sse"}

// carries says which requests of a transport carry a case's header
// lines: the open (the initialize POST, the SSE GET, the WebSocket
// upgrade) and the call (the tools/call POST; a WebSocket call is a frame).
func carries(transport string) (open, call bool) {
	switch transport {
	case "rpc":
		return false, true
	case "ws":
		return true, false
	default:
		return true, true
	}
}

// forwardsOpening says whether a call is forwarded with the session's
// opening headers (spec §4: SSE and WebSocket sessions) rather than with
// its own request's (Streamable HTTP, as on /rpc).
func forwardsOpening(transport string) bool {
	switch transport {
	case "sse", "relay-sse", "ws":
		return true
	}
	return false
}

// exchange is what one case's requests got.
type exchange struct {
	OpenStatus, CallStatus int
	Answer                 string // "" for a result
}

const protocolVersion = "2025-06-18"

var initializeParams = map[string]any{"protocolVersion": protocolVersion, "capabilities": map[string]any{},
	"clientInfo": map[string]any{"name": "campaign", "version": "1"}}

// drive sends one case: open (when the transport has one) with openLines,
// then hook (the case's configuration change, if any), then the call of
// tool with arguments {"cid": cid} with callLines. auth (the credential
// line, or none) goes on the session's other requests.
func drive(addr, transport, path, tool, cid string, auth, openLines, callLines []string, hook func() error) (exchange, error) {
	call := jsonRPC("7", "tools/call", map[string]any{"name": tool, "arguments": map[string]any{"cid": cid}})
	var ex exchange
	switch transport {
	case "rpc":
		if err := hook(); err != nil {
			return ex, err
		}
		status, _, body, err := roundTrip(addr, rawRequest{"POST", "/rpc",
			append([]string{"Content-Type: application/json", "Accept: application/json"}, callLines...), call}, "7")
		ex.CallStatus = status
		if err != nil || status != http.StatusOK {
			return ex, err
		}
		ex.Answer = callFailed(body)
		return ex, nil

	case "mcp", "relay":
		accept := "Accept: application/json, text/event-stream"
		status, h, body, err := roundTrip(addr, rawRequest{"POST", path,
			append([]string{"Content-Type: application/json", accept}, openLines...), jsonRPC("1", "initialize", initializeParams)}, "1")
		ex.OpenStatus = status
		if err != nil || status != http.StatusOK {
			return ex, err
		}
		if failed := callFailed(body); failed != "" {
			return ex, fmt.Errorf("initialize: %s", failed)
		}
		session := []string{"Content-Type: application/json", accept, "Mcp-Session-Id: " + h.Get("Mcp-Session-Id"),
			"Mcp-Protocol-Version: " + protocolVersion}
		status, _, _, err = roundTrip(addr, rawRequest{"POST", path, append(session, auth...),
			jsonRPC("", "notifications/initialized", map[string]any{})}, "")
		if err != nil || status != http.StatusAccepted {
			return ex, fmt.Errorf("notifications/initialized: HTTP %d, %v", status, err)
		}
		if err := hook(); err != nil {
			return ex, err
		}
		status, _, body, err = roundTrip(addr, rawRequest{"POST", path, append(session, callLines...), call}, "7")
		ex.CallStatus = status
		if err != nil || status != http.StatusOK {
			return ex, err
		}
		ex.Answer = callFailed(body)
		return ex, nil

	case "sse", "relay-sse":
		status, s, endpoint, err := openSSE(addr, rawRequest{"GET", path, append([]string{"Accept: text/event-stream"}, openLines...), nil})
		ex.OpenStatus = status
		if err != nil || s == nil {
			return ex, err
		}
		defer s.Close()
		post := func(lines []string, body []byte, id string) ([]byte, error) {
			status, _, _, err := roundTrip(addr, rawRequest{"POST", endpoint,
				append([]string{"Content-Type: application/json"}, lines...), body}, "")
			ex.CallStatus = status
			if err != nil || status != http.StatusAccepted {
				return nil, fmt.Errorf("POST %s: HTTP %d, %v", endpoint, status, err)
			}
			if id == "" {
				return nil, nil
			}
			return s.await(id)
		}
		if _, err := post(auth, jsonRPC("1", "initialize", initializeParams), "1"); err != nil {
			return ex, fmt.Errorf("initialize: %w", err)
		}
		if _, err := post(auth, jsonRPC("", "notifications/initialized", map[string]any{}), ""); err != nil {
			return ex, err
		}
		if err := hook(); err != nil {
			return ex, err
		}
		answer, err := post(callLines, call, "7")
		if err != nil {
			return ex, err
		}
		ex.Answer = callFailed(answer)
		return ex, nil

	case "ws":
		status, ws, err := openWebSocket(addr, rawRequest{"GET", path, openLines, nil})
		ex.OpenStatus = status
		if err != nil || ws == nil {
			return ex, err
		}
		defer ws.Close()
		if err := ws.send(string(jsonRPC("1", "initialize", initializeParams))); err != nil {
			return ex, err
		}
		if _, err := ws.await("1"); err != nil {
			return ex, fmt.Errorf("initialize: %w", err)
		}
		if err := ws.send(string(jsonRPC("", "notifications/initialized", map[string]any{}))); err != nil {
			return ex, err
		}
		if err := hook(); err != nil {
			return ex, err
		}
		if err := ws.send(string(call)); err != nil {
			return ex, err
		}
		answer, err := ws.await("7")
		ex.CallStatus = http.StatusOK
		if err != nil {
			return ex, err
		}
		ex.Answer = callFailed(answer)
		return ex, nil
	}
	return ex, fmt.Errorf("unknown transport %q", transport)
}
