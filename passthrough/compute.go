package passthrough

import "net/http"

// AuthType is how mcpgate authenticates to an upstream.
type AuthType string

// Upstream auth types. The zero value means "no upstream known" (ContextForge
// called the function without a gateway): neither the none rule nor the
// basic/bearer conflict applies. Other values behave like authheaders.
const (
	AuthUnspecified AuthType = ""
	AuthNone        AuthType = "none"
	AuthBasic       AuthType = "basic"
	AuthBearer      AuthType = "bearer"
	AuthHeaders     AuthType = "authheaders"
	AuthOAuth       AuthType = "oauth"
)

// AuthTypes lists the auth types an upstream can be registered with.
func AuthTypes() []AuthType {
	return []AuthType{AuthNone, AuthBasic, AuthBearer, AuthHeaders, AuthOAuth}
}

// Upstream is what the engine needs to know of the upstream a call goes to.
type Upstream struct {
	Name     string // for messages only
	AuthType AuthType
	// TokenExchange is set when the upstream's credential comes from an OAuth
	// token exchange: the client cannot supply or replace it (spec §2.2).
	TokenExchange bool
}

// Header is one header name and value, the name spelled as it goes upstream.
type Header struct {
	Name, Value string
}

// Call is the input of one computation (spec §2).
type Call struct {
	// Request is the client's request headers with canonical keys, as net/http
	// delivers them (build one by hand with http.Header.Add or
	// http.CanonicalHeaderKey). When a name has several values the last wins.
	Request http.Header
	// Base is mcpgate's own headers for the upstream, in order.
	Base []Header
	// Allowlist is the effective allowlist (spec §3); nil forwards nothing.
	Allowlist *Allowlist
	Upstream  Upstream
}

// Result is the headers for the upstream request and the decisions behind them.
type Result struct {
	// Headers are the base headers, in order, followed by the forwarded ones.
	// No two names differ only in case.
	Headers []Header
	// Decisions has one entry per allowlist entry, in allowlist order, after
	// the special headers (X-Upstream-Authorization, or Authorization under the
	// auth_type none rule) when the request carries them.
	Decisions []Decision
	// Upstream is the upstream the headers are for, as given in the Call.
	Upstream Upstream
}

// Message returns the sentence for one of the result's decisions.
func (r Result) Message(d Decision) string { return d.Message(r.Upstream) }

// Get returns the value of the named header, whatever the case of name.
func (r Result) Get(name string) (string, bool) {
	if i := indexFold(r.Headers, name); i >= 0 {
		return r.Headers[i].Value, true
	}
	return "", false
}

// HTTPHeader returns the headers as an http.Header, each name spelled as
// decided (not canonicalised). Canonicalise the keys before sending it with
// net/http yourself: Go's client looks up only the canonical keys of the
// headers it writes itself, so a "user-agent" key would go out beside its
// own User-Agent (mcpgate's upstream client does this, spec §2.4).
func (r Result) HTTPHeader() http.Header {
	h := make(http.Header, len(r.Headers))
	for _, e := range r.Headers {
		h[e.Name] = []string{e.Value}
	}
	return h
}

const (
	xUpstreamAuthorization = "X-Upstream-Authorization"
	authorization          = "Authorization"
)

// Compute returns the headers for one upstream request and why (spec §2).
// It never modifies its inputs. It allocates the header and decision slices
// and, on the common path, nothing else (a value that needs sanitising
// allocates its cleaned copy). ComputeInto does the same into reused slices.
func (p *Policy) Compute(c Call) Result {
	var res Result
	p.ComputeInto(&res, c)
	return res
}

