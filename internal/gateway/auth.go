package gateway

import (
	"context"
	"log/slog"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/config"
)

// clientVerifier builds the verifier of client tokens from JWT_SECRET_KEY
// and the JWT_* settings, refusing the tokens revoked lists; jwks, when not
// nil, is the identity provider's key set, which the gateway closes.
// Problems are StartupErrors naming the setting.
func clientVerifier(ctx context.Context, gc config.Gateway, revoked *auth.RevocationList, logger *slog.Logger) (v *auth.Verifier, jwks *auth.JWKS, err error) {
	jc := gc.JWT
	if gc.JWTSecretKey == "" && !jc.KeySource() {
		return nil, nil, &StartupError{config.EnvJWTSecretKey, "not set, and AUTH_REQUIRED is true: clients could not be authenticated. " +
			"Set JWT_SECRET_KEY to 32 or more random bytes (for example: export JWT_SECRET_KEY=$(mcpgate token --new-secret)), " +
			"or JWT_JWKS_URL, JWT_OIDC_DISCOVERY or JWT_PUBLIC_KEY_PATH to accept an identity provider's tokens, " +
			"or set AUTH_REQUIRED=false for local use without client authentication"}
	}
	vc := auth.VerifierConfig{
		PublicKeyPath: jc.PublicKeyPath, Algorithms: jc.Algorithms, RequireExpiration: jc.RequireExpiration,
		AdminScope: jc.AdminScope, AdminClaims: jc.AdminClaims, AdminGroups: jc.AdminGroups, GroupsClaim: jc.GroupsClaim,
		Revoked: revoked.Revoked,
	}
	if jc.IssuerVerification {
		vc.Issuers = jc.Issuers
	}
	if jc.AudienceVerification {
		vc.Audiences = jc.Audiences
		if len(vc.Audiences) == 0 && gc.Resource.URL != "" {
			// RFC 8707: tokens for mcpgate's resources only (resource.go).
			vc.AcceptAudience = (&protectedResource{cfg: gc.Resource}).acceptsAudience
		}
	}
	if gc.JWTSecretKey != "" {
		// NewJWT checks the secret as `mcpgate token` does.
		if _, err := auth.NewJWT([]byte(gc.JWTSecretKey)); err != nil {
			return nil, nil, &StartupError{config.EnvJWTSecretKey, err.Error()}
		}
		vc.Secret = []byte(gc.JWTSecretKey)
	}
	// An identity provider signs tokens for many services: without an
	// audience check, a token it issued for any of them would pass here
	// (RFC 8707, RFC 9068 §4).
	if jc.KeySource() && jc.AudienceVerification && len(vc.Audiences) == 0 && vc.AcceptAudience == nil {
		return nil, nil, &StartupError{config.EnvJWTAudience, "not set, and tokens are verified with an identity provider's keys: " +
			"set it to the audience (aud) the provider puts in tokens meant for mcpgate, or set MCP_RESOURCE_URL to mcpgate's public URL " +
			"to accept tokens whose audience is that resource (RFC 8707), or JWT_AUDIENCE_VERIFICATION=false to accept its tokens for any service"}
	}
	if jc.JWKSURL != "" || jc.OIDCDiscovery {
		setting := config.EnvJWTJWKSURL
		jcfg := auth.JWKSConfig{URL: jc.JWKSURL, Logger: logger}
		if jc.OIDCDiscovery {
			setting, jcfg.Discovery, jcfg.Issuer = config.EnvJWTIssuer, true, jc.Issuers[0]
		}
		if jwks, err = auth.NewJWKS(ctx, jcfg); err != nil {
			return nil, nil, &StartupError{setting, err.Error()}
		}
		vc.JWKS = jwks
	}
	if v, err = auth.NewVerifier(vc); err != nil {
		if jwks != nil {
			jwks.Close()
		}
		setting := config.EnvJWTAlgorithm
		if jc.PublicKeyPath != "" {
			setting = config.EnvJWTPublicKeyPath
		}
		return nil, nil, &StartupError{setting, err.Error()}
	}
	return v, jwks, nil
}
