package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/egress"
	"github.com/mcpgate/mcpgate/passthrough"
)

// Gateway holds the settings of `mcpgate serve` beyond passthrough. Names
// are ContextForge's where it has one.
type Gateway struct {
	// Host and Port (HOST, PORT) are where mcpgate listens.
	Host string
	Port int
	// DatabaseURL (DATABASE_URL): sqlite:///./mcpgate.db or postgres://...
	DatabaseURL string
	// JWTSecretKey (JWT_SECRET_KEY) signs and checks client tokens (HS256).
	JWTSecretKey string
	// JWT holds the other client-token settings (JWT_*): public keys,
	// issuer, audience, roles.
	JWT JWT
	// AuthEncryptionSecret (AUTH_ENCRYPTION_SECRET) encrypts upstream
	// credentials at rest.
	AuthEncryptionSecret string
	// OldAuthEncryptionSecret (OLD_AUTH_ENCRYPTION_SECRET) is the secret
	// credentials were sealed under before AUTH_ENCRYPTION_SECRET changed:
	// they still open, and are re-sealed under the current one at start.
	OldAuthEncryptionSecret string
	// UpstreamTimeout (UPSTREAM_TIMEOUT) bounds each request to an upstream.
	UpstreamTimeout time.Duration
	// ToolNameSeparator (GATEWAY_TOOL_NAME_SEPARATOR) joins an upstream's
	// slug and its tool and prompt names.
	ToolNameSeparator string
	// LogLevel (LOG_LEVEL): debug, info, warn or error.
	LogLevel slog.Level
	// SessionIdleTimeout (SESSION_IDLE_TIMEOUT) ends unused client sessions.
	SessionIdleTimeout time.Duration
	// MaxSessionsPerClient (MAX_SESSIONS_PER_CLIENT) bounds the client
	// sessions one client holds at once on an instance, across /mcp, /sse,
	// /ws and the relay; at the bound its least recently used idle session
	// makes room. Anonymous clients (principal "") are not bound by it.
	// 0 turns the bound off.
	MaxSessionsPerClient int
	// MaxUpstreamSessionsPerUpstream (MAX_UPSTREAM_SESSIONS_PER_UPSTREAM)
	// bounds the upstream sessions federation clients hold with one
	// upstream on an instance, each client session its own.
	MaxUpstreamSessionsPerUpstream int
	// CatalogueRefreshInterval (CATALOGUE_REFRESH_INTERVAL) re-reads every
	// upstream's catalogue; 0 only on list_changed and on request.
	CatalogueRefreshInterval time.Duration
	// ShutdownTimeout (SHUTDOWN_TIMEOUT) bounds the wait for in-flight
	// calls on SIGINT or SIGTERM.
	ShutdownTimeout time.Duration
	// RequestBodyTimeout (REQUEST_BODY_TIMEOUT) bounds how long a request
	// body may take to arrive; a client that trickles one gets 408.
	RequestBodyTimeout time.Duration
	// AllowedHosts (ALLOWED_HOSTS) are the host names, lower case, that
	// requests may name in Host besides the loopback names, when mcpgate
	// listens on a loopback address (DNS-rebinding protection, MCP
	// basic/transports "Security Warning"). "*" turns the check off.
	AllowedHosts []string
	// AllowedOrigins are the ALLOWED_HOSTS entries written as origins
	// (scheme://host[:port]), in NormalizeOrigin's form: browser pages
	// there may call mcpgate besides pages of mcpgate's own origin.
	AllowedOrigins []string
	// Resource is mcpgate as an OAuth 2.1 protected resource (MCP_RESOURCE_URL
	// and the OAUTH_* and MCP_REQUIRED_SCOPES settings; resource.go).
	Resource Resource
	// RedisURL (REDIS_URL), redis://… or rediss://…, turns on
	// multi-instance mode: changes and session messages travel between
	// instances through Redis. It needs PostgreSQL as the database.
	RedisURL string
	// Egress is the egress policy against server-side request forgery,
	// from ContextForge's settings: SSRF_ALLOW_LOCALHOST,
	// SSRF_ALLOW_PRIVATE_NETWORKS (each, unset, true when Host is a loopback
	// address — local use — and false otherwise), SSRF_ALLOWED_NETWORKS, and
	// SSRF_PROTECTION_ENABLED=false, which allows both classes. Link-local
	// and cloud metadata addresses are refused whatever they say.
	Egress egress.Policy
	// Access holds trusted-proxy authentication and the access default.
	Access Access
	// IdentityAssertion are the IDENTITY_ASSERTION_* settings.
	IdentityAssertion IdentityAssertion
}

