// Package admin is mcpgate's REST admin API, on ContextForge's paths so its
// users feel at home: upstreams under /gateways, the global passthrough list
// under /admin/config/passthrough-headers (also /v1/admin/...), and
// mcpgate's own per-client access rules under /admin/access.
//
// Errors follow ContextForge (FastAPI): 422 with {"detail": [{"loc": ["body",
// field], "msg": ..., "type": ...}]} for a bad field, {"detail": "..."} for
// 404 and 409.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strings"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/mcpgate/mcpgate/internal/registry"
	"github.com/mcpgate/mcpgate/passthrough"
)

// Registry is what the admin API manages; *registry.Registry is one.
type Registry interface {
	Create(ctx context.Context, s registry.Spec) (registry.View, error)
	Update(ctx context.Context, id string, p registry.Patch) (registry.View, error)
	Delete(ctx context.Context, id string) error
	Refresh(ctx context.Context, id string) (registry.View, error)
	Get(ctx context.Context, id string) (registry.View, error)
	List(ctx context.Context) ([]registry.View, error)
	GlobalList(ctx context.Context) (passthrough.StoredList, error)
	SetGlobalList(ctx context.Context, names *[]string) error
}

// API serves the admin routes.
type API struct {
	Registry Registry
	Resolver *passthrough.AllowlistResolver
	// Access holds the per-client access rules (/admin/access).
	Access AccessRules
	Logger *slog.Logger
}

// Route is one admin route: a ServeMux pattern and what serves it. Every
// one needs the admin role; the gateway's route table decides that, in one
// place, for these and every other route.
type Route struct {
	Pattern string
	Handler http.Handler
}

// Routes returns every admin route. The gateway registers each behind its
// role check; nothing else adds admin routes.
func (a *API) Routes() []Route {
	routes := []Route{
		{"POST /gateways", http.HandlerFunc(a.createGateway)},
		{"GET /gateways", http.HandlerFunc(a.listGateways)},
		{"GET /gateways/{id}", http.HandlerFunc(a.getGateway)},
		{"PUT /gateways/{id}", http.HandlerFunc(a.updateGateway)},
		{"DELETE /gateways/{id}", http.HandlerFunc(a.deleteGateway)},
		{"POST /gateways/{id}/tools/refresh", http.HandlerFunc(a.refreshGateway)},
	}
	for _, prefix := range []string{"", "/v1"} {
		base := prefix + "/admin/config/passthrough-headers"
		routes = append(routes,
			Route{"GET " + base, http.HandlerFunc(a.getGlobal)},
			Route{"PUT " + base, http.HandlerFunc(a.putGlobal)},
			Route{"POST " + base + "/invalidate-cache", http.HandlerFunc(a.invalidate)},
			Route{"GET " + base + "/cache-stats", http.HandlerFunc(a.cacheStats)},
		)
	}
	return append(routes, a.accessRoutes()...)
}

// gatewayField reports whether a gateway request may carry the field:
// ContextForge's names. description and tags are accepted and not used.
func gatewayField(name string) bool {
	switch name {
	case "name", "url", "transport", "auth_type", "passthrough_headers", "enabled",
		"auth_username", "auth_password", "auth_token", "auth_header_key", "auth_header_value",
		"auth_headers", "oauth_config", "description", "tags",
		"identity_assertion":
		return true
	}
	return false
}

func (a *API) createGateway(w http.ResponseWriter, r *http.Request) {
	fields, ok := readObject(w, r, gatewayField)
	if !ok {
		return
	}
	spec := registry.Spec{Transport: upstream.StreamableHTTP, AuthType: passthrough.AuthNone, Enabled: true}
	for _, req := range []string{"name", "url"} {
		if _, ok := fields[req]; !ok {
			unprocessable(w, req, "field required", "missing")
			return
		}
	}
	if !decodeField(w, fields, "name", &spec.Name) || !decodeField(w, fields, "url", &spec.URL) ||
		!decodeField(w, fields, "transport", (*string)(&spec.Transport)) || !decodeField(w, fields, "auth_type", (*string)(&spec.AuthType)) ||
		!decodeField(w, fields, "enabled", &spec.Enabled) || !decodeField(w, fields, "identity_assertion", &spec.IdentityAssertion) {
		return
	}
	spec.Transport = upstream.Transport(strings.ToUpper(string(spec.Transport)))
	if raw, ok := fields["passthrough_headers"]; ok {
		list, err := passthrough.DecodeList(raw)
		if err != nil {
			unprocessable(w, "passthrough_headers", err.Error(), "value_error")
			return
		}
		spec.PassthroughHeaders = list
	}
	creds, given, ok := credentials(w, fields)
	if !ok {
		return
	}
	if given {
		spec.Credentials = creds
	}
	view, err := a.Registry.Create(r.Context(), spec)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, view)
}

