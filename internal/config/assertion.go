package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/passthrough"
)

// IdentityAssertion holds the settings of the signed identity assertion
// mcpgate adds to the requests of upstreams registered with
// identity_assertion (docs/identity-assertion.md).
type IdentityAssertion struct {
	// Header (IDENTITY_ASSERTION_HEADER) carries it; always an X-Mcpgate-
	// name, which the passthrough engine never forwards from a client.
	Header string
	// TTL (IDENTITY_ASSERTION_TTL) is each assertion's lifetime.
	TTL time.Duration
	// Issuer (IDENTITY_ASSERTION_ISSUER) is its iss.
	Issuer string
	// KeyRotation (IDENTITY_ASSERTION_KEY_ROTATION) is how often a new
	// signing key is made; 0: only on POST /admin/identity-assertion/keys/rotate.
	KeyRotation time.Duration
	// KeyLead (IDENTITY_ASSERTION_KEY_LEAD) is how long a new key is
	// published in the JWKS before it signs.
	KeyLead time.Duration
}

// Identity assertion setting names.
const (
	EnvIdentityAssertionHeader      = "IDENTITY_ASSERTION_HEADER"
	EnvIdentityAssertionTTL         = "IDENTITY_ASSERTION_TTL"
	EnvIdentityAssertionIssuer      = "IDENTITY_ASSERTION_ISSUER"
	EnvIdentityAssertionKeyRotation = "IDENTITY_ASSERTION_KEY_ROTATION"
	EnvIdentityAssertionKeyLead     = "IDENTITY_ASSERTION_KEY_LEAD"
)

// DefaultIdentityAssertion are the settings' defaults.
var DefaultIdentityAssertion = IdentityAssertion{Header: "X-Mcpgate-Identity", TTL: 60 * time.Second, Issuer: "mcpgate",
	KeyRotation: 7 * 24 * time.Hour, KeyLead: 30 * time.Second}

func identityAssertionDocs() []passthrough.SettingDoc {
	return []passthrough.SettingDoc{
		{Name: EnvIdentityAssertionHeader, Default: "X-Mcpgate-Identity", Usage: "the header carrying mcpgate's signed identity assertion to upstreams registered with identity_assertion; must begin with X-Mcpgate- (never forwarded from a client)"},
		{Name: EnvIdentityAssertionTTL, Default: "60s", Usage: "lifetime of each identity assertion (seconds or a duration), 1s to 1h"},
		{Name: EnvIdentityAssertionIssuer, Default: "mcpgate", Usage: "the iss claim of identity assertions (for example mcpgate's public URL)"},
		{Name: EnvIdentityAssertionKeyRotation, Default: "168h", Usage: "how often a new assertion signing key is made (the old one stays published until its assertions expire); 0: only on POST /admin/identity-assertion/keys/rotate"},
		{Name: EnvIdentityAssertionKeyLead, Default: "30s", Usage: "how long a new signing key is published in /.well-known/jwks.json before it signs; longer than the bus takes to reach every instance"},
	}
}

// loadIdentityAssertion reads the identity assertion settings.
func loadIdentityAssertion(get func(string) (string, bool)) (IdentityAssertion, error) {
	a := DefaultIdentityAssertion
	if v, ok := get(EnvIdentityAssertionHeader); ok && v != "" {
		if !passthrough.ValidName(v) || !strings.HasPrefix(strings.ToLower(v), "x-mcpgate-") || len(v) == len("x-mcpgate-") {
			return a, &passthrough.SettingError{Name: EnvIdentityAssertionHeader, Value: v,
				Reason: "must be a header name of letters, digits and hyphens beginning with X-Mcpgate- (a name mcpgate never forwards from a client)"}
		}
		a.Header = v
	}
	if v, ok := get(EnvIdentityAssertionIssuer); ok && v != "" {
		a.Issuer = v
	}
	for _, d := range []struct {
		name     string
		dst      *time.Duration
		min, max time.Duration
	}{
		{EnvIdentityAssertionTTL, &a.TTL, time.Second, time.Hour},
		{EnvIdentityAssertionKeyRotation, &a.KeyRotation, 0, 0},
		{EnvIdentityAssertionKeyLead, &a.KeyLead, 0, 0},
	} {
		v, ok := get(d.name)
		if !ok || v == "" {
			continue
		}
		dur, err := parseDuration(v)
		if err != nil || dur < d.min || (d.max > 0 && dur > d.max) {
			reason := "must be a number of seconds or a duration like 90s, 0 or more"
			if d.max > 0 {
				reason = fmt.Sprintf("must be a number of seconds or a duration like 90s, from %s to %s", d.min, d.max)
			}
			return a, &passthrough.SettingError{Name: d.name, Value: v, Reason: reason}
		}
		*d.dst = dur
	}
	return a, nil
}

// OrDefaults is a with the defaults of its unset header, TTL and issuer (a
// Gateway built by hand rather than loaded).
func (a IdentityAssertion) OrDefaults() IdentityAssertion {
	if a.Header == "" {
		a.Header = DefaultIdentityAssertion.Header
	}
	if a.TTL <= 0 {
		a.TTL = DefaultIdentityAssertion.TTL
	}
	if a.Issuer == "" {
		a.Issuer = DefaultIdentityAssertion.Issuer
	}
	return a
}