// DefaultRequestBodyTimeout is REQUEST_BODY_TIMEOUT's default: ample for
// the largest body mcpgate accepts (8 MiB) on a slow link, short enough
// that trickling clients cannot hold connections for long.
const DefaultRequestBodyTimeout = 30 * time.Second

// Gateway setting names.
const (
	EnvHost                     = "HOST"
	EnvPort                     = "PORT"
	EnvDatabaseURL              = "DATABASE_URL"
	EnvJWTSecretKey             = "JWT_SECRET_KEY"
	EnvAuthEncryptionSecret     = "AUTH_ENCRYPTION_SECRET"
	EnvOldAuthEncryptionSecret  = "OLD_AUTH_ENCRYPTION_SECRET"
	EnvUpstreamTimeout          = "UPSTREAM_TIMEOUT"
	EnvToolNameSeparator        = "GATEWAY_TOOL_NAME_SEPARATOR"
	EnvLogLevel                 = "LOG_LEVEL"
	EnvSessionIdleTimeout       = "SESSION_IDLE_TIMEOUT"
	EnvMaxSessionsPerClient     = "MAX_SESSIONS_PER_CLIENT"
	EnvMaxUpstreamSessions      = "MAX_UPSTREAM_SESSIONS_PER_UPSTREAM"
	EnvCatalogueRefreshInterval = "CATALOGUE_REFRESH_INTERVAL"
	EnvShutdownTimeout          = "SHUTDOWN_TIMEOUT"
	EnvAllowedHosts             = "ALLOWED_HOSTS"
	EnvRequestBodyTimeout       = "REQUEST_BODY_TIMEOUT"
	EnvRedisURL                 = "REDIS_URL"
	EnvSSRFProtectionEnabled    = "SSRF_PROTECTION_ENABLED"
	EnvSSRFAllowLocalhost       = egress.SettingAllowLocalhost
	EnvSSRFAllowPrivateNetworks = egress.SettingAllowPrivateNetworks
	EnvSSRFAllowedNetworks      = egress.SettingAllowedNetworks
)