func (a *API) updateGateway(w http.ResponseWriter, r *http.Request) {
	fields, ok := readObject(w, r, gatewayField)
	if !ok {
		return
	}
	var p registry.Patch
	for name, dst := range map[string]any{"name": &p.Name, "url": &p.URL, "enabled": &p.Enabled,
		"identity_assertion": &p.IdentityAssertion} {
		if _, ok := fields[name]; ok && !decodeField(w, fields, name, dst) {
			return
		}
	}
	if _, ok := fields["transport"]; ok {
		var t string
		if !decodeField(w, fields, "transport", &t) {
			return
		}
		tr := upstream.Transport(strings.ToUpper(t))
		p.Transport = &tr
	}
	if _, ok := fields["auth_type"]; ok {
		var t string
		if !decodeField(w, fields, "auth_type", &t) {
			return
		}
		at := passthrough.AuthType(t)
		p.AuthType = &at
	}
	if raw, ok := fields["passthrough_headers"]; ok {
		list, err := passthrough.DecodeList(raw)
		if err != nil {
			unprocessable(w, "passthrough_headers", err.Error(), "value_error")
			return
		}
		p.PassthroughHeaders = registry.OptionalList{Set: true, List: list}
	}
	creds, given, ok := credentials(w, fields)
	if !ok {
		return
	}
	if given {
		p.Credentials = &creds
	}
	view, err := a.Registry.Update(r.Context(), r.PathValue("id"), p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}

// credentials reads ContextForge's credential fields; given reports whether
// the request carries any.
func credentials(w http.ResponseWriter, fields map[string]json.RawMessage) (c auth.Credentials, given, ok bool) {
	str := func(name string, dst *string) bool {
		if _, present := fields[name]; present {
			given = true
			return decodeField(w, fields, name, dst)
		}
		return true
	}
	var key, value string
	if !str("auth_username", &c.Username) || !str("auth_password", &c.Password) || !str("auth_token", &c.Token) ||
		!str("auth_header_key", &key) || !str("auth_header_value", &value) {
		return c, given, false
	}
	if key != "" || value != "" {
		c.Headers = append(c.Headers, auth.Header{Name: key, Value: value})
	}
	if raw, present := fields["auth_headers"]; present && string(raw) != "null" {
		given = true
		var hs []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		}
		if err := json.Unmarshal(raw, &hs); err != nil {
			unprocessable(w, "auth_headers", `must be a list of {"key": ..., "value": ...}`, "type_error")
			return c, given, false
		}
		for _, h := range hs {
			c.Headers = append(c.Headers, auth.Header{Name: h.Key, Value: h.Value})
		}
	}
	if raw, present := fields["oauth_config"]; present && string(raw) != "null" {
		given = true
		var o struct {
			GrantType    string   `json:"grant_type"`
			TokenURL     string   `json:"token_url"`
			ClientID     string   `json:"client_id"`
			ClientSecret string   `json:"client_secret"`
			Scopes       []string `json:"scopes"`
			Audience     string   `json:"audience"`
		}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			unprocessable(w, "oauth_config", fmt.Sprintf("must be an object with grant_type, token_url, client_id, client_secret, scopes, audience: %v", err), "type_error")
			return c, given, false
		}
		if o.GrantType == "" {
			o.GrantType = "client_credentials"
		}
		c.OAuth = &auth.OAuth{GrantType: o.GrantType, TokenURL: o.TokenURL, ClientID: o.ClientID,
			ClientSecret: o.ClientSecret, Scopes: o.Scopes, Audience: o.Audience}
	}
	return c, given, true
}

func (a *API) listGateways(w http.ResponseWriter, r *http.Request) {
	views, err := a.Registry.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if views == nil {
		views = []registry.View{}
	}
	writeJSON(w, http.StatusOK, views)
}

func (a *API) getGateway(w http.ResponseWriter, r *http.Request) {
	view, err := a.Registry.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}

func (a *API) deleteGateway(w http.ResponseWriter, r *http.Request) {
	if err := a.Registry.Delete(r.Context(), r.PathValue("id")); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "deleted", "id": r.PathValue("id")})
}

func (a *API) refreshGateway(w http.ResponseWriter, r *http.Request) {
	view, err := a.Registry.Refresh(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}

// globalBody is the global list as the API shows it.
type globalBody struct {
	PassthroughHeaders *[]string `json:"passthrough_headers"`
}

func (a *API) getGlobal(w http.ResponseWriter, r *http.Request) {
	stored, err := a.Registry.GlobalList(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var body globalBody
	if stored.Exists && stored.Names != nil {
		names := stored.Names
		body.PassthroughHeaders = &names
	}
	writeJSON(w, http.StatusOK, body)
}

func (a *API) putGlobal(w http.ResponseWriter, r *http.Request) {
	raw, ok := readOnlyField(w, r, "passthrough_headers")
	if !ok {
		return
	}
	list, err := passthrough.DecodeList(raw)
	if err != nil {
		unprocessable(w, "passthrough_headers", err.Error(), "value_error")
		return
	}
	if err := a.Registry.SetGlobalList(r.Context(), list); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, globalBody{PassthroughHeaders: list})
}

func (a *API) invalidate(w http.ResponseWriter, r *http.Request) {
	a.Resolver.Invalidate()
	writeJSON(w, http.StatusOK, map[string]any{"status": "invalidated", "cache_stats": a.Resolver.Stats()})
}

func (a *API) cacheStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.Resolver.Stats())
}

