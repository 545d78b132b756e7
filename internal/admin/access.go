package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/mcpgate/mcpgate/internal/access"
)

// AccessRules is what /admin/access manages: the per-client access rules,
// stored and shared with every instance.
type AccessRules interface {
	Policy() *access.Policy
	SetRules(ctx context.Context, rules []access.Rule) error
}

// accessBody is /admin/access as the API shows and takes it.
type accessBody struct {
	// Default is what a client no rule matches may use: "allow" (every
	// upstream) or "deny" (none); ACCESS_DEFAULT sets it, the API shows it.
	Default string        `json:"default,omitempty"`
	Rules   []access.Rule `json:"rules"`
}

func (a *API) accessRoutes() []Route {
	return []Route{
		{"GET /admin/access", http.HandlerFunc(a.getAccess)},
		{"PUT /admin/access", http.HandlerFunc(a.putAccess)},
	}
}

func (a *API) getAccess(w http.ResponseWriter, r *http.Request) {
	p := a.Access.Policy()
	body := accessBody{Default: "allow", Rules: p.Rules()}
	if p.DenyByDefault() {
		body.Default = "deny"
	}
	if body.Rules == nil {
		body.Rules = []access.Rule{}
	}
	writeJSON(w, http.StatusOK, body)
}

// putAccess replaces the rules; the default is a setting
// (ACCESS_DEFAULT), not something the API changes.
func (a *API) putAccess(w http.ResponseWriter, r *http.Request) {
	raw, ok := readOnlyField(w, r, "rules")
	if !ok {
		return
	}
	var rules []access.Rule
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rules); err != nil || rules == nil {
		unprocessable(w, "rules", `must be a list of {"subject"|"group"|"scope": ..., "issuer"?: ..., "upstreams": [...]}`, "type_error")
		return
	}
	views, err := a.Registry.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	known := func(u string) bool {
		for _, v := range views {
			if v.ID == u || strings.EqualFold(v.Name, u) {
				return true
			}
		}
		return false
	}
	var fe *access.FieldError
	if err := access.Validate(rules, known); errors.As(err, &fe) {
		unprocessable(w, fe.Field, fe.Message, "value_error")
		return
	}
	if err := a.Access.SetRules(r.Context(), rules); err != nil {
		a.fail(w, r, err)
		return
	}
	a.getAccess(w, r)
}