// gatewayDocs documents the gateway settings; secrets have no default.
func gatewayDocs() []passthrough.SettingDoc {
	return append([]passthrough.SettingDoc{
		{Name: EnvHost, Default: "127.0.0.1", Usage: "address to listen on"},
		{Name: EnvPort, Default: "4444", Usage: "port to listen on"},
		{Name: EnvDatabaseURL, Default: "sqlite:///./mcpgate.db", Usage: "sqlite:///PATH or postgres://USER@HOST/DB"},
		{Name: EnvJWTSecretKey, Default: "(none)", Usage: "HS256 key for client tokens, 32 bytes or more; required while AUTH_REQUIRED is true"},
	}, append(jwtDocs(), []passthrough.SettingDoc{
		{Name: EnvAuthEncryptionSecret, Default: "(none)", Usage: "encrypts upstream credentials at rest; required to register an upstream with credentials"},
		{Name: EnvOldAuthEncryptionSecret, Default: "(none)", Usage: "the previous AUTH_ENCRYPTION_SECRET, while rotating it: credentials sealed under it still open, and every one is re-sealed under AUTH_ENCRYPTION_SECRET at start (the log says how many), so it can be removed after one start of every instance; never used to seal"},
		{Name: EnvUpstreamTimeout, Default: "60s", Usage: "longest wait for an upstream's answer (seconds or a duration like 90s); also how long a connection replaced after an upstream's URL or transport changed stays open for its calls in flight"},
		{Name: EnvToolNameSeparator, Default: "-", Usage: "joins an upstream's name and its tool and prompt names"},
		{Name: EnvLogLevel, Default: "info", Usage: "debug, info, warn or error (JSON logs on stderr)"},
		{Name: EnvSessionIdleTimeout, Default: "1h", Usage: "ends client sessions unused for that long"},
		{Name: EnvMaxSessionsPerClient, Default: "100", Usage: "most client sessions (/mcp, /sse, /ws and the relay together) one client — one token subject — holds at once on an instance; at the limit its least recently used session without a call in flight (those without an open stream first) is ended to make room, and when all have calls in flight the new one is refused with 429; anonymous clients (AUTH_REQUIRED=false) are not limited per client, only by the per-instance cap of 10000 sessions per endpoint; 0 turns the limit off"},
		{Name: EnvMaxUpstreamSessions, Default: "1000", Usage: "most upstream sessions federation clients (/mcp, /sse, /ws) hold with one upstream at once on an instance: each client session opens its own with an upstream on its first call there, and ends it when it ends; beyond the limit such a call is answered with a JSON-RPC error naming this setting (the client's other upstreams go on); it also bounds the clients whose /rpc calls hold a session at once (the least recently used idle one makes room)"},
		{Name: EnvCatalogueRefreshInterval, Default: "5m", Usage: "re-lists every upstream's catalogue on its existing connection; 0 turns it off (an upstream's list_changed and POST /gateways/{id}/tools/refresh re-list it anyway)"},
		{Name: EnvShutdownTimeout, Default: "30s", Usage: "longest wait for in-flight calls at shutdown"},
		{Name: EnvRequestBodyTimeout, Default: "30s", Usage: "longest time a request body may take to arrive (408 after it); streams and WebSocket are not affected"},
		{Name: EnvRedisURL, Default: "(none)", Usage: "redis://HOST:PORT/DB: several instances share changes and sessions through Redis (needs PostgreSQL); without it a PostgreSQL deployment shares changes through LISTEN/NOTIFY"},
		{Name: EnvAllowedHosts, Default: "(none)", Usage: "comma-separated host names mcpgate is reached by (requests may use them in Host besides localhost, 127.0.0.1 and ::1 while listening on loopback, and pages under them count as mcpgate's own origin: DNS-rebinding protection; * allows any), and origins (scheme://host:port) of web pages that may call mcpgate besides its own origin"},
		{Name: EnvSSRFAllowLocalhost, Default: "true when HOST is a loopback address, else false", Usage: "lets upstream URLs and OAuth token URLs reach loopback addresses (127/8, ::1, 0.0.0.0); link-local (169.254/16, fe80::/10) and cloud metadata addresses are always refused"},
		{Name: EnvSSRFAllowPrivateNetworks, Default: "true when HOST is a loopback address, else false", Usage: "lets upstream URLs and OAuth token URLs reach private networks (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7)"},
		{Name: EnvSSRFAllowedNetworks, Default: "(none)", Usage: "comma-separated IP addresses or CIDR networks (10.1.2.0/24) upstreams may reach while the two settings above are false; never link-local or metadata addresses"},
		{Name: EnvSSRFProtectionEnabled, Default: "true", Usage: "false allows loopback and private addresses, as if both SSRF_ALLOW_* settings were true; link-local and metadata addresses stay refused"},
	}...)...)
}

