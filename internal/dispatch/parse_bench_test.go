package dispatch

import (
	"testing"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// benchMessage is a typical tools/call: a few arguments, a _meta.
var benchMessage = []byte(`{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"files_read_file",` +
	`"arguments":{"path":"/srv/data/report.txt","encoding":"utf-8","range":{"start":0,"end":4096},"tags":["a","b","c"]},` +
	`"_meta":{"progressToken":"tok-42"}}}`)

// BenchmarkParseAndRoute is the hot path of a tools/call up to the
// upstream: decode (duplicate keys refused), read the routed name, rewrite
// it to the upstream's own.
func BenchmarkParseAndRoute(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		m, err := jsonrpc.DecodeMessage(benchMessage)
		if err != nil {
			b.Fatal(err)
		}
		name, _ := stringParam(m, "name")
		if _, err := jsonrpc.WithStringMember(m.Params, "name", name[6:]); err != nil {
			b.Fatal(err)
		}
	}
}
