package gateway

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/passthrough"
)

// benchDirectory is a fixed index.
type benchDirectory struct{ ix *dispatch.Index }

func (d benchDirectory) Index() *dispatch.Index { return d.ix }

// BenchmarkForward is one tools/call forwarded to a real go-sdk upstream
// on a loopback port, with one passthrough header, without and with the
// identity assertion: its cost is the ratio of the two (docs/benchmarks.md).
func BenchmarkForward(b *testing.B) {
	srv := mcptest.NewStreamableHTTP(b, mcptest.WithJSONResponse())
	ctx := context.Background()
	c, err := upstream.Connect(ctx, upstream.Options{URL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	keys := benchKeys(b)
	policy := passthrough.NewPolicy(passthrough.Settings{EnableHeaderPassthrough: true})
	msg, err := jsonrpc.DecodeMessage([]byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`))
	if err != nil {
		b.Fatal(err)
	}
	in := dispatch.Inbound{Header: http.Header{"X-Tenant-Id": {"acme"}, "X-Trace-Id": {"4bf92f35"}}}
	ctx = auth.WithIdentity(ctx, auth.Identity{Issuer: "https://idp.example", Subject: "alice", Roles: []auth.Role{auth.RoleClient}})
	for _, mode := range []struct {
		name     string
		audience string
	}{{"assertion=off", ""}, {"assertion=on", srv.URL}} {
		r := &dispatch.Route{ID: "u1", Name: "bench", Slug: "bench", Caller: c, AssertionAudience: mode.audience,
			Upstream:    passthrough.Upstream{Name: "bench", AuthType: passthrough.AuthNone},
			Credentials: auth.NewUpstreamAuth(passthrough.AuthNone, auth.Credentials{}, nil, nil),
			Allowlist:   policy.Compile([]string{"X-Tenant-Id", "X-Trace-Id"})}
		d := dispatch.New(dispatch.Config{Directory: benchDirectory{dispatch.NewIndex([]*dispatch.Route{r}, "-")}, Policy: policy,
			Resolver: passthrough.NewAllowlistResolver(policy, nil, nil), Timeout: 10 * time.Second, Assertions: keys})
		forward := func() {
			if resp := d.Forward(ctx, r, msg, in); resp.Error != nil {
				b.Fatal(resp.Error.Message)
			}
		}
		b.Run(mode.name+"/sequential", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				forward()
			}
		})
		b.Run(mode.name+"/concurrent", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					forward()
				}
			})
		})
	}
}

func benchKeys(b *testing.B) *auth.AssertionKeys {
	b.Helper()
	st, sealer := sealedStore(b, "sqlite:///"+filepath.Join(b.TempDir(), "mcpgate.db"))
	keys, err := auth.NewAssertionKeys(context.Background(), auth.AssertionKeysConfig{Store: signingKeyStore{st}, Sealer: sealer, TTL: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	// As the gateway does (startAssertionKeys): Run keeps signature
	// nonces ready.
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); keys.Run(ctx, time.Hour) }()
	b.Cleanup(func() { cancel(); <-ran })
	return keys
}