func (s *sources) loadGateway() (Gateway, error) {
	g := Gateway{Host: "127.0.0.1", Port: 4444, DatabaseURL: "sqlite:///./mcpgate.db", UpstreamTimeout: 60 * time.Second,
		ToolNameSeparator: "-", LogLevel: slog.LevelInfo, SessionIdleTimeout: time.Hour, MaxSessionsPerClient: 100, MaxUpstreamSessionsPerUpstream: 1000,
		CatalogueRefreshInterval: 5 * time.Minute, ShutdownTimeout: 30 * time.Second, RequestBodyTimeout: DefaultRequestBodyTimeout}
	get := func(name string) (string, bool) {
		v, _, ok := s.lookup(name)
		return strings.TrimSpace(v), ok
	}
	if v, ok := get(EnvHost); ok {
		if strings.ContainsAny(v, " /") {
			return g, &passthrough.SettingError{Name: EnvHost, Value: v, Reason: "must be a host name or an IP address"}
		}
		g.Host = v
	}
	if v, ok := get(EnvPort); ok {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 65535 {
			return g, &passthrough.SettingError{Name: EnvPort, Value: v, Reason: "must be a port number, 0 to 65535 (0 picks a free one)"}
		}
		g.Port = p
	}
	if v, ok := get(EnvDatabaseURL); ok {
		if !strings.HasPrefix(v, "sqlite://") && !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") {
			return g, &passthrough.SettingError{Name: EnvDatabaseURL, Value: redactURL(v), Reason: "must start with sqlite:// or postgres://"}
		}
		g.DatabaseURL = v
	}
	if v, ok := get(EnvJWTSecretKey); ok {
		g.JWTSecretKey = v
	}
	jwt, err := loadJWT(get)
	if err != nil {
		return g, err
	}
	g.JWT = jwt
	if v, ok := get(EnvAuthEncryptionSecret); ok {
		g.AuthEncryptionSecret = v
	}
	if v, ok := get(EnvOldAuthEncryptionSecret); ok && v != "" {
		if g.AuthEncryptionSecret == "" {
			return g, &passthrough.SettingError{Name: EnvOldAuthEncryptionSecret, Value: "****",
				Reason: "is set but AUTH_ENCRYPTION_SECRET is not: set AUTH_ENCRYPTION_SECRET to the new secret, the one credentials are re-sealed under"}
		}
		g.OldAuthEncryptionSecret = v
	}
	if v, ok := get(EnvToolNameSeparator); ok {
		g.ToolNameSeparator = v
	}
	if v, ok := get(EnvLogLevel); ok {
		if err := g.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return g, &passthrough.SettingError{Name: EnvLogLevel, Value: v, Reason: "must be debug, info, warn or error"}
		}
	}
	if v, ok := get(EnvMaxSessionsPerClient); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return g, &passthrough.SettingError{Name: EnvMaxSessionsPerClient, Value: v, Reason: "must be a whole number of sessions, 0 or more (0: no limit per client)"}
		}
		g.MaxSessionsPerClient = n
	}
	if v, ok := get(EnvMaxUpstreamSessions); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return g, &passthrough.SettingError{Name: EnvMaxUpstreamSessions, Value: v, Reason: "must be a whole number of sessions, 1 or more"}
		}
		g.MaxUpstreamSessionsPerUpstream = n
	}
	if v, ok := get(EnvRedisURL); ok && v != "" {
		if !strings.HasPrefix(v, "redis://") && !strings.HasPrefix(v, "rediss://") {
			return g, &passthrough.SettingError{Name: EnvRedisURL, Value: redactURL(v), Reason: "must start with redis:// or rediss://"}
		}
		if strings.HasPrefix(g.DatabaseURL, "sqlite://") {
			return g, &passthrough.SettingError{Name: EnvRedisURL, Value: redactURL(v),
				Reason: "needs a database the instances share: set DATABASE_URL to a PostgreSQL URL (SQLite is for a single instance)"}
		}
		g.RedisURL = v
	}
	if v, ok := get(EnvAllowedHosts); ok {
		for _, h := range strings.Split(v, ",") {
			h = strings.ToLower(strings.TrimSpace(h))
			switch {
			case h == "":
				continue
			case strings.Contains(h, "://"):
				o := NormalizeOrigin(h)
				if o == "" {
					return g, &passthrough.SettingError{Name: EnvAllowedHosts, Value: v, Reason: fmt.Sprintf("%q is not an origin: write scheme://host or scheme://host:port, with scheme http or https and no path", h)}
				}
				g.AllowedOrigins = append(g.AllowedOrigins, o)
				continue
			case h != "*" && (strings.ContainsAny(h, "/:@ ") && net.ParseIP(strings.Trim(h, "[]")) == nil):
				return g, &passthrough.SettingError{Name: EnvAllowedHosts, Value: v, Reason: fmt.Sprintf("%q is not a host name: give names without port or path, or origins written scheme://host:port", h)}
			}
			g.AllowedHosts = append(g.AllowedHosts, strings.Trim(h, "[]"))
		}
	}
	local := loopbackHost(g.Host)
	g.Egress.AllowLoopback, g.Egress.AllowPrivate = local, local
	if v, ok := get(EnvSSRFProtectionEnabled); ok {
		on, err := passthrough.ParseBool(EnvSSRFProtectionEnabled, v)
		if err != nil {
			return g, err
		}
		if !on {
			g.Egress.AllowLoopback, g.Egress.AllowPrivate = true, true
		}
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{EnvSSRFAllowLocalhost, &g.Egress.AllowLoopback}, {EnvSSRFAllowPrivateNetworks, &g.Egress.AllowPrivate}} {
		if v, ok := get(b.name); ok {
			on, err := passthrough.ParseBool(b.name, v)
			if err != nil {
				return g, err
			}
			*b.dst = on
		}
	}
	if v, ok := get(EnvSSRFAllowedNetworks); ok {
		networks, err := parseNetworks(EnvSSRFAllowedNetworks, v)
		if err != nil {
			return g, err
		}
		for _, p := range networks {
			if p.Overlaps(linkLocal4) || p.Overlaps(linkLocal6) {
				return g, &passthrough.SettingError{Name: EnvSSRFAllowedNetworks, Value: v, Reason: fmt.Sprintf("%q includes link-local addresses (169.254.0.0/16, fe80::/10), where cloud metadata services live: mcpgate never connects there; to allow every private address set SSRF_ALLOW_PRIVATE_NETWORKS=true", p)}
			}
			g.Egress.Allowed = append(g.Egress.Allowed, p)
		}
	}
	for _, d := range []struct {
		name     string
		dst      *time.Duration
		zeroOK   bool
		accepted string
	}{
		{EnvUpstreamTimeout, &g.UpstreamTimeout, false, "more than 0"},
		{EnvSessionIdleTimeout, &g.SessionIdleTimeout, false, "more than 0"},
		{EnvCatalogueRefreshInterval, &g.CatalogueRefreshInterval, true, "0 or more"},
		{EnvShutdownTimeout, &g.ShutdownTimeout, true, "0 or more"},
		{EnvRequestBodyTimeout, &g.RequestBodyTimeout, false, "more than 0"},
	} {
		v, ok := get(d.name)
		if !ok {
			continue
		}
		dur, err := parseDuration(v)
		if err != nil || dur < 0 || (dur == 0 && !d.zeroOK) {
			return g, &passthrough.SettingError{Name: d.name, Value: v, Reason: "must be a number of seconds or a duration like 90s, " + d.accepted}
		}
		*d.dst = dur
	}
	if g.IdentityAssertion, err = loadIdentityAssertion(get); err != nil {
		return g, err
	}
	if g.Resource, err = s.loadResource(); err != nil {
		return g, err
	}
	return g, nil
}

