package upstream

import (
	"bytes"
	"encoding/json"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// setTopLevel replaces the value of key in the object obj (a notification's
// params) by v through jsonrpc's one raw-JSON layer; obj is returned
// unchanged when it lacks key (or cannot be read).
func setTopLevel(obj json.RawMessage, key string, v []byte) json.RawMessage {
	if _, ok := jsonrpc.Member(obj, key); !ok {
		return obj
	}
	out, err := jsonrpc.WithMember(obj, key, v)
	if err != nil {
		return obj
	}
	return out
}

// idKey is the map key of a request id or progress token as raw JSON.
func idKey(raw []byte) string { return string(bytes.TrimSpace(raw)) }
