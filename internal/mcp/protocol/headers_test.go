package protocol

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// The examples below are the specification's own: MCP 2026-07-28,
// basic/transports/streamable-http, "Request Metadata", and the schema's
// examples (schema/2026-07-28/examples).

// meta is the _meta every example request of the specification carries.
const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"ExampleClient","version":"1.0.0"},"io.modelcontextprotocol/clientCapabilities":{}}`

// executeSQL is the example tool definition of "Custom Headers from Tool
// Parameters › Schema Extension".
const executeSQL = `{"type":"object","properties":{"region":{"type":"string","description":"The region to execute the query in","x-mcp-header":"Region"},"query":{"type":"string","description":"The SQL query to execute"}},"required":["region","query"]}`

func request(t *testing.T, body string) jsonrpc.Message {
	t.Helper()
	m, err := jsonrpc.DecodeMessage([]byte(body))
	if err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return m
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestRequestHeadersSpecExamples(t *testing.T) {
	tests := []struct {
		name, body, schema string
		want               http.Header
	}{
		// "Standard Request Headers", the tools/call request.
		{"tools/call", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","arguments":{"location":"Seattle, WA"},` + meta + `}}`, ``,
			header("MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", "get_weather")},
		// "Standard Request Headers", the resources/read request.
		{"resources/read", `{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///projects/myapp/config.json",` + meta + `}}`, ``,
			header("MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "resources/read", "Mcp-Name", "file:///projects/myapp/config.json")},
		// schema example GetPromptRequest/get-prompt-request.json.
		{"prompts/get", `{"jsonrpc":"2.0","id":"get-prompt-example","method":"prompts/get","params":{` + meta + `,"name":"code_review","arguments":{"code":"def hello():\n    print('world')"}}}`, ``,
			header("MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "prompts/get", "Mcp-Name", "code_review")},
		// "Schema Extension", the execute_sql tool and its resulting request.
		{"x-mcp-header", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{` + meta + `,"name":"execute_sql","arguments":{"region":"us-west1","query":"SELECT * FROM users"}}}`, executeSQL,
			header("MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", "execute_sql", "Mcp-Param-Region", "us-west1")},
		// Only Mcp-Method for a method without a name.
		{"tools/list", `{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{` + meta + `}}`, ``,
			header("MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/list")},
		// "Server Behavior for Custom Headers": a null or absent parameter has no header.
		{"null parameter", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{` + meta + `,"name":"execute_sql","arguments":{"region":null}}}`, executeSQL,
			header("MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", "execute_sql")},
		{"absent parameter", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{` + meta + `,"name":"execute_sql","arguments":{"query":"q"}}}`, executeSQL,
			header("MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", "execute_sql")},
		// "Value Encoding": a name outside the safe set is Base64-encoded.
		{"non-ASCII name", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///données/é.txt",` + meta + `}}`, ``,
			header("MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "resources/read", "Mcp-Name", EncodeHeaderValue("file:///données/é.txt"))},
		// "Value Encoding", type conversion; and nested properties ("Schema Extension").
		{"integer, boolean, nested", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{` + meta + `,"name":"t","arguments":{"n":-7,"big":42.0,"ok":true,"target":{"zone":"eu"}}}}`,
			`{"type":"object","properties":{"n":{"type":"integer","x-mcp-header":"N"},"big":{"type":"integer","x-mcp-header":"Big"},"ok":{"type":"boolean","x-mcp-header":"ok"},"target":{"type":"object","properties":{"zone":{"type":"string","x-mcp-header":"Zone"}}}}}`,
			header("MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", "t", "Mcp-Param-N", "-7", "Mcp-Param-Big", "42", "Mcp-Param-Ok", "true", "Mcp-Param-Zone", "eu")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := request(t, tt.body)
			got, err := RequestHeaders(msg, json.RawMessage(tt.schema))
			if err != nil {
				t.Fatalf("RequestHeaders: %v", err)
			}
			if !sameHeaders(got, tt.want) {
				t.Errorf("RequestHeaders = %v, want %v", got, tt.want)
			}
			// What a client builds, a server accepts.
			if err := CheckRequestHeaders(got, msg, json.RawMessage(tt.schema)); err != nil {
				t.Errorf("CheckRequestHeaders(own headers): %v", err)
			}
			if err := CheckRequestMeta(msg); err != nil {
				t.Errorf("CheckRequestMeta: %v", err)
			}
		})
	}
}

func sameHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || strings.Join(v, "\x00") != strings.Join(w, "\x00") {
			return false
		}
	}
	return true
}

// TestEncodeHeaderValueSpecTable: the encoding examples of "Value
// Encoding", byte for byte, and back.
func TestEncodeHeaderValueSpecTable(t *testing.T) {
	tests := []struct{ value, want string }{
		{"us-west1", "us-west1"},                                      // Plain ASCII
		{"Hello, 世界", "=?base64?SGVsbG8sIOS4lueVjA==?="},              // Contains non-ASCII
		{" padded ", "=?base64?IHBhZGRlZCA=?="},                       // Leading/trailing spaces
		{"line1\nline2", "=?base64?bGluZTEKbGluZTI=?="},               // Contains newline
		{"=?base64?literal?=", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="}, // Matches sentinel pattern
		// Not in the table: a tab is a control character; an inner space is plain.
		{"a\tb", "=?base64?YQli?="},
		{"a b", "a b"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := EncodeHeaderValue(tt.value); got != tt.want {
			t.Errorf("EncodeHeaderValue(%q) = %q, want %q", tt.value, got, tt.want)
		}
		if back, err := DecodeHeaderValue(tt.want); err != nil || back != tt.value {
			t.Errorf("DecodeHeaderValue(%q) = %q, %v; want %q", tt.want, back, err, tt.value)
		}
	}
	// The markers are case-sensitive: anything else is a plain value.
	for _, v := range []string{"=?BASE64?YQ==?=", "=?base64?", "=?base64?=", "?="} {
		if got, err := DecodeHeaderValue(v); err != nil || got != v {
			t.Errorf("DecodeHeaderValue(%q) = %q, %v; want it unchanged", v, got, err)
		}
	}
	if _, err := DecodeHeaderValue("=?base64?not base64!?="); err == nil {
		t.Error("DecodeHeaderValue accepted malformed Base64")
	}
}

// TestHeaderMismatchSpecExample: the example error response of "Server
// Validation" (schema HeaderMismatchError/header-mismatch.json) is what a
// changed Mcp-Name gets: -32020, its message, no data, HTTP 400.
func TestHeaderMismatchSpecExample(t *testing.T) {
	msg := request(t, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bar",`+meta+`}}`)
	h := header("MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", "foo")
	var re *RequestError
	if err := CheckRequestHeaders(h, msg, nil); !errors.As(err, &re) {
		t.Fatalf("CheckRequestHeaders = %v, want a *RequestError", err)
	}
	got, err := jsonrpc.Encode(jsonrpc.NewError(msg.ID, re.RPCError()))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"jsonrpc":"2.0","id":1,"error":{"code":-32020,"message":"Header mismatch: Mcp-Name header value 'foo' does not match body value 'bar'"}}`
	if string(got) != want || re.HTTPStatus() != http.StatusBadRequest || re.Header != "Mcp-Name" {
		t.Errorf("error = %s (HTTP %d, header %q), want %s (HTTP 400, Mcp-Name)", got, re.HTTPStatus(), re.Header, want)
	}
}

// TestCheckRequestHeadersRefuses: each "Validation failure condition" of
// "Server Validation", and the table of "Server Behavior for Custom
// Headers", refused with -32020 naming the header.
func TestCheckRequestHeadersRefuses(t *testing.T) {
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{` + meta + `,"name":"execute_sql","arguments":{"region":"us-west1","query":"q"}}}`
	ok := func() http.Header {
		return header("MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", "execute_sql", "Mcp-Param-Region", "us-west1")
	}
	with := func(f func(h http.Header)) http.Header { h := ok(); f(h); return h }
	tests := []struct {
		name, body string
		h          http.Header
		wantHeader string
	}{
		{"version missing", call, with(func(h http.Header) { h.Del("Mcp-Protocol-Version") }), "MCP-Protocol-Version"},
		{"version differs from _meta", call, with(func(h http.Header) { h.Set("Mcp-Protocol-Version", "2025-11-25") }), "MCP-Protocol-Version"},
		{"method missing", call, with(func(h http.Header) { h.Del("Mcp-Method") }), "Mcp-Method"},
		{"method differs (values are case-sensitive)", call, with(func(h http.Header) { h.Set("Mcp-Method", "Tools/Call") }), "Mcp-Method"},
		{"name missing", call, with(func(h http.Header) { h.Del("Mcp-Name") }), "Mcp-Name"},
		{"name differs", call, with(func(h http.Header) { h.Set("Mcp-Name", "drop_table") }), "Mcp-Name"},
		{"name sent twice", call, with(func(h http.Header) { h.Add("Mcp-Name", "execute_sql") }), "Mcp-Name"},
		{"name not Base64-encoded though not ASCII", strings.Replace(call, `"name":"execute_sql"`, `"name":"exécute"`, 1), with(func(h http.Header) { h.Set("Mcp-Name", "exécute") }), "Mcp-Name"},
		{"name malformed Base64", call, with(func(h http.Header) { h.Set("Mcp-Name", "=?base64?@@?=") }), "Mcp-Name"},
		{"param missing though in body", call, with(func(h http.Header) { h.Del("Mcp-Param-Region") }), "Mcp-Param-Region"},
		{"param differs", call, with(func(h http.Header) { h.Set("Mcp-Param-Region", "us-east1") }), "Mcp-Param-Region"},
		{"param invalid characters", call, with(func(h http.Header) { h.Set("Mcp-Param-Region", "us-wést1") }), "Mcp-Param-Region"},
		{"param for a null argument", strings.Replace(call, `"region":"us-west1"`, `"region":null`, 1), ok(), "Mcp-Param-Region"},
		{"param for an absent argument", strings.Replace(call, `"region":"us-west1",`, ``, 1), ok(), "Mcp-Param-Region"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckRequestHeaders(tt.h, request(t, tt.body), json.RawMessage(executeSQL))
			var re *RequestError
			if !errors.As(err, &re) || re.Code != CodeHeaderMismatch || re.Header != tt.wantHeader || !strings.Contains(re.Message, tt.wantHeader) {
				t.Fatalf("CheckRequestHeaders = %#v, want -32020 naming %s", err, tt.wantHeader)
			}
			if strings.HasPrefix(tt.wantHeader, "Mcp-Param-") && strings.Contains(re.Message, "us-") {
				t.Errorf("message %q repeats a parameter's value", re.Message)
			}
		})
	}
}

