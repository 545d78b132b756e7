package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/mcpgate/mcpgate/assertion"
	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/passthrough"
)

// The identity assertion (docs/identity-assertion.md): for an upstream
// that asked for one (Route.AssertionAudience), every request mcpgate
// sends it on a client's behalf — federation calls, everything the 1:1
// relay sends, and the requests the client's upstream session makes for
// itself — carries a JWS saying who the client is, what the message is,
// and the digest of the passthrough headers the engine forwarded on that
// very request. It is set after the engine has decided the headers, under
// a name in the X-Mcpgate- family, which the engine never forwards from a
// client (spec §2.3), so a client can neither supply nor override it.
// Discovery carries no client and gets none.

// errAssertion marks a request that could not be signed: it is not sent.
var errAssertion = errors.New("cannot sign the identity assertion")

// assert adds r's identity assertion to headers, the engine's result res
// for message msg (nil for a request an upstream session makes for
// itself). An upstream that asked for none gets nothing.
func (d *Dispatcher) assert(ctx context.Context, r *Route, res *passthrough.Result, headers http.Header, in Inbound, msg *jsonrpc.Message) error {
	if r.AssertionAudience == "" {
		return nil
	}
	if d.cfg.Assertions == nil {
		return fmt.Errorf("%w: the upstream asks for one, and mcpgate has no signing key (set AUTH_ENCRYPTION_SECRET)", errAssertion)
	}
	a := auth.Assertion{Client: in.clientIdentity(ctx), Audience: r.AssertionAudience, UpstreamID: r.ID, Headers: forwarded(res)}
	if msg != nil {
		a.Method, a.Name, a.RequestID = msg.Method, namedBy(*msg), msg.ID
	}
	token, err := d.cfg.Assertions.Sign(a)
	if err != nil {
		return fmt.Errorf("%w: %w", errAssertion, err)
	}
	headers.Set(d.assertionHeader(), token)
	return nil
}

// assertionHeader is IDENTITY_ASSERTION_HEADER.
func (d *Dispatcher) assertionHeader() string {
	if d.cfg.AssertionHeader != "" {
		return d.cfg.AssertionHeader
	}
	return assertion.DefaultHeader
}

// forwarded are the client headers the engine copied by the allowlist
// (spec §2.3), with their values as sent: what the digest covers. Base
// headers and the upstream Authorization of spec §2.2 are credentials,
// which the assertion does not carry even as a digest.
func forwarded(res *passthrough.Result) []assertion.Header {
	var hs []assertion.Header
	for _, dec := range res.Decisions {
		if dec.Action != passthrough.Forwarded || (dec.Reason != passthrough.ReasonAllowlisted && dec.Reason != passthrough.ReasonOverwroteBase) {
			continue
		}
		if v, ok := res.Get(dec.Header); ok {
			hs = append(hs, assertion.Header{Name: dec.Header, Value: v})
		}
	}
	return hs
}

// namedBy is what msg names, as the upstream knows it: the tool or prompt
// name, or the resource URI (completion/complete: its reference's).
func namedBy(msg jsonrpc.Message) string {
	params := msg.Params
	switch msg.Method {
	case "tools/call", "prompts/get":
		name, _ := jsonrpc.StringMember(params, "name")
		return name
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		uri, _ := jsonrpc.StringMember(params, "uri")
		return uri
	case "completion/complete":
		ref, _ := jsonrpc.Member(params, "ref")
		if name, ok := jsonrpc.StringMember(ref, "name"); ok {
			return name
		}
		uri, _ := jsonrpc.StringMember(ref, "uri")
		return uri
	}
	return ""
}

// clientIdentity is the client a request is sent for: the identity of the
// request being handled, else that of the client whose request opened the
// upstream session (for the requests the session makes for itself later).
func (in Inbound) clientIdentity(ctx context.Context) auth.Identity {
	if id, ok := auth.IdentityOf(ctx); ok {
		return id
	}
	if in.client != nil {
		return *in.client
	}
	return auth.Identity{}
}

// withClient is in remembering the client of ctx, for the requests an
// upstream session opened now makes for itself later.
func (in Inbound) withClient(ctx context.Context) Inbound {
	if id, ok := auth.IdentityOf(ctx); ok {
		in.client = &id
	}
	return in
}
