package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// scopedScheme starts a scoped URI: mcpgate://<slug>/<the upstream's URI>.
// A slug is lower-case letters, digits and dashes, a valid host; the
// upstream's URI, colons and slashes included, is a valid path after it
// (RFC 3986 §3.3), so the scoped URI is a URI too, and a scoped template is
// still an RFC 6570 template.
const scopedScheme = "mcpgate://"

// scopedURI is the URI under which the index lists, and routes to the
// upstream with slug, the resource (or template) that upstream knows as
// uri.
func scopedURI(slug, uri string) string { return scopedScheme + slug + "/" + uri }

// parseScopedURI splits a scopedURI into its slug and the upstream's URI.
func parseScopedURI(uri string) (slug, own string, ok bool) {
	rest, ok := strings.CutPrefix(uri, scopedScheme)
	if !ok {
		return "", "", false
	}
	slug, own, ok = strings.Cut(rest, "/")
	return slug, own, ok && slug != "" && own != ""
}

// listedAs is the URI (or URI template) under which upstream r's item uri
// is listed: uri itself when no upstream listed it before (owner says who
// did), else its scopedURI; ok is false when r listed the item already,
// which leaves the repetition out.
func listedAs(uri string, r *Route, owner func(string) (*Route, bool)) (string, bool) {
	first, taken := owner(uri)
	if !taken {
		return uri, true
	}
	if first == r {
		return "", false
	}
	scoped := scopedURI(r.Slug, uri)
	if _, taken := owner(scoped); taken {
		return "", false
	}
	return scoped, true
}

// forwardScoped sends msg, which names a resource by the URI listed, to r,
// naming it by own, the URI r knows it by; the contents of a
// resources/read answer that carry own carry listed again, so the client
// sees the URI it asked for.
func (d *Dispatcher) forwardScoped(ctx context.Context, r *Route, msg jsonrpc.Message, in Inbound, listed, own string) jsonrpc.Message {
	params, err := jsonrpc.WithStringMember(msg.Params, "uri", own)
	if err != nil {
		return failure(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%s: %v", msg.Method, err))
	}
	msg.Params = params
	resp := d.send(ctx, r, msg, in)
	if msg.Method != "resources/read" || resp.Result == nil {
		return resp
	}
	if renamed, ok := renameContents(resp.Result, own, listed); ok {
		resp.Result = renamed
	}
	return resp
}

// renameContents rewrites the uri of every item of result's contents that
// is from to to, keeping every other byte; ok is false when result has no
// contents array or nothing to rewrite.
func renameContents(result json.RawMessage, from, to string) (json.RawMessage, bool) {
	raw, ok := jsonrpc.Member(result, "contents")
	if !ok {
		return nil, false
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, false
	}
	changed := false
	for i, item := range items {
		if uri, ok := jsonrpc.StringMember(item, "uri"); ok && uri == from {
			if renamed, err := jsonrpc.WithStringMember(item, "uri", to); err == nil {
				items[i], changed = renamed, true
			}
		}
	}
	if !changed {
		return nil, false
	}
	// Joined by hand: json.Marshal would re-escape the items' strings.
	var contents bytes.Buffer
	contents.WriteByte('[')
	for i, item := range items {
		if i > 0 {
			contents.WriteByte(',')
		}
		contents.Write(item)
	}
	contents.WriteByte(']')
	out, err := jsonrpc.WithMember(result, "contents", contents.Bytes())
	return out, err == nil
}

// clientURI is the URI under which a client knows upstream r's resource
// uri: uri itself, unless the index gives uri to another upstream, in which
// case r's is listed (and was subscribed to) as its scopedURI. A URI the
// index does not know at all (a resource a tool linked to) stays as it is.
func (ix *Index) clientURI(r *Route, uri string) string {
	owner, own, ok := ix.resourceRoute(uri)
	if !ok || owner == nil || (owner.ID == r.ID && own == uri) {
		return uri
	}
	return scopedURI(r.Slug, uri)
}