// TestCheckRequestHeadersAccepts: what the specification lets through.
func TestCheckRequestHeadersAccepts(t *testing.T) {
	schema := `{"type":"object","properties":{"n":{"type":"integer","x-mcp-header":"N"},"g":{"type":"string","x-mcp-header":"Greeting"}}}`
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{` + meta + `,"name":"t","arguments":{"n":42,"g":"Hello, 世界"}}}`
	base := func(n string) http.Header {
		return header("mcp-protocol-version", "2026-07-28", "MCP-METHOD", "tools/call", "mcp-name", "t",
			"mcp-param-n", n, "Mcp-Param-Greeting", "=?base64?SGVsbG8sIOS4lueVjA==?=")
	}
	// "Case Sensitivity": names in any case; "Server Validation" note:
	// integers compared numerically, 42.0 is 42; an unannotated
	// Mcp-Param-* is ignored ("Server Behavior for Custom Headers").
	for _, h := range []http.Header{base("42"), base("42.0"), func() http.Header { h := base("42"); h.Set("Mcp-Param-Other", "x"); return h }()} {
		if err := CheckRequestHeaders(h, request(t, body), json.RawMessage(schema)); err != nil {
			t.Errorf("CheckRequestHeaders(%v) = %v", h, err)
		}
	}
	if err := CheckRequestHeaders(base("43"), request(t, body), json.RawMessage(schema)); err == nil {
		t.Error("CheckRequestHeaders accepted 43 for 42")
	}
}

// TestCheckRequestMeta: "Per-request protocol fields" (basic/index):
// protocolVersion and clientCapabilities are required, clientInfo is not;
// a missing one is -32602, HTTP 400, naming the member.
func TestCheckRequestMeta(t *testing.T) {
	tests := []struct{ name, meta, wantField string }{
		{"all three", `{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`, ""},
		{"no clientInfo", `{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`, ""},
		{"no protocolVersion", `{"io.modelcontextprotocol/clientCapabilities":{}}`, "params._meta.io.modelcontextprotocol/protocolVersion"},
		{"protocolVersion not a string", `{"io.modelcontextprotocol/protocolVersion":20260728,"io.modelcontextprotocol/clientCapabilities":{}}`, "params._meta.io.modelcontextprotocol/protocolVersion"},
		{"no clientCapabilities", `{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}`, "params._meta.io.modelcontextprotocol/clientCapabilities"},
		{"clientCapabilities not an object", `{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":[]}`, "params._meta.io.modelcontextprotocol/clientCapabilities"},
		{"clientInfo without version", `{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"c"},"io.modelcontextprotocol/clientCapabilities":{}}`, "params._meta.io.modelcontextprotocol/clientInfo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckRequestMeta(request(t, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":`+tt.meta+`}}`))
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("CheckRequestMeta = %v", err)
				}
				return
			}
			var re *RequestError
			if !errors.As(err, &re) || re.Code != jsonrpc.CodeInvalidParams || re.Field != tt.wantField || re.HTTPStatus() != 400 || !strings.Contains(re.Message, tt.wantField) {
				t.Fatalf("CheckRequestMeta = %#v, want -32602 naming %s", err, tt.wantField)
			}
		})
	}
	if err := CheckRequestMeta(request(t, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)); err == nil {
		t.Error("a request without _meta passed")
	}
	if err := CheckRequestMeta(request(t, `{"jsonrpc":"2.0","method":"notifications/x"}`)); err != nil {
		t.Errorf("a notification was refused: %v", err)
	}
}

// TestParamHeadersRefusesInvalidAnnotations: each constraint of "Schema
// Extension" makes the tool invalid, with an error naming the property.
func TestParamHeadersRefusesInvalidAnnotations(t *testing.T) {
	tests := []struct{ name, schema, want string }{
		{"empty", `{"properties":{"a":{"type":"string","x-mcp-header":""}}}`, "property a"},
		{"not a string", `{"properties":{"a":{"type":"string","x-mcp-header":7}}}`, "property a"},
		{"not a token", `{"properties":{"a":{"type":"string","x-mcp-header":"Re gion"}}}`, "property a"},
		{"control character", `{"properties":{"a":{"type":"string","x-mcp-header":"A\r\nB"}}}`, "property a"},
		{"duplicate, other case", `{"properties":{"a":{"type":"string","x-mcp-header":"Region"},"b":{"type":"string","x-mcp-header":"REGION"}}}`, "property b"},
		{"type number", `{"properties":{"a":{"type":"number","x-mcp-header":"A"}}}`, "property a"},
		{"type object", `{"properties":{"a":{"type":"object","x-mcp-header":"A"}}}`, "property a"},
		{"no type", `{"properties":{"a":{"x-mcp-header":"A"}}}`, "property a"},
		{"through items", `{"properties":{"a":{"type":"array","items":{"type":"string","x-mcp-header":"A"}}}}`, "a.items"},
		{"through oneOf", `{"oneOf":[{"properties":{"a":{"type":"string","x-mcp-header":"A"}}}]}`, "oneOf"},
		{"in $defs", `{"$defs":{"d":{"type":"string","x-mcp-header":"A"}},"properties":{"a":{"$ref":"#/$defs/d"}}}`, "$defs"},
		{"on the root", `{"type":"string","x-mcp-header":"A"}`, "root"},
		{"repeated key", `{"properties":{"a":{"type":"string","x-mcp-header":"A","x-mcp-header":"B"}}}`, "duplicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParamHeaders(json.RawMessage(tt.schema))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParamHeaders = %v, want an error naming %q", err, tt.want)
			}
			// A client must not call such a tool: RequestHeaders fails too.
			if _, err := RequestHeaders(request(t, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t",`+meta+`}}`), json.RawMessage(tt.schema)); err == nil {
				t.Error("RequestHeaders accepted the tool")
			}
		})
	}
	// Data keywords hold no annotations: an x-mcp-header member in const
	// or a property called x-mcp-header is no annotation.
	for _, s := range []string{
		`{"properties":{"a":{"type":"object","const":{"x-mcp-header":"A"}}}}`,
		`{"properties":{"x-mcp-header":{"type":"string"}}}`,
	} {
		if got, err := ParamHeaders(json.RawMessage(s)); err != nil || len(got) != 0 {
			t.Errorf("ParamHeaders(%s) = %v, %v; want none", s, got, err)
		}
	}
}