// ComputeInto is Compute writing into res, reusing the capacity of its
// slices; a hot path can keep Results in a sync.Pool and allocate nothing.
func (p *Policy) ComputeInto(res *Result, c Call) {
	entries, forwardable := c.Allowlist.entryList()
	if n := len(c.Base) + forwardable + 1; cap(res.Headers) < n {
		res.Headers = make([]Header, 0, n)
	}
	if n := len(entries) + 1; cap(res.Decisions) < n {
		res.Decisions = make([]Decision, 0, n)
	}
	res.Headers, res.Decisions, res.Upstream = res.Headers[:0], res.Decisions[:0], c.Upstream

	// spec §2.1: start from a copy of the base headers; §2.4 keeps names
	// unique even if the base repeats one in another case.
	for _, h := range c.Base {
		res.Headers = set(res.Headers, h.Name, h.Value)
	}

	// D4: the value mcpgate authenticated the client with is its own
	// credential; no header carrying it is forwarded, whatever its name.
	cred := p.clientCredential(c.Request)

	// spec §2.2: upstream authorization, whatever the switch says.
	up := c.Upstream
	if v := last(c.Request, xUpstreamAuthorization); v != "" {
		switch sv := SanitizeValue(v); {
		case up.TokenExchange:
			res.decide(xUpstreamAuthorization, Skipped, ReasonTokenExchange)
		case sv == "":
			res.decide(xUpstreamAuthorization, Skipped, ReasonEmptyAfterSanitising)
		case carriesCredential(sv, cred):
			res.decide(xUpstreamAuthorization, Skipped, ReasonClientCredentialValue)
		default:
			res.Headers = set(res.Headers, authorization, sv)
			res.decide(xUpstreamAuthorization, Forwarded, ReasonUpstreamAuthorization)
		}
	} else if up.AuthType == AuthNone && !up.TokenExchange {
		if v := last(c.Request, authorization); v != "" {
			switch sv := SanitizeValue(v); {
			case p.consumesAuthorization():
				res.decide(authorization, Skipped, ReasonOwnAuthorization) // D4
			case indexFold(c.Base, authorization) >= 0:
				res.decide(authorization, Skipped, ReasonBaseAuthorizationIsSet)
			case sv == "":
				res.decide(authorization, Skipped, ReasonEmptyAfterSanitising)
			case carriesCredential(sv, cred):
				res.decide(authorization, Skipped, ReasonClientCredentialValue)
			default:
				res.Headers = append(res.Headers, Header{authorization, sv})
				res.decide(authorization, Forwarded, ReasonClientAuthorization)
			}
		}
	}
	baseEnd := len(res.Headers) // spec §2.3: the base set is taken after step 2

	// spec §2.3: the allowlist, in order.
	for i := range entries {
		e := &entries[i]
		if !p.settings.EnableHeaderPassthrough {
			res.decide(e.name, Skipped, ReasonPassthroughDisabled)
			continue
		}
		if e.skip != 0 {
			res.decide(e.name, Skipped, e.skip)
			continue
		}
		vals := c.Request[e.canonical]
		if len(vals) == 0 {
			res.decide(e.name, Skipped, ReasonNotInRequest)
			continue
		}
		v := vals[len(vals)-1]
		if v == "" {
			res.decide(e.name, Skipped, ReasonEmptyValue)
			continue
		}
		sv := SanitizeValue(v)
		if sv == "" {
			res.decide(e.name, Skipped, ReasonEmptyAfterSanitising)
			continue
		}
		if carriesCredential(sv, cred) {
			res.decide(e.name, Skipped, ReasonClientCredentialValue)
			continue
		}
		base := indexFold(res.Headers[:baseEnd], e.name)
		if base >= 0 && !p.settings.EnableOverwriteBaseHeaders {
			res.decide(e.name, Skipped, ReasonBaseConflict)
			continue
		}
		if e.authorization && (up.AuthType == AuthBasic || up.AuthType == AuthBearer) {
			res.decide(e.name, Skipped, ReasonUpstreamAuthConflict)
			continue
		}
		if e.authorization && up.TokenExchange {
			res.decide(e.name, Skipped, ReasonTokenExchange)
			continue
		}
		switch {
		case base >= 0:
			if e.caseVariant {
				supersede(res.Decisions, e.name)
			}
			res.Headers[base] = Header{e.name, sv}
			res.decide(e.name, Forwarded, ReasonOverwroteBase)
		case e.caseVariant:
			// spec §2.4: an earlier entry differing only in case may have
			// been written; this one replaces it, and its decision says so.
			supersede(res.Decisions, e.name)
			if j := indexFold(res.Headers[baseEnd:], e.name); j >= 0 {
				res.Headers[baseEnd+j] = Header{e.name, sv}
			} else {
				res.Headers = append(res.Headers, Header{e.name, sv})
			}
			res.decide(e.name, Forwarded, ReasonAllowlisted)
		default:
			// Unique by construction: not a base name, and no earlier entry
			// has this name in any case.
			res.Headers = append(res.Headers, Header{e.name, sv})
			res.decide(e.name, Forwarded, ReasonAllowlisted)
		}
	}
}

func (r *Result) decide(header string, a Action, reason Reason) {
	r.Decisions = append(r.Decisions, Decision{Header: header, Action: a, Reason: reason})
}

func (a *Allowlist) entryList() ([]entry, int) {
	if a == nil {
		return nil, 0
	}
	return a.entries, a.forwardable
}

// last returns the last value of a canonical header key, or "".
func last(h http.Header, key string) string {
	if vals := h[key]; len(vals) > 0 {
		return vals[len(vals)-1]
	}
	return ""
}

// set writes name: value, replacing a header whose name differs only in case
// (spec §2.4, deviation D3).
func set(hs []Header, name, value string) []Header {
	if i := indexFold(hs, name); i >= 0 {
		hs[i] = Header{name, value}
		return hs
	}
	return append(hs, Header{name, value})
}

func indexFold(hs []Header, name string) int {
	for i := range hs {
		if sameName(hs[i].Name, name) {
			return i
		}
	}
	return -1
}

// sameName reports whether two header names differ at most in case. Header
// names are case-insensitive in ASCII only (RFC 9110 §5.1), so this folds
// ASCII letters and compares every other byte as it is: unlike
// strings.EqualFold, it never equates the Kelvin sign with "K" or two
// different invalid UTF-8 bytes with each other.
func sameName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// lowerASCII is s with its ASCII letters in lower case: the fold of
// sameName. It allocates only when s has an upper-case letter.
func lowerASCII(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			if b == nil {
				b = []byte(s)
			}
			b[i] = c + 'a' - 'A'
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}

// supersede marks the forwarded decision for a case variant of name as
// replaced.
func supersede(ds []Decision, name string) {
	for i := range ds {
		d := &ds[i]
		if d.Action == Forwarded && sameName(d.Header, name) &&
			(d.Reason == ReasonAllowlisted || d.Reason == ReasonOverwroteBase) {
			d.Action, d.Reason = Skipped, ReasonReplacedByLaterEntry
		}
	}
}
