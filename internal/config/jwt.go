package config

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/mcpgate/mcpgate/passthrough"
)

// JWT holds the client-token settings beyond JWT_SECRET_KEY. Names are
// ContextForge's (mcpgateway/config.py) where it has one.
type JWT struct {
	// Algorithms (JWT_ALGORITHM, a comma list) are the accepted
	// public-key algorithms (RS256, ES256, EdDSA); HS256 is accepted
	// whenever JWT_SECRET_KEY is set. Empty: all three, with a key source.
	Algorithms []string
	// PublicKeyPath (JWT_PUBLIC_KEY_PATH) is a PEM public key file.
	PublicKeyPath string
	// JWKSURL (JWT_JWKS_URL) is an identity provider's key set.
	JWKSURL string
	// OIDCDiscovery (JWT_OIDC_DISCOVERY) finds the key set from the
	// issuer's /.well-known/openid-configuration.
	OIDCDiscovery bool
	// Issuers (JWT_ISSUER) and Audiences (JWT_AUDIENCE) are the accepted
	// iss and aud values, checked when set and their *_VERIFICATION switch
	// is on (the default).
	Issuers   []string
	Audiences []string
	// IssuerVerification and AudienceVerification (JWT_ISSUER_VERIFICATION,
	// JWT_AUDIENCE_VERIFICATION), true unless switched off.
	IssuerVerification   bool
	AudienceVerification bool
	// RequireExpiration (REQUIRE_TOKEN_EXPIRATION), true unless switched off.
	RequireExpiration bool
	// AdminScope (JWT_ADMIN_SCOPE), AdminClaims (JWT_ADMIN_CLAIM, a list) and
	// AdminGroups (JWT_ADMIN_GROUPS) give a token the admin role;
	// GroupsClaim (JWT_GROUPS_CLAIM) is where its groups are.
	AdminScope  string
	AdminClaims []string
	AdminGroups []string
	GroupsClaim string
}

// KeySource reports whether public keys verify tokens (a file, a JWKS URL or
// discovery).
func (j JWT) KeySource() bool { return j.PublicKeyPath != "" || j.JWKSURL != "" || j.OIDCDiscovery }

// Client-token setting names.
const (
	EnvJWTAlgorithm            = "JWT_ALGORITHM"
	EnvJWTPublicKeyPath        = "JWT_PUBLIC_KEY_PATH"
	EnvJWTJWKSURL              = "JWT_JWKS_URL"
	EnvJWTOIDCDiscovery        = "JWT_OIDC_DISCOVERY"
	EnvJWTIssuer               = "JWT_ISSUER"
	EnvJWTAudience             = "JWT_AUDIENCE"
	EnvJWTIssuerVerification   = "JWT_ISSUER_VERIFICATION"
	EnvJWTAudienceVerification = "JWT_AUDIENCE_VERIFICATION"
	EnvRequireTokenExpiration  = "REQUIRE_TOKEN_EXPIRATION"
	EnvJWTAdminScope           = "JWT_ADMIN_SCOPE"
	EnvJWTAdminClaim           = "JWT_ADMIN_CLAIM"
	EnvJWTAdminGroups          = "JWT_ADMIN_GROUPS"
	EnvJWTGroupsClaim          = "JWT_GROUPS_CLAIM"
)

// The defaults of the role settings.
const (
	DefaultJWTAdminScope = "mcpgate:admin"
	// DefaultJWTAdminClaim is where ContextForge puts is_admin: at the top
	// of its legacy tokens, under user in its session and API tokens
	// (mcpgateway/routers/email_auth.py, services/token_catalog_service.py).
	DefaultJWTAdminClaim  = "is_admin,user.is_admin"
	DefaultJWTGroupsClaim = "groups"
)

func jwtDocs() []passthrough.SettingDoc {
	return []passthrough.SettingDoc{
		{Name: EnvJWTAlgorithm, Default: "HS256", Usage: "comma-separated algorithms of client tokens: HS256 (with JWT_SECRET_KEY, always accepted while it is set), RS256, ES256, EdDSA (with JWT_PUBLIC_KEY_PATH, JWT_JWKS_URL or JWT_OIDC_DISCOVERY; all three when only HS256 is named); an HS256 token is never checked with a public key"},
		{Name: EnvJWTPublicKeyPath, Default: "(none)", Usage: "PEM file with the public key (RSA 2048+, EC P-256 or Ed25519) that verifies client tokens"},
		{Name: EnvJWTJWKSURL, Default: "(none)", Usage: "https URL of the identity provider's JSON Web Key Set: read at start, every 5 minutes and when a token names an unknown kid (at most once per 10 s); redirects are not followed, 10 s timeout, 1 MiB limit; when it is down or returns garbage the last good keys stay in use"},
		{Name: EnvJWTOIDCDiscovery, Default: "false", Usage: "find the key set from JWT_ISSUER's /.well-known/openid-configuration (jwks_uri) instead of JWT_JWKS_URL; needs exactly one JWT_ISSUER", Bool: true},
		{Name: EnvJWTIssuer, Default: "(none)", Usage: "comma-separated accepted iss values (ContextForge's tokens: mcpgateway); unset, the issuer is not checked; mcpgate's own HS256 tokens (iss mcpgate) are always accepted"},
		{Name: EnvJWTAudience, Default: "(none)", Usage: "comma-separated accepted aud values (ContextForge's tokens: mcpgateway-api); a token must name one; `mcpgate token` puts the first in its tokens; required with public keys unless MCP_RESOURCE_URL is set (then tokens must be for its resources) or JWT_AUDIENCE_VERIFICATION=false"},
		{Name: EnvJWTIssuerVerification, Default: "true", Usage: "false accepts any iss even when JWT_ISSUER is set", Bool: true},
		{Name: EnvJWTAudienceVerification, Default: "true", Usage: "false accepts any aud even when JWT_AUDIENCE is set (never do this with an identity provider's keys: its tokens for other services would pass)", Bool: true},
		{Name: EnvRequireTokenExpiration, Default: "true", Usage: "refuse client tokens without exp; exp and nbf are checked with 30 s of clock leeway"},
		{Name: EnvJWTAdminScope, Default: DefaultJWTAdminScope, Usage: "a token with this scope (scope or scp claim) has the admin role; `mcpgate token --admin` adds it"},
		{Name: EnvJWTAdminClaim, Default: DefaultJWTAdminClaim, Usage: "comma-separated claims: a token with one of them true has the admin role (a dotted name reads a nested claim; the default reads ContextForge's is_admin in its legacy, session and API tokens)"},
		{Name: EnvJWTGroupsClaim, Default: DefaultJWTGroupsClaim, Usage: "the claim holding the token's groups (array or string; a dotted name such as realm_access.roles reads a nested member; ContextForge's API tokens: teams)"},
		{Name: EnvJWTAdminGroups, Default: "(none)", Usage: "comma-separated groups whose members have the admin role"},
	}
}

