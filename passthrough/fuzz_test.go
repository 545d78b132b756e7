package passthrough

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// validForNetHTTP reports whether net/http would send v as a header value:
// no control character but TAB (httpguts.ValidHeaderFieldValue).
func validForNetHTTP(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// FuzzSanitizeValue: sanitised values never carry CR, LF, NUL, DEL or any
// other byte net/http refuses, never exceed MaxValueLength code points, are
// trimmed, and sanitising again changes nothing.
func FuzzSanitizeValue(f *testing.F) {
	for _, s := range []string{"", "Bearer abc", " a\r\nb ", "\x00\x7f\t", strings.Repeat("é", 5000), "\u00a0x\u2003", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := SanitizeValue(v)
		if !validForNetHTTP(got) {
			t.Errorf("SanitizeValue(%q) = %q: net/http would refuse it", v, got)
		}
		if n := utf8.RuneCountInString(got); n > MaxValueLength {
			t.Errorf("SanitizeValue gave %d code points, more than %d", n, MaxValueLength)
		}
		if got != strings.TrimFunc(got, unicode.IsSpace) {
			t.Errorf("SanitizeValue(%q) = %q: not trimmed", v, got)
		}
		if again := SanitizeValue(got); again != got {
			t.Errorf("not idempotent: %q then %q", got, again)
		}
	})
}

// fuzzCase decodes fuzz bytes into a call. Each line is one item: "r" then
// Name:value for a request header, "b" for a base header, "a" then a name for
// an allowlist entry. flags picks the switches and the upstream's auth type.
func fuzzCase(data []byte, flags uint8) (Settings, Call) {
	s := DefaultSettings()
	s.EnableHeaderPassthrough = flags&1 != 0
	s.EnableOverwriteBaseHeaders = flags&2 != 0
	s.AuthenticatesClients = flags&4 != 0
	auth := []AuthType{AuthUnspecified, AuthNone, AuthBasic, AuthBearer, AuthHeaders, AuthOAuth, AuthNone, AuthBearer}
	c := Call{
		Request:  http.Header{},
		Upstream: Upstream{AuthType: auth[(flags>>3)&7], TokenExchange: flags&64 != 0},
	}
	var allow []string
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		kind, rest := line[0], string(line[1:])
		name, value, _ := strings.Cut(rest, ":")
		switch kind {
		case 'r':
			c.Request.Add(name, value)
		case 'b':
			c.Base = append(c.Base, Header{name, value})
		case 'a':
			allow = append(allow, rest)
		}
	}
	p := NewPolicy(s)
	c.Allowlist = p.Compile(allow)
	return s, c
}

// FuzzCompute checks the properties every result must have (spec §2):
// no two names differing only in case; no never-forwarded header unless it is
// a base header (or the Authorization that X-Upstream-Authorization or the
// none rule legitimately sets); every forwarded value sanitised; a base
// header changed only by the overwrite switch or X-Upstream-Authorization;
// and a session forwarding exactly what its opening request would (spec §4).
func FuzzCompute(f *testing.F) {
	f.Add([]byte("rX-Tenant-Id:acme\nrAuthorization:Bearer jwt\naX-Tenant-Id\naAuthorization\nbAuthorization:Basic up"), uint8(1|2|4|3<<3))
	f.Add([]byte("rX-Upstream-Authorization:Bearer up\r\n\nbauthorization:Basic x\naAUTHORIZATION"), uint8(1|2|2<<3))
	f.Add([]byte("rHost:evil\nrMcp-Session-Id:s\naHost\naMcp-Session-Id\naX-Authenticated-User\nrX-Authenticated-User:root"), uint8(1|2))
	f.Add([]byte("rX-A:1\nrx-a:2\naX-A\nax-a\nbX-a:base"), uint8(1|2))
	f.Add([]byte("rAuthorization:Bearer client\nrX-Upstream-Authorization:\x01"), uint8(1<<3))
	f.Fuzz(func(t *testing.T, data []byte, flags uint8) {
		s, c := fuzzCase(data, flags)
		p := NewPolicy(s)
		res := p.Compute(c)

		base := []Header{} // the base as Compute reads it: later case variants replace earlier
		for _, h := range c.Base {
			base = set(base, h.Name, h.Value)
		}
		seen := map[string]bool{}
		for _, h := range res.Headers {
			k := lowerASCII(h.Name) // header names fold in ASCII only (RFC 9110 §5.1)
			if seen[k] {
				t.Fatalf("two headers named %q: %v", k, res.Headers)
			}
			seen[k] = true
			if indexFold(base, h.Name) >= 0 && h.Value == base[indexFold(base, h.Name)].Value {
				continue // a base header, as given
			}
			if SanitizeValue(h.Value) != h.Value || !validForNetHTTP(h.Value) {
				t.Fatalf("forwarded %s: %q is not sanitised", h.Name, h.Value)
			}
			if p.NeverForwarded(h.Name) != 0 && !legitimateAuthorization(p, c, h) && indexFold(base, h.Name) < 0 {
				t.Fatalf("forwarded never-forwarded %s: %q", h.Name, h.Value)
			}
		}
		xua := SanitizeValue(last(c.Request, xUpstreamAuthorization))
		for _, b := range base {
			got, ok := res.Get(b.Name)
			if !ok {
				t.Fatalf("base header %s lost: %v", b.Name, res.Headers)
			}
			if got == b.Value {
				continue
			}
			upstreamAuth := sameName(b.Name, authorization) && !c.Upstream.TokenExchange && got == xua
			if !s.EnableOverwriteBaseHeaders && !upstreamAuth {
				t.Fatalf("base %s changed from %q to %q without the overwrite switch", b.Name, b.Value, got)
			}
		}

		session := p.CaptureSession(c.Request)
		c2 := c
		c2.Request = session.Header()
		if in := p.Compute(c2); !mapsEqual(headerMap(in.Headers), headerMap(res.Headers)) {
			t.Fatalf("session forwards %v, the opening request %v", in.Headers, res.Headers)
		}
	})
}

// legitimateAuthorization reports whether h is the Authorization that spec
// §2.2 sets: from X-Upstream-Authorization, or the client's own under the
// none rule when mcpgate does not consume it.
func legitimateAuthorization(p *Policy, c Call, h Header) bool {
	if !sameName(h.Name, authorization) || c.Upstream.TokenExchange {
		return false
	}
	if xua := last(c.Request, xUpstreamAuthorization); xua != "" {
		return h.Value == SanitizeValue(xua)
	}
	return c.Upstream.AuthType == AuthNone && !p.consumesAuthorization() &&
		h.Value == SanitizeValue(last(c.Request, authorization))
}
