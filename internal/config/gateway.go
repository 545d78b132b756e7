package config

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

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
	// AuthEncryptionSecret (AUTH_ENCRYPTION_SECRET) encrypts upstream
	// credentials at rest.
	AuthEncryptionSecret string
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
	// makes room. 0 turns the bound off.
	MaxSessionsPerClient int
	// CatalogueRefreshInterval (CATALOGUE_REFRESH_INTERVAL) re-reads every
	// upstream's catalogue; 0 only on list_changed and on request.
	CatalogueRefreshInterval time.Duration
	// ShutdownTimeout (SHUTDOWN_TIMEOUT) bounds the wait for in-flight
	// calls on SIGINT or SIGTERM.
	ShutdownTimeout time.Duration
	// AllowedHosts (ALLOWED_HOSTS) are the host names, lower case, that
	// requests may name in Host and Origin besides the loopback names, when
	// mcpgate listens on a loopback address (DNS-rebinding protection, MCP
	// basic/transports "Security Warning"). "*" turns the check off.
	AllowedHosts []string
	// RedisURL (REDIS_URL), redis://… or rediss://…, turns on
	// multi-instance mode: changes and session messages travel between
	// instances through Redis. It needs PostgreSQL as the database.
	RedisURL string
}

// Gateway setting names.
const (
	EnvHost                     = "HOST"
	EnvPort                     = "PORT"
	EnvDatabaseURL              = "DATABASE_URL"
	EnvJWTSecretKey             = "JWT_SECRET_KEY"
	EnvAuthEncryptionSecret     = "AUTH_ENCRYPTION_SECRET"
	EnvUpstreamTimeout          = "UPSTREAM_TIMEOUT"
	EnvToolNameSeparator        = "GATEWAY_TOOL_NAME_SEPARATOR"
	EnvLogLevel                 = "LOG_LEVEL"
	EnvSessionIdleTimeout       = "SESSION_IDLE_TIMEOUT"
	EnvMaxSessionsPerClient     = "MAX_SESSIONS_PER_CLIENT"
	EnvCatalogueRefreshInterval = "CATALOGUE_REFRESH_INTERVAL"
	EnvShutdownTimeout          = "SHUTDOWN_TIMEOUT"
	EnvAllowedHosts             = "ALLOWED_HOSTS"
	EnvRedisURL                 = "REDIS_URL"
)

// gatewayDocs documents the gateway settings; secrets have no default.
func gatewayDocs() []passthrough.SettingDoc {
	return []passthrough.SettingDoc{
		{Name: EnvHost, Default: "127.0.0.1", Usage: "address to listen on"},
		{Name: EnvPort, Default: "4444", Usage: "port to listen on"},
		{Name: EnvDatabaseURL, Default: "sqlite:///./mcpgate.db", Usage: "sqlite:///PATH or postgres://USER@HOST/DB"},
		{Name: EnvJWTSecretKey, Default: "(none)", Usage: "HS256 key for client tokens, 32 bytes or more; required while AUTH_REQUIRED is true"},
		{Name: EnvAuthEncryptionSecret, Default: "(none)", Usage: "encrypts upstream credentials at rest; required to register an upstream with credentials"},
		{Name: EnvUpstreamTimeout, Default: "60s", Usage: "longest wait for an upstream's answer (seconds or a duration like 90s)"},
		{Name: EnvToolNameSeparator, Default: "-", Usage: "joins an upstream's name and its tool and prompt names"},
		{Name: EnvLogLevel, Default: "info", Usage: "debug, info, warn or error (JSON logs on stderr)"},
		{Name: EnvSessionIdleTimeout, Default: "1h", Usage: "ends client sessions unused for that long"},
		{Name: EnvMaxSessionsPerClient, Default: "100", Usage: "most client sessions (/mcp, /sse, /ws and the relay together) one client — one token subject; every client alike when AUTH_REQUIRED is false — holds at once on an instance; at the limit its least recently used session without a call in flight is ended to make room, and when all have calls in flight the new one is refused with 429; 0 turns the limit off"},
		{Name: EnvCatalogueRefreshInterval, Default: "5m", Usage: "re-reads every upstream's catalogue; 0 turns it off"},
		{Name: EnvShutdownTimeout, Default: "30s", Usage: "longest wait for in-flight calls at shutdown"},
		{Name: EnvRedisURL, Default: "(none)", Usage: "redis://HOST:PORT/DB: several instances share changes and sessions through Redis (needs PostgreSQL); without it a PostgreSQL deployment shares changes through LISTEN/NOTIFY"},
		{Name: EnvAllowedHosts, Default: "(none)", Usage: "comma-separated host names requests may use in Host and Origin besides localhost, 127.0.0.1 and ::1, while listening on loopback (DNS-rebinding protection); * allows any"},
	}
}

func (s *sources) loadGateway() (Gateway, error) {
	g := Gateway{Host: "127.0.0.1", Port: 4444, DatabaseURL: "sqlite:///./mcpgate.db", UpstreamTimeout: 60 * time.Second,
		ToolNameSeparator: "-", LogLevel: slog.LevelInfo, SessionIdleTimeout: time.Hour, MaxSessionsPerClient: 100,
		CatalogueRefreshInterval: 5 * time.Minute, ShutdownTimeout: 30 * time.Second}
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
	if v, ok := get(EnvAuthEncryptionSecret); ok {
		g.AuthEncryptionSecret = v
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
			case h != "*" && (strings.ContainsAny(h, "/:@ ") && net.ParseIP(strings.Trim(h, "[]")) == nil):
				return g, &passthrough.SettingError{Name: EnvAllowedHosts, Value: v, Reason: fmt.Sprintf("%q is not a host name: give names only, without scheme, port or path", h)}
			}
			g.AllowedHosts = append(g.AllowedHosts, strings.Trim(h, "[]"))
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

// Addr is the address to listen on.
func (g Gateway) Addr() string { return net.JoinHostPort(g.Host, strconv.Itoa(g.Port)) }
