package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/auth/authtest"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/gateway"
)

// benchAudience is the audience of the provider's tokens.
const benchAudience = "https://mcpgate.bench"

// globalAllowlist is the global passthrough allowlist the gateway runs
// with: the tenancy and tracing headers a real deployment forwards. One of
// them (X-Region) is never sent, as in life.
func globalAllowlist() []string {
	return []string{"X-Tenant-Id", "X-Trace-Id", "X-Request-Id", "Traceparent", "Tracestate",
		"Baggage", "X-Correlation-Id", "X-Region"}
}

// runningGateway is a real mcpgate serving on a loopback port.
type runningGateway struct {
	// URL is the gateway's base URL; /mcp and /rpc are under it.
	URL string
	// Token is a client token the gateway accepts.
	Token string
	// Accepted counts the connections the gateway has accepted.
	Accepted atomic.Int64

	dir         string
	provider    *authtest.Provider // the identity provider of ClientTokens other than HS256
	providerKey authtest.Key
	gw          *gateway.Gateway
	cancel      context.CancelFunc
	served      chan error
}

// startGateway starts mcpgate as `mcpgate serve` would, from settings given
// here rather than the environment (so the caller's environment cannot change
// what is measured): SQLite in a temporary directory, client authentication
// on with a fresh secret, credentials sealed at rest, header passthrough on
// with globalAllowlist, LOG_LEVEL=warn into a JSON logger that discards, and no
// periodic catalogue refresh (it would land in the middle of a scenario).
//
// tokenAlg (Options.ClientTokens) is the client token's algorithm: HS256,
// minted with the secret, or RS256, ES256 or EdDSA, signed by a test
// identity provider whose JWKS (on 127.0.0.1) the gateway reads
// (JWT_JWKS_URL, JWT_AUDIENCE), as with a real provider.
func startGateway(ctx context.Context, tokenAlg string) (*runningGateway, error) {
	dir, err := os.MkdirTemp("", "mcpgate-bench-")
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	r := &runningGateway{dir: dir}
	ok := false
	defer func() {
		if !ok {
			r.Close()
		}
	}()
	secret, err := auth.NewSecret()
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	envFile := filepath.Join(dir, "none.env")
	if err := os.WriteFile(envFile, nil, 0o600); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	list, err := json.Marshal(globalAllowlist())
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	vars := map[string]string{
		"DATABASE_URL":                "sqlite:///" + filepath.Join(dir, "mcpgate.db"),
		"AUTH_REQUIRED":               "true",
		"JWT_SECRET_KEY":              secret,
		"AUTH_ENCRYPTION_SECRET":      rand.Text(),
		"ENABLE_HEADER_PASSTHROUGH":   "true",
		"DEFAULT_PASSTHROUGH_HEADERS": string(list),
		"LOG_LEVEL":                   "warn",
		"CATALOGUE_REFRESH_INTERVAL":  "0",
		// The sessions scenario holds 1 000 sessions of one client token.
		"MAX_SESSIONS_PER_CLIENT": "0",
		"MCPGATE_ENV_FILE":        envFile,
	}
	if tokenAlg != "" && tokenAlg != auth.AlgHS256 {
		if r.providerKey, err = authtest.GenerateKey(tokenAlg, "bench-1"); err != nil {
			return nil, fmt.Errorf("gateway: client tokens: %w", err)
		}
		r.provider = authtest.Serve(r.providerKey)
		vars["JWT_JWKS_URL"], vars["JWT_AUDIENCE"] = r.provider.JWKSURL(), benchAudience
	}
	cfg, err := config.Load(nil, func(name string) (string, bool) { v, ok := vars[name]; return v, ok })
	if err != nil {
		return nil, fmt.Errorf("gateway: configuration: %w", err)
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: cfg.Gateway.LogLevel}))
	sctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	if r.gw, err = gateway.New(sctx, cfg, logger, "bench"); err != nil {
		return nil, fmt.Errorf("gateway: start: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("gateway: listen: %w", err)
	}
	r.URL = "http://" + ln.Addr().String()
	r.served = make(chan error, 1)
	go func() { r.served <- r.gw.Serve(sctx, countingListener{ln, &r.Accepted}) }()
	jwt, err := auth.NewJWT([]byte(secret))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	// The bench registers upstreams (the admin API) and calls tools.
	if r.provider != nil {
		now := time.Now()
		r.Token, err = r.providerKey.SignClaims(jwtlib.MapClaims{"iss": r.provider.URL, "sub": "bench", "aud": benchAudience,
			"iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix(), "scope": config.DefaultJWTAdminScope})
	} else {
		r.Token, err = jwt.MintWith("bench", 24*time.Hour, time.Now(), auth.MintOptions{Scopes: []string{config.DefaultJWTAdminScope}})
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	ok = true
	return r, nil
}

// gatewayServer is mcpgate, in this process or in a child.
type gatewayServer interface {
	// baseURL is the gateway's base URL; /mcp and /rpc are under it.
	baseURL() string
	// token is a client token the gateway accepts.
	token() string
	// accepted is the number of connections the gateway has accepted.
	accepted() int64
	Close() error
}

func (r *runningGateway) baseURL() string { return r.URL }
func (r *runningGateway) token() string   { return r.Token }
func (r *runningGateway) accepted() int64 { return r.Accepted.Load() }

// childGateway is mcpgate in a child process.
type childGateway struct{ *childProcess }

func startChildGateway(ctx context.Context, tokenAlg string) (*childGateway, error) {
	c, err := startChild(ctx, "gateway "+tokenAlg, 2)
	if err != nil {
		return nil, fmt.Errorf("gateway process: %w", err)
	}
	return &childGateway{c}, nil
}

func (c *childGateway) baseURL() string { return c.fields[0] }
func (c *childGateway) token() string   { return c.fields[1] }

// register adds an upstream to gw through the admin API, as a user would
// (POST /gateways), with a bearer credential the gateway stores sealed and
// sends as a base header. It returns the name clients call the upstream's
// echo tool by.
func register(ctx context.Context, gw gatewayServer, name, url, credential string) (string, error) {
	body, err := json.Marshal(map[string]any{"name": name, "url": url, "transport": "STREAMABLEHTTP",
		"auth_type": "bearer", "auth_token": strings.TrimPrefix(credential, "Bearer ")})
	if err != nil {
		return "", fmt.Errorf("register upstream: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw.baseURL()+"/gateways", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("register upstream: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+gw.token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("register upstream: %w", err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("register upstream: POST /gateways answered HTTP %d: %s", resp.StatusCode, out)
	}
	var v struct {
		Slug   string `json:"slug"`
		Status string `json:"status"`
		Reason string `json:"status_reason"`
		Tools  int    `json:"tool_count"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return "", fmt.Errorf("register upstream: the answer is not JSON: %w", err)
	}
	if v.Status != "available" {
		return "", fmt.Errorf("register upstream: it is %s: %s", v.Status, v.Reason)
	}
	if v.Tools != 1 {
		return "", fmt.Errorf("register upstream: the gateway found %d tools on it, want 1 (echo)", v.Tools)
	}
	return v.Slug + "-echo", nil // GATEWAY_TOOL_NAME_SEPARATOR is the default "-"
}

// Close stops serving, releases the gateway's upstream connections and
// database, and removes the temporary directory.
func (r *runningGateway) Close() error {
	var err error
	if r.cancel != nil {
		r.cancel()
	}
	if r.served != nil {
		err = <-r.served
	}
	if r.gw != nil {
		r.gw.Close()
	}
	if r.provider != nil {
		r.provider.Close()
	}
	if rmErr := os.RemoveAll(r.dir); rmErr != nil && err == nil {
		err = rmErr
	}
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}
