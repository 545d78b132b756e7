// Package access decides which upstreams a client may use: the per-client
// access rules an administrator sets (PUT /admin/access), matched against
// the client's identity (issuer, subject, groups, scopes).
//
// A rule names one subject, one group or one scope (optionally of one
// issuer) and the upstreams, by id or name, it grants; "*" grants every
// upstream. A client may use the union of what the rules matching it
// grant. A client no rule matches gets the default: ACCESS_DEFAULT,
// "allow" unless set to "deny" (docs/security.md, "Per-client access").
package access

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mcpgate/mcpgate/internal/auth"
)

// AllUpstreams in a rule's Upstreams grants every upstream.
const AllUpstreams = "*"

// Rule grants the clients it matches the use of some upstreams. Exactly one
// of Subject, Group and Scope is set.
type Rule struct {
	Subject string `json:"subject,omitempty"`
	Group   string `json:"group,omitempty"`
	Scope   string `json:"scope,omitempty"`
	// Issuer, when set, limits the rule to identities of that issuer
	// ("mcpgate" for mcpgate's own tokens, "proxy" for a trusted proxy's
	// users).
	Issuer string `json:"issuer,omitempty"`
	// Upstreams are upstream ids or names (names compared without regard
	// to case), or AllUpstreams.
	Upstreams []string `json:"upstreams"`
}

// FieldError is a rule that cannot be used; Field names it as the admin
// API's body does (rules[1].upstreams[0]).
type FieldError struct {
	Field, Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// maxRules and maxUpstreams bound a policy, so that deciding stays cheap.
const (
	maxRules     = 1000
	maxUpstreams = 1000
)

// Validate checks rules; known reports whether an upstream id or name
// exists. The error is a *FieldError.
func Validate(rules []Rule, known func(string) bool) error {
	if len(rules) > maxRules {
		return &FieldError{"rules", fmt.Sprintf("at most %d rules", maxRules)}
	}
	for i, r := range rules {
		at := fmt.Sprintf("rules[%d]", i)
		set := 0
		for _, v := range []string{r.Subject, r.Group, r.Scope} {
			if v != "" {
				set++
			}
		}
		if set != 1 {
			return &FieldError{at, `must name exactly one of "subject", "group" and "scope"`}
		}
		if len(r.Upstreams) == 0 {
			return &FieldError{at + ".upstreams", `field required: the upstream ids or names the rule grants ("*" for all)`}
		}
		if len(r.Upstreams) > maxUpstreams {
			return &FieldError{at + ".upstreams", fmt.Sprintf("at most %d upstreams", maxUpstreams)}
		}
		for j, u := range r.Upstreams {
			if u == AllUpstreams {
				continue
			}
			if strings.TrimSpace(u) == "" || !known(u) {
				return &FieldError{fmt.Sprintf("%s.upstreams[%d]", at, j), fmt.Sprintf("no upstream has the id or name %q", u)}
			}
		}
	}
	return nil
}

// Policy is a set of rules and the default for clients none matches. It
// is immutable once built; the zero Policy allows everything.
type Policy struct {
	rules []Rule
	deny  bool // the default for a client no rule matches
	// The rules' indexes by what they name, so that deciding for a client
	// reads only the rules that can match it (every client message asks).
	bySubject, byGroup, byScope map[string][]int
}

// NewPolicy returns the policy of rules; denyByDefault is ACCESS_DEFAULT=deny.
func NewPolicy(rules []Rule, denyByDefault bool) *Policy {
	p := &Policy{rules: slices.Clone(rules), deny: denyByDefault,
		bySubject: map[string][]int{}, byGroup: map[string][]int{}, byScope: map[string][]int{}}
	for i, r := range p.rules {
		switch {
		case r.Subject != "":
			p.bySubject[r.Subject] = append(p.bySubject[r.Subject], i)
		case r.Group != "":
			p.byGroup[r.Group] = append(p.byGroup[r.Group], i)
		case r.Scope != "":
			p.byScope[r.Scope] = append(p.byScope[r.Scope], i)
		}
	}
	return p
}

// Rules returns the policy's rules.
func (p *Policy) Rules() []Rule { return slices.Clone(p.rules) }

// DenyByDefault reports whether a client no rule matches may use nothing.
func (p *Policy) DenyByDefault() bool { return p.deny }

// Grant is what one client may use: every upstream (All), or those whose
// id or name (lower case) is in the set.
type Grant struct {
	All bool
	set map[string]bool
}

// Allows reports whether the grant covers the upstream with id and name.
func (g Grant) Allows(id, name string) bool {
	return g.All || g.set[id] || g.set[strings.ToLower(name)]
}

// Key names the grant: equal grants have equal keys.
func (g Grant) Key() string {
	if g.All {
		return AllUpstreams
	}
	keys := make([]string, 0, len(g.set))
	for k := range g.set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, "\x00")
}

// For returns what id may use. An anonymous request (AUTH_REQUIRED=false:
// ok false) may use everything: there is nobody to tell apart.
func (p *Policy) For(id auth.Identity, ok bool) Grant {
	if !ok || p == nil {
		return Grant{All: true}
	}
	var g Grant
	matched := false
	all := false
	grant := func(indexes []int) {
		for _, i := range indexes {
			r := p.rules[i]
			if r.Issuer != "" && r.Issuer != issuerOf(id) {
				continue
			}
			matched = true
			for _, u := range r.Upstreams {
				if u == AllUpstreams {
					all = true
					continue
				}
				if g.set == nil {
					g.set = map[string]bool{}
				}
				g.set[u] = true
				g.set[strings.ToLower(u)] = true
			}
		}
	}
	grant(p.bySubject[id.Subject])
	for _, group := range id.Groups {
		grant(p.byGroup[group])
	}
	for _, scope := range id.Scopes {
		grant(p.byScope[scope])
	}
	switch {
	case all:
		return Grant{All: true}
	case !matched:
		return Grant{All: !p.deny}
	}
	return g
}

// issuerOf is the identity's issuer, mcpgate's own when it names none.
func issuerOf(id auth.Identity) string {
	if id.Issuer == "" {
		return auth.Issuer
	}
	return id.Issuer
}
