package protocol

import (
	"encoding/json"
	"testing"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// The cost per tools/call of the 2026-07-28 headers, on the specification's
// execute_sql tool: built by a client hop, checked by a server hop.
func benchCall(b *testing.B) (jsonrpc.Message, json.RawMessage) {
	msg, err := jsonrpc.DecodeMessage([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{` + meta +
		`,"name":"execute_sql","arguments":{"region":"us-west1","query":"SELECT * FROM users"}}}`))
	if err != nil {
		b.Fatal(err)
	}
	return msg, json.RawMessage(executeSQL)
}

func BenchmarkRequestHeaders(b *testing.B) {
	msg, schema := benchCall(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RequestHeaders(msg, schema); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckRequestHeaders(b *testing.B) {
	msg, schema := benchCall(b)
	h, err := RequestHeaders(msg, schema)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckRequestHeaders(h, msg, schema); err != nil {
			b.Fatal(err)
		}
	}
}