// parseDuration reads seconds ("90", "1.5") or a Go duration ("90s", "2m").
func parseDuration(v string) (time.Duration, error) {
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if !(secs >= 0 && secs < 1e9) {
			return 0, fmt.Errorf("out of range")
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	return time.ParseDuration(v)
}

// redactURL hides a password in a database URL for messages.
func redactURL(v string) string {
	if at := strings.LastIndex(v, "@"); at > 0 {
		if colon := strings.Index(v[:at], "://"); colon >= 0 {
			return v[:colon+3] + "…" + v[at:]
		}
	}
	return v
}

// The link-local networks, which SSRF_ALLOWED_NETWORKS may not name.
var (
	linkLocal4 = netip.MustParsePrefix("169.254.0.0/16")
	linkLocal6 = netip.MustParsePrefix("fe80::/10")
)

// loopbackHost reports whether host (HOST) is a loopback address or
// localhost: mcpgate then serves this machine only.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.Unmap().IsLoopback()
}

// NormalizeOrigin returns a browser origin (RFC 6454) as mcpgate compares
// origins: scheme and host in lower case, the port left out when it is the
// scheme's default. It returns "" for anything but an http or https origin
// without path, query or user information.
func NormalizeOrigin(origin string) string {
	u, err := url.Parse(strings.TrimSpace(origin))
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	def := map[string]string{"http": "80", "https": "443"}[scheme]
	if def == "" {
		return ""
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" || strings.ContainsAny(host, "/@ ") {
		return ""
	}
	if port == "" || port == def {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		return scheme + "://" + host + ":" + port
	}
	return scheme + "://" + host
}

// Addr is the address to listen on.
func (g Gateway) Addr() string { return net.JoinHostPort(g.Host, strconv.Itoa(g.Port)) }
