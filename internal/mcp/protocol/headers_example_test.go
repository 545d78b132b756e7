package protocol_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// A 2026-07-28 tools/call mirrors its method, its tool and each argument
// the tool's schema annotates with x-mcp-header into headers; a value that
// is not plain ASCII travels Base64-encoded.
func ExampleRequestHeaders() {
	msg, _ := jsonrpc.DecodeMessage([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{` +
		`"name":"execute_sql","arguments":{"region":"us-west1","greeting":"Hello, 世界"},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`))
	schema := json.RawMessage(`{"type":"object","properties":{` +
		`"region":{"type":"string","x-mcp-header":"Region"},"greeting":{"type":"string","x-mcp-header":"Greeting"}}}`)
	h, err := protocol.RequestHeaders(msg, schema)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, k := range []string{"Mcp-Protocol-Version", "Mcp-Method", "Mcp-Name", "Mcp-Param-Region", "Mcp-Param-Greeting"} {
		fmt.Printf("%s: %s\n", k, h.Get(k))
	}
	// Output:
	// Mcp-Protocol-Version: 2026-07-28
	// Mcp-Method: tools/call
	// Mcp-Name: execute_sql
	// Mcp-Param-Region: us-west1
	// Mcp-Param-Greeting: =?base64?SGVsbG8sIOS4lueVjA==?=
}

// A server that reads the body refuses headers that disagree with it:
// HeaderMismatch, -32020, with HTTP 400.
func ExampleCheckRequestHeaders() {
	msg, _ := jsonrpc.DecodeMessage([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bar",` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`))
	h := http.Header{}
	h.Set("MCP-Protocol-Version", "2026-07-28")
	h.Set("Mcp-Method", "tools/call")
	h.Set("Mcp-Name", "foo")
	var re *protocol.RequestError
	if err := protocol.CheckRequestHeaders(h, msg, nil); errors.As(err, &re) {
		fmt.Println(re.HTTPStatus(), re.Code, re.Message)
	}
	// Output: 400 -32020 Header mismatch: Mcp-Name header value 'foo' does not match body value 'bar'
}