// TestRequestHeadersRefusesUnsendableArguments: an annotated argument the
// header cannot carry, or a body that reads two ways, is an error naming it.
func TestRequestHeadersRefusesUnsendableArguments(t *testing.T) {
	schema := `{"properties":{"n":{"type":"integer","x-mcp-header":"N"}}}`
	for _, args := range []string{`{"n":1.5}`, `{"n":9007199254740992}`, `{"n":[1]}`, `{"n":1,"n":2}`} {
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{` + meta + `,"name":"t","arguments":` + args + `}}`
		msg := jsonrpc.Message{JSONRPC: "2.0", ID: json.RawMessage("1"), Method: "tools/call", Params: json.RawMessage(body[strings.Index(body, `"params":`)+9 : len(body)-1])}
		if _, err := RequestHeaders(msg, json.RawMessage(schema)); err == nil || !strings.Contains(err.Error(), "n") {
			t.Errorf("RequestHeaders(arguments %s) = %v, want an error naming n", args, err)
		}
	}
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{` + meta + `}}`,             // no name
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":7,` + meta + `}}`, // uri not a string
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}`,               // no protocolVersion
	} {
		if _, err := RequestHeaders(request(t, body), nil); err == nil {
			t.Errorf("RequestHeaders(%s) succeeded", body)
		}
	}
}
