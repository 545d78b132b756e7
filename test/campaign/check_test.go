package campaign

import (
	"fmt"
	"regexp"
	"strings"
)

// ownHeaders are the headers mcpgate's upstream client sets for its own
// use on a Streamable HTTP request, which the spec does not give values
// for: they are checked only for a single value per name (spec §2.4), for
// bytes (no control byte) and for carrying no client value (spec §2.3:
// the protocol denylist, the MCP per-hop headers and "every header mcpgate
// sets for its own use" are never forwarded). User-Agent is here for the
// case where the allowlist does not forward the client's; when it does,
// the model expects the client's value and the check holds it to that.
var ownHeaders = map[string]bool{
	"host": true, "content-length": true, "content-type": true, "accept": true, "accept-encoding": true,
	"user-agent": true, "mcp-session-id": true, "mcp-protocol-version": true, "mcp-method": true, "mcp-name": true,
}

// markerRE finds the generator's markers in a value.
var markerRE = regexp.MustCompile(`zz[0-9]+zz`)

// violation is one broken expectation in what the upstream received.
type violation struct {
	Kind   string // e.g. duplicate-name, token-leak, missing-header
	Header string // the header's lower-case name, "" when none applies
	Detail string
}

func (v violation) key() string {
	if v.Header == "" {
		return v.Kind
	}
	return v.Kind + ":" + v.Header
}

// checkForwarded compares the header lines an upstream received for one
// tools/call with the model's expectation.
func checkForwarded(expected headerSet, got []rawLine, token string) []violation {
	var out []violation
	add := func(kind, name, format string, args ...any) {
		out = append(out, violation{kind, strings.ToLower(name), fmt.Sprintf(format, args...)})
	}
	count := map[string]int{}
	for _, l := range got {
		if l.Name == "" {
			add("obs-fold", "", "a continuation line %q", l.Value)
			continue
		}
		name := strings.ToLower(l.Name)
		count[name]++
		if strings.ContainsFunc(l.Value, func(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }) {
			add("control-byte", name, "%s: %q", l.Name, l.Value)
		}
		if token != "" && (strings.Contains(l.Value, token) || strings.Contains(l.Name, token)) {
			add("token-leak", name, "the client's mcpgate token arrived as %s", l.Name)
		}
		want, expectedName := expected.get(name)
		switch {
		case expectedName && !hasLine(got, name, want):
			add("wrong-value", name, "%s: %q, the model expects %q", l.Name, l.Value, want)
		case expectedName: // a second line of the name is a duplicate-name
		case ownHeaders[name]:
			if markerRE.MatchString(l.Value) {
				add("client-value-in-own-header", name, "%s: %q", l.Name, l.Value)
			}
			// Without an allowlisted User-Agent, mcpgate names itself,
			// never Go's HTTP client.
			if name == "user-agent" && !strings.HasPrefix(l.Value, "mcpgate/") {
				add("foreign-user-agent", name, "%s: %q, want mcpgate/<version>", l.Name, l.Value)
			}
		default:
			add("unexpected-header", name, "%s: %q", l.Name, l.Value)
		}
	}
	for name, n := range count {
		if n > 1 {
			add("duplicate-name", name, "%d lines named %s (spec §2.4: one value per name)", n, name)
		}
	}
	for _, h := range expected {
		if count[strings.ToLower(h.Name)] == 0 {
			add("missing-header", h.Name, "the model expects %s: %q", h.Name, h.Value)
		}
	}
	return out
}

// hasLine reports whether a line named name (any case) has value.
func hasLine(got []rawLine, name, value string) bool {
	for _, l := range got {
		if strings.EqualFold(l.Name, name) && l.Value == value {
			return true
		}
	}
	return false
}
