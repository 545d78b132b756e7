package passthrough

import "net/http"

// SessionHeaders is what a session keeps of the headers of its opening
// request: the SSE GET, the WebSocket upgrade or the initialize POST (spec §4).
//
// The invariant it serves: a call made in the session forwards exactly what a
// single /rpc request carrying the opening headers would forward under the
// configuration in force at the time of the call. ContextForge instead keeps
// only the headers allowlisted when the session opens, freezing the allowlist
// (deviation D12). So SessionHeaders keeps every opening header that some
// allowlist could ever forward, and drops only what can never reach an
// upstream: names that fail the name rule and the never-forwarded set.
//
// Values are kept sanitised, never raw. Sanitising is idempotent, so computing
// from the kept value gives the same result as computing from the raw one; a
// raw value that sanitises to nothing is kept as a single space, which
// sanitises to nothing too, so the header still counts as present (which
// matters for X-Upstream-Authorization, spec §2.2).
//
// The header mcpgate authenticates the client with is never-forwarded, so it
// is not kept; a kept header whose value is that credential (deviation D4) is
// kept as a single space too: present, never forwarded, as Compute would
// treat it with the opening request.
type SessionHeaders struct {
	h http.Header
}

// CaptureSession returns what a session keeps of its opening headers. The
// keys of opening must be canonical, as net/http delivers them; of several
// values the last is kept.
func (p *Policy) CaptureSession(opening http.Header) SessionHeaders {
	kept := make(http.Header)
	cred := p.clientCredential(opening)
	for name, vals := range opening {
		if len(vals) == 0 || !ValidName(name) || p.NeverForwarded(name) != 0 {
			continue
		}
		raw := vals[len(vals)-1]
		v := SanitizeValue(raw)
		if v == "" && raw != "" || carriesCredential(v, cred) {
			v = " "
		}
		kept[http.CanonicalHeaderKey(name)] = []string{v}
	}
	return SessionHeaders{h: kept}
}

// Header returns the kept headers, to be used as Call.Request for calls made
// in the session. The caller must not modify it.
func (s SessionHeaders) Header() http.Header {
	return s.h
}
