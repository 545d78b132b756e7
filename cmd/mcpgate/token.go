package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/config"
)

// runToken is "mcpgate token": mints a client token, or a new secret.
func runToken(_ context.Context, args []string, s streams) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	subject := fs.String("subject", "admin", "who the token is for (its sub claim)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	admin := fs.Bool("admin", false, "give the token the admin role (JWT_ADMIN_SCOPE among its scopes)")
	scopes := fs.String("scope", "", "comma-separated scopes for the token's scope claim")
	newSecret := fs.Bool("new-secret", false, "print a new random secret for JWT_SECRET_KEY or AUTH_ENCRYPTION_SECRET instead")
	config.RegisterFlags(fs)
	if code, ok := parseFlags(fs, args, s, tokenUsage); !ok {
		return code
	}
	if *newSecret {
		secret, err := auth.NewSecret()
		if err != nil {
			fmt.Fprintf(s.stderr, "mcpgate: %v\n", err)
			return exitFailed
		}
		fmt.Fprintln(s.stdout, secret)
		return exitOK
	}
	cfg, err := config.Load(fs, s.environ)
	if err != nil {
		fmt.Fprintf(s.stderr, "mcpgate: %v\n", err)
		return exitUsage
	}
	if cfg.Gateway.JWTSecretKey == "" {
		fmt.Fprintln(s.stderr, "mcpgate token: JWT_SECRET_KEY is not set; set it to the gateway's key (make one with `mcpgate token --new-secret`)")
		return exitUsage
	}
	j, err := auth.NewJWT([]byte(cfg.Gateway.JWTSecretKey))
	if err != nil {
		fmt.Fprintf(s.stderr, "mcpgate token: JWT_SECRET_KEY: %v\n", err)
		return exitUsage
	}
	var o auth.MintOptions
	for _, sc := range strings.Split(*scopes, ",") {
		if sc = strings.TrimSpace(sc); sc != "" && !slices.Contains(o.Scopes, sc) {
			o.Scopes = append(o.Scopes, sc)
		}
	}
	if *admin && !slices.Contains(o.Scopes, cfg.Gateway.JWT.AdminScope) {
		if cfg.Gateway.JWT.AdminScope == "" {
			fmt.Fprintln(s.stderr, "mcpgate token: --admin needs JWT_ADMIN_SCOPE, the scope that gives the admin role; it is set empty")
			return exitUsage
		}
		o.Scopes = append(o.Scopes, cfg.Gateway.JWT.AdminScope)
	}
	// The gateway checks the audience when JWT_AUDIENCE is set: the token
	// names the first one; without it, while MCP_RESOURCE_URL is set, that
	// resource (RFC 8707).
	if jc := cfg.Gateway.JWT; jc.AudienceVerification && len(jc.Audiences) > 0 {
		o.Audience = jc.Audiences[0]
	} else if jc.AudienceVerification && cfg.Gateway.Resource.URL != "" {
		o.Audience = cfg.Gateway.Resource.URL
	}
	tok, err := j.MintWith(*subject, *ttl, time.Now(), o)
	if err != nil {
		fmt.Fprintf(s.stderr, "mcpgate token: %v\n", err)
		return exitUsage
	}
	fmt.Fprintln(s.stdout, tok)
	return exitOK
}

func tokenUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: mcpgate token [--subject NAME] [--ttl 24h] [--admin] [--scope A,B] [--new-secret]

Prints a client token signed with JWT_SECRET_KEY, to send as
"Authorization: Bearer <token>" (or in AUTH_HEADER_NAME). Its issuer is
mcpgate; its audience the first JWT_AUDIENCE, if set. Without --admin (or
JWT_ADMIN_SCOPE in --scope) it has the client role only: the MCP endpoints,
not the admin API. With --new-secret it prints a new random secret instead,
for JWT_SECRET_KEY or AUTH_ENCRYPTION_SECRET.

Flags:
  --subject NAME  who the token is for (default admin)
  --ttl DURATION  how long it is valid (default 24h)
  --admin         give it the admin role (adds JWT_ADMIN_SCOPE, default mcpgate:admin)
  --scope A,B     scopes for its scope claim
  --new-secret    print a new secret and exit

Settings:
`)
	printSettings(w)
}