// MaxBodyBytes bounds an admin request body.
const MaxBodyBytes = 1 << 20

// readObject reads a JSON object body; fields known does not report are
// refused by name. The body must be declared application/json: a browser
// sends text/plain, form and multipart bodies across origins without asking
// (CORS "simple requests"), JSON only after a preflight mcpgate never
// grants.
func readObject(w http.ResponseWriter, r *http.Request, known func(string) bool) (map[string]json.RawMessage, bool) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"detail": fmt.Sprintf(
			"Content-Type %q is not accepted: send the body as JSON with Content-Type: application/json", r.Header.Get("Content-Type"))})
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"detail": "request body larger than 1 MiB"})
		return nil, false
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The gateway bounds how long a body may take to arrive.
		writeJSON(w, http.StatusRequestTimeout, map[string]string{"detail": "the request body did not arrive in time"})
		return nil, false
	case err != nil:
		writeJSON(w, http.StatusBadRequest, map[string]string{"detail": "the request body could not be read"})
		return nil, false
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []detail{{
			Loc: []string{"body"}, Msg: "the body must be a JSON object", Type: "json_invalid"}}})
		return nil, false
	}
	for name := range fields {
		if !known(name) {
			unprocessable(w, name, "unknown field", "extra_forbidden")
			return nil, false
		}
	}
	return fields, true
}

// readOnlyField reads a JSON object body whose one field, required, is
// name, as readObject does, and returns the field's value.
func readOnlyField(w http.ResponseWriter, r *http.Request, name string) (json.RawMessage, bool) {
	fields, ok := readObject(w, r, func(f string) bool { return f == name })
	if !ok {
		return nil, false
	}
	raw, present := fields[name]
	if !present {
		unprocessable(w, name, "field required", "missing")
	}
	return raw, present
}

// decodeField reads one field when present, answering 422 naming it when it
// has the wrong type.
func decodeField(w http.ResponseWriter, fields map[string]json.RawMessage, name string, dst any) bool {
	raw, ok := fields[name]
	if !ok {
		return true
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		unprocessable(w, name, fmt.Sprintf("wrong type: want %s", kindOf(dst)), "type_error")
		return false
	}
	return true
}

func kindOf(dst any) string {
	switch dst.(type) {
	case *bool, **bool:
		return "a boolean"
	default:
		return "a string"
	}
}

type detail struct {
	Loc  []string `json:"loc"`
	Msg  string   `json:"msg"`
	Type string   `json:"type"`
}

func unprocessable(w http.ResponseWriter, field, msg, typ string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []detail{{Loc: []string{"body", field}, Msg: msg, Type: typ}}})
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *registry.FieldError
	switch {
	case errors.As(err, &fe):
		unprocessable(w, apiField(fe.Field), fe.Message, "value_error")
	case errors.Is(err, registry.ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"detail": "gateway not found: " + r.PathValue("id")})
	case errors.Is(err, registry.ErrConflict):
		writeJSON(w, http.StatusConflict, map[string]string{"detail": err.Error()})
	default:
		if a.Logger != nil {
			a.Logger.ErrorContext(r.Context(), "admin request failed", "path", r.URL.Path, "err", err)
		}
		writeJSON(w, http.StatusInternalServerError, map[string]string{"detail": "internal error; see the gateway's log"})
	}
}

// apiField turns a credentials field path (auth.username,
// auth.oauth.token_url, auth.headers[1].name) into the request field it came
// from (auth_username, oauth_config.token_url, auth_headers[1].key).
func apiField(f string) string {
	switch {
	case strings.HasPrefix(f, "auth.oauth."):
		return "oauth_config." + strings.TrimPrefix(f, "auth.oauth.")
	case f == "auth.oauth":
		return "oauth_config"
	case strings.HasPrefix(f, "auth.headers"):
		f = "auth_headers" + strings.TrimPrefix(f, "auth.headers")
		f = strings.Replace(f, ".name", ".key", 1)
		return f
	case f == "auth.type":
		return "auth_type"
	case strings.HasPrefix(f, "auth."):
		return "auth_" + strings.TrimPrefix(f, "auth.")
	}
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"detail":"encode answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