// loadJWT reads the client-token settings.
func loadJWT(get func(string) (string, bool)) (JWT, error) {
	j := JWT{IssuerVerification: true, AudienceVerification: true, RequireExpiration: true,
		AdminScope: DefaultJWTAdminScope, AdminClaims: strings.Split(DefaultJWTAdminClaim, ","), GroupsClaim: DefaultJWTGroupsClaim}
	list := func(name string, dst *[]string) error {
		v, ok := get(name)
		if !ok {
			return nil
		}
		l, err := passthrough.ParseList(v)
		if err != nil {
			return &passthrough.SettingError{Name: name, Value: v, Reason: "must be a comma list"}
		}
		*dst = l
		return nil
	}
	for _, l := range []struct {
		name string
		dst  *[]string
	}{{EnvJWTIssuer, &j.Issuers}, {EnvJWTAudience, &j.Audiences}, {EnvJWTAdminGroups, &j.AdminGroups}, {EnvJWTAdminClaim, &j.AdminClaims}} {
		if err := list(l.name, l.dst); err != nil {
			return j, err
		}
	}
	var algs []string
	if err := list(EnvJWTAlgorithm, &algs); err != nil {
		return j, err
	}
	for _, a := range algs {
		switch a {
		case "HS256":
		case "RS256", "ES256", "EdDSA":
			j.Algorithms = append(j.Algorithms, a)
		default:
			return j, &passthrough.SettingError{Name: EnvJWTAlgorithm, Value: strings.Join(algs, ","),
				Reason: fmt.Sprintf("%q is not one of HS256, RS256, ES256, EdDSA (HS384, HS512, RS512, PS256 and the others are not accepted)", a)}
		}
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{EnvJWTOIDCDiscovery, &j.OIDCDiscovery}, {EnvJWTIssuerVerification, &j.IssuerVerification},
		{EnvJWTAudienceVerification, &j.AudienceVerification}, {EnvRequireTokenExpiration, &j.RequireExpiration}} {
		if v, ok := get(b.name); ok {
			on, err := passthrough.ParseBool(b.name, v)
			if err != nil {
				return j, err
			}
			*b.dst = on
		}
	}
	for _, s := range []struct {
		name string
		dst  *string
	}{{EnvJWTPublicKeyPath, &j.PublicKeyPath}, {EnvJWTJWKSURL, &j.JWKSURL},
		{EnvJWTAdminScope, &j.AdminScope}, {EnvJWTGroupsClaim, &j.GroupsClaim}} {
		if v, ok := get(s.name); ok {
			*s.dst = v
		}
	}
	if j.JWKSURL != "" {
		if u, err := url.Parse(j.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return j, &passthrough.SettingError{Name: EnvJWTJWKSURL, Value: j.JWKSURL, Reason: "must be an https:// (or http://) URL without user information"}
		}
	}
	sources := 0
	for _, on := range []bool{j.PublicKeyPath != "", j.JWKSURL != "", j.OIDCDiscovery} {
		if on {
			sources++
		}
	}
	switch {
	case sources > 1:
		return j, &passthrough.SettingError{Name: EnvJWTJWKSURL, Value: j.JWKSURL,
			Reason: "set one key source: JWT_PUBLIC_KEY_PATH, JWT_JWKS_URL or JWT_OIDC_DISCOVERY=true"}
	case j.OIDCDiscovery && len(j.Issuers) != 1:
		return j, &passthrough.SettingError{Name: EnvJWTIssuer, Value: strings.Join(j.Issuers, ","),
			Reason: "JWT_OIDC_DISCOVERY=true needs exactly one issuer URL here, the provider's (https://idp.example.com/realms/main)"}
	case sources == 0 && len(j.Algorithms) > 0:
		return j, &passthrough.SettingError{Name: EnvJWTAlgorithm, Value: strings.Join(algs, ","),
			Reason: "names a public-key algorithm but no key is configured: set JWT_PUBLIC_KEY_PATH, JWT_JWKS_URL or JWT_OIDC_DISCOVERY=true"}
	}
	if j.OIDCDiscovery {
		if u, err := url.Parse(j.Issuers[0]); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return j, &passthrough.SettingError{Name: EnvJWTIssuer, Value: j.Issuers[0], Reason: "must be the provider's issuer URL for JWT_OIDC_DISCOVERY"}
		}
	}
	return j, nil
}
