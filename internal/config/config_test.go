package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/passthrough"
)

// parsedFlags returns a flag set with the config flags, parsed from args.
func parsedFlags(t *testing.T, args ...string) *flag.FlagSet {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return fs
}

// environ returns a lookup over vars, standing in for the process environment.
func environ(vars map[string]string) passthrough.Lookup {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// writeEnvFile writes a .env file into a fresh directory and returns its path.
func writeEnvFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.env")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFlagBeatsEnvironmentBeatsEnvFileBeatsDefault(t *testing.T) {
	const name = passthrough.EnvPassthroughHeadersSource
	file := writeEnvFile(t, name+"=merge\n")
	empty := writeEnvFile(t, "")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		envFile string
		want    passthrough.Source
	}{
		{"flag wins over all", []string{"--passthrough-headers-source=env"}, map[string]string{name: "db"}, file, passthrough.SourceEnv},
		{"environment wins over .env", nil, map[string]string{name: "env"}, file, passthrough.SourceEnv},
		{".env wins over default", nil, nil, file, passthrough.SourceMerge},
		{"default when nothing is set", nil, nil, empty, passthrough.SourceDB},
		{"blank environment value does not decide", nil, map[string]string{name: "  "}, file, passthrough.SourceMerge},
		{"empty flag does not decide", []string{"--passthrough-headers-source="}, map[string]string{name: "env"}, file, passthrough.SourceEnv},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{EnvEnvFile: tt.envFile}
			for k, v := range tt.env {
				vars[k] = v
			}
			cfg, err := Load(parsedFlags(t, tt.args...), environ(vars))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Passthrough.Source != tt.want {
				t.Errorf("Source = %q, want %q", cfg.Passthrough.Source, tt.want)
			}
		})
	}
}

func TestUnsetFlagsDoNotOverride(t *testing.T) {
	// The flags are registered with their defaults ("false"), but only
	// flags given on the command line count.
	cfg, err := Load(parsedFlags(t), environ(map[string]string{
		EnvEnvFile:                             writeEnvFile(t, ""),
		passthrough.EnvEnableHeaderPassthrough: "true",
		passthrough.EnvGlobalConfigCacheTTL:    "5",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Passthrough.EnableHeaderPassthrough || cfg.Passthrough.GlobalConfigCacheTTL != 5*time.Second {
		t.Errorf("got %+v, want the environment's values", cfg.Passthrough)
	}
}

func TestEveryFlagSetsItsSetting(t *testing.T) {
	fs := parsedFlags(t,
		"--enable-header-passthrough", // a boolean flag may be given alone
		"--enable-overwrite-base-headers=yes",
		"--default-passthrough-headers=X-A,X-B",
		"--passthrough-headers-source=MERGE",
		"--global-config-cache-ttl=1.5",
		"--proxy-user-header=X-User",
		"--auth-header-name=X-Api-Key",
		"--auth-required=off",
	)
	cfg, err := Load(fs, environ(map[string]string{EnvEnvFile: writeEnvFile(t, "")}))
	if err != nil {
		t.Fatal(err)
	}
	want := passthrough.Settings{
		EnableHeaderPassthrough:    true,
		EnableOverwriteBaseHeaders: true,
		DefaultPassthroughHeaders:  []string{"X-A", "X-B"},
		Source:                     passthrough.SourceMerge,
		GlobalConfigCacheTTL:       1500 * time.Millisecond,
		ProxyUserHeader:            "X-User",
		AuthHeaderName:             "X-Api-Key",
		AuthenticatesClients:       false,
	}
	if !reflect.DeepEqual(cfg.Passthrough, want) {
		t.Errorf("Passthrough =\n%+v, want\n%+v", cfg.Passthrough, want)
	}
	if cfg.AuthRequired {
		t.Error("AuthRequired = true, want false")
	}
}

func TestFlagNamesFollowEnvironmentNames(t *testing.T) {
	fs := parsedFlags(t)
	for _, d := range SettingDocs() {
		f := fs.Lookup(FlagName(d.Name))
		if f == nil {
			t.Errorf("no flag for %s", d.Name)
			continue
		}
		if f.DefValue != d.Default {
			t.Errorf("--%s default = %q, want %q", f.Name, f.DefValue, d.Default)
		}
	}
	if got := FlagName(passthrough.EnvDefaultPassthroughHeaders); got != "default-passthrough-headers" {
		t.Errorf("FlagName = %q", got)
	}
}

func TestDefaultPassthroughHeadersAcceptsJSONArrayAndCommaList(t *testing.T) {
	const name = passthrough.EnvDefaultPassthroughHeaders
	tests := []struct {
		name   string
		env    string // in the environment, when not ""
		dotenv string // line of the .env file
		want   []string
	}{
		{"JSON array from environment", `["X-A", "X-B"]`, "", []string{"X-A", "X-B"}},
		{"comma list from environment", " X-A, ,X-B ", "", []string{"X-A", "X-B"}},
		{"empty JSON array from environment", `[]`, "", []string{}},
		{"JSON array from .env", "", name + `=["X-A","X-B"]`, []string{"X-A", "X-B"}},
		{"quoted JSON array from .env", "", name + `='["X-A", "X-B"]'`, []string{"X-A", "X-B"}},
		{"comma list from .env", "", "export " + name + "=X-A,X-B # tenant and trace", []string{"X-A", "X-B"}},
		{"double-quoted comma list from .env", "", name + `="X-A, X-B"`, []string{"X-A", "X-B"}},
		{"default when unset", "", "", []string{"X-Tenant-Id", "X-Trace-Id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{EnvEnvFile: writeEnvFile(t, tt.dotenv+"\n")}
			if tt.env != "" {
				vars[name] = tt.env
			}
			cfg, err := Load(parsedFlags(t), environ(vars))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Passthrough.DefaultPassthroughHeaders; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DefaultPassthroughHeaders = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUnusableValueNamesSettingWhatItAcceptsAndWhere(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		dotenv  string
		setting string
		want    []string // substrings of the message
	}{
		{"source from environment", nil, map[string]string{passthrough.EnvPassthroughHeadersSource: "database"}, "",
			passthrough.EnvPassthroughHeadersSource, []string{"PASSTHROUGH_HEADERS_SOURCE", `"database"`, "env, db, merge", "the environment"}},
		{"source from flag", []string{"--passthrough-headers-source=both"}, nil, "",
			passthrough.EnvPassthroughHeadersSource, []string{"PASSTHROUGH_HEADERS_SOURCE", "env, db, merge", "flag --passthrough-headers-source"}},
		{"source from .env", nil, nil, "# settings\nPASSTHROUGH_HEADERS_SOURCE=redis\n",
			passthrough.EnvPassthroughHeadersSource, []string{"PASSTHROUGH_HEADERS_SOURCE", "env, db, merge", "test.env line 2"}},
		{"switch", nil, map[string]string{passthrough.EnvEnableHeaderPassthrough: "maybe"}, "",
			passthrough.EnvEnableHeaderPassthrough, []string{"ENABLE_HEADER_PASSTHROUGH", "true or false"}},
		{"auth required", nil, map[string]string{EnvAuthRequired: "sometimes"}, "",
			EnvAuthRequired, []string{"AUTH_REQUIRED", `"sometimes"`, "true or false", "yes/no"}},
		{"credential header that goes upstream", nil, map[string]string{passthrough.EnvAuthHeaderName: "X-Upstream-Authorization"}, "",
			passthrough.EnvAuthHeaderName, []string{"AUTH_HEADER_NAME", `"X-Upstream-Authorization"`, "sent to upstreams", "the environment"}},
		{"identity header reserved for upstream credentials", nil, nil, "PROXY_USER_HEADER=X-Upstream-Authorization-Crm\n",
			passthrough.EnvProxyUserHeader, []string{"PROXY_USER_HEADER", "reserved", "test.env line 1"}},
		{"bad JSON list", []string{`--default-passthrough-headers=["X-A",`}, nil, "",
			passthrough.EnvDefaultPassthroughHeaders, []string{"DEFAULT_PASSTHROUGH_HEADERS", "JSON array", "comma list"}},
		{"redis scheme", nil, map[string]string{EnvDatabaseURL: "postgres://db/mcp", EnvRedisURL: "http://cache:6379"}, "",
			EnvRedisURL, []string{"REDIS_URL", "redis://"}},
		{"redis without a shared database", nil, map[string]string{EnvRedisURL: "redis://:s3cret@cache:6379/0"}, "",
			EnvRedisURL, []string{"REDIS_URL", "PostgreSQL", "single instance"}},
		{"egress switch", nil, map[string]string{EnvSSRFAllowPrivateNetworks: "local"}, "",
			EnvSSRFAllowPrivateNetworks, []string{"SSRF_ALLOW_PRIVATE_NETWORKS", "true or false"}},
		{"egress localhost switch", nil, map[string]string{EnvSSRFAllowLocalhost: "local"}, "",
			EnvSSRFAllowLocalhost, []string{"SSRF_ALLOW_LOCALHOST", "true or false"}},
		{"egress protection switch", nil, map[string]string{EnvSSRFProtectionEnabled: "off-ish"}, "",
			EnvSSRFProtectionEnabled, []string{"SSRF_PROTECTION_ENABLED", "true or false"}},
		{"egress network", nil, map[string]string{EnvSSRFAllowedNetworks: "10.0.0.0/8,intranet"}, "",
			EnvSSRFAllowedNetworks, []string{"SSRF_ALLOWED_NETWORKS", `"intranet"`, "CIDR"}},
		{"egress link-local", []string{"--ssrf-allowed-networks=169.254.169.254/32"}, nil, "",
			EnvSSRFAllowedNetworks, []string{"SSRF_ALLOWED_NETWORKS", "link-local", "SSRF_ALLOW_PRIVATE_NETWORKS=true", "flag --ssrf-allowed-networks"}},
		{"egress everything", nil, map[string]string{EnvSSRFAllowedNetworks: "0.0.0.0/0"}, "",
			EnvSSRFAllowedNetworks, []string{"SSRF_ALLOWED_NETWORKS", "link-local"}},
		{"allowed host with a port", nil, map[string]string{EnvAllowedHosts: "gw.example:8443"}, "",
			EnvAllowedHosts, []string{"ALLOWED_HOSTS", "without port", "scheme://host:port"}},
		{"allowed origin with a path", nil, map[string]string{EnvAllowedHosts: "https://gw.example/app"}, "",
			EnvAllowedHosts, []string{"ALLOWED_HOSTS", "not an origin", "no path"}},
		{"allowed origin of another scheme", nil, map[string]string{EnvAllowedHosts: "ftp://gw.example"}, "",
			EnvAllowedHosts, []string{"ALLOWED_HOSTS", "not an origin", "http or https"}},
		{"default passthrough list too long", nil, map[string]string{passthrough.EnvDefaultPassthroughHeaders: manyNames(passthrough.MaxAllowlistNames + 1)}, "",
			passthrough.EnvDefaultPassthroughHeaders, []string{"DEFAULT_PASSTHROUGH_HEADERS", "101 names", "at most 100"}},
		{"default passthrough name too long", nil, map[string]string{passthrough.EnvDefaultPassthroughHeaders: "X-Ok," + strings.Repeat("A", passthrough.MaxNameLength+1)}, "",
			passthrough.EnvDefaultPassthroughHeaders, []string{"DEFAULT_PASSTHROUGH_HEADERS", "entry 1", "at most 256 bytes"}},
		{"negative sessions per client", nil, map[string]string{EnvMaxSessionsPerClient: "-1"}, "",
			EnvMaxSessionsPerClient, []string{"MAX_SESSIONS_PER_CLIENT", `"-1"`, "0 or more"}},
		{"sessions per client not a number", nil, map[string]string{EnvMaxSessionsPerClient: "lots"}, "",
			EnvMaxSessionsPerClient, []string{"MAX_SESSIONS_PER_CLIENT", "whole number"}},
		{"no upstream sessions per upstream", nil, map[string]string{EnvMaxUpstreamSessions: "0"}, "",
			EnvMaxUpstreamSessions, []string{"MAX_UPSTREAM_SESSIONS_PER_UPSTREAM", `"0"`, "1 or more"}},
		{"upstream sessions per upstream not a number", nil, map[string]string{EnvMaxUpstreamSessions: "many"}, "",
			EnvMaxUpstreamSessions, []string{"MAX_UPSTREAM_SESSIONS_PER_UPSTREAM", "whole number"}},
		{"old encryption secret without a current one", nil, map[string]string{EnvOldAuthEncryptionSecret: "the-0ld-secret"}, "",
			EnvOldAuthEncryptionSecret, []string{"OLD_AUTH_ENCRYPTION_SECRET", "AUTH_ENCRYPTION_SECRET is not", "re-sealed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{EnvEnvFile: writeEnvFile(t, tt.dotenv)}
			for k, v := range tt.env {
				vars[k] = v
			}
			_, err := Load(parsedFlags(t, tt.args...), environ(vars))
			var se *passthrough.SettingError
			if !errors.As(err, &se) {
				t.Fatalf("error = %v, want a *passthrough.SettingError", err)
			}
			if se.Name != tt.setting {
				t.Errorf("setting = %s, want %s", se.Name, tt.setting)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "the-0ld-secret") {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

// TestOldAuthEncryptionSecretIsRead: the secret being rotated away from is
// kept beside the current one, for the Sealer to open with.
func TestOldAuthEncryptionSecretIsRead(t *testing.T) {
	cfg, err := Load(parsedFlags(t), environ(map[string]string{EnvEnvFile: writeEnvFile(t, ""),
		EnvAuthEncryptionSecret: "new-secret", EnvOldAuthEncryptionSecret: " old-secret "}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Gateway.AuthEncryptionSecret != "new-secret" || cfg.Gateway.OldAuthEncryptionSecret != "old-secret" {
		t.Errorf("secrets = %q, %q; want new-secret, old-secret", cfg.Gateway.AuthEncryptionSecret, cfg.Gateway.OldAuthEncryptionSecret)
	}
}

// TestEgressFollowsTheListener: unset, loopback and private upstreams are
// allowed when mcpgate listens on a loopback address (local use) and
// refused otherwise; ContextForge's SSRF_* settings, when set, decide.
func TestEgressFollowsTheListener(t *testing.T) {
	for _, tc := range []struct {
		host                        string
		enabled, localhost, private string // "" leaves it unset
		wantLoopback, wantPrivate   bool
	}{
		{"", "", "", "", true, true}, // HOST defaults to 127.0.0.1
		{"127.0.0.1", "", "", "", true, true},
		{"localhost", "", "", "", true, true},
		{"::1", "", "", "", true, true},
		{"0.0.0.0", "", "", "", false, false},
		{"10.1.2.3", "", "", "", false, false},
		{"gw.example.com", "", "", "", false, false},
		{"0.0.0.0", "", "", "true", false, true},
		{"0.0.0.0", "", "true", "", true, false},
		{"127.0.0.1", "", "false", "false", false, false},
		{"0.0.0.0", "false", "", "", true, true},
		{"0.0.0.0", "false", "false", "", false, true}, // the specific setting wins
		{"0.0.0.0", "true", "", "", false, false},
	} {
		vars := map[string]string{EnvEnvFile: writeEnvFile(t, ""), EnvHost: tc.host,
			EnvSSRFProtectionEnabled: tc.enabled, EnvSSRFAllowLocalhost: tc.localhost, EnvSSRFAllowPrivateNetworks: tc.private}
		cfg, err := Load(nil, environ(vars))
		if err != nil {
			t.Fatal(err)
		}
		if e := cfg.Gateway.Egress; e.AllowLoopback != tc.wantLoopback || e.AllowPrivate != tc.wantPrivate {
			t.Errorf("HOST=%q SSRF_PROTECTION_ENABLED=%q SSRF_ALLOW_LOCALHOST=%q SSRF_ALLOW_PRIVATE_NETWORKS=%q: loopback %v private %v, want %v %v",
				tc.host, tc.enabled, tc.localhost, tc.private, e.AllowLoopback, e.AllowPrivate, tc.wantLoopback, tc.wantPrivate)
		}
	}
	cfg, err := Load(nil, environ(map[string]string{EnvEnvFile: writeEnvFile(t, ""), EnvSSRFAllowedNetworks: " 10.1.2.0/24, 192.168.1.7 ,fd00::1"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(cfg.Gateway.Egress.Allowed); got != "[10.1.2.0/24 192.168.1.7/32 fd00::1/128]" {
		t.Errorf("SSRF_ALLOWED_NETWORKS = %s", got)
	}
}

func TestAuthRequiredSetsAuthenticatesClients(t *testing.T) {
	tests := []struct {
		value string // "" leaves it unset
		want  bool
	}{
		{"", true}, {"true", true}, {"TRUE", true}, {"1", true}, {"yes", true}, {"On", true},
		{"false", false}, {"False", false}, {"0", false}, {"no", false}, {"OFF", false},
	}
	for _, tt := range tests {
		t.Run("AUTH_REQUIRED="+tt.value, func(t *testing.T) {
			vars := map[string]string{EnvEnvFile: writeEnvFile(t, "")}
			if tt.value != "" {
				vars[EnvAuthRequired] = tt.value
			}
			cfg, err := Load(parsedFlags(t), environ(vars))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.AuthRequired != tt.want || cfg.Passthrough.AuthenticatesClients != tt.want {
				t.Errorf("AuthRequired = %v, AuthenticatesClients = %v, want %v",
					cfg.AuthRequired, cfg.Passthrough.AuthenticatesClients, tt.want)
			}
		})
	}
}

func TestExplicitEnvFileMustExist(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.env")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"named by flag", []string{"--env-file=" + missing}, nil, "flag --env-file"},
		{"named by environment", nil, map[string]string{EnvEnvFile: missing}, EnvEnvFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(parsedFlags(t, tt.args...), environ(tt.env))
			if !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("error = %v, want one wrapping os.ErrNotExist", err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), missing) {
				t.Errorf("error %q does not name %q and the file", err, tt.want)
			}
		})
	}
}

func TestEnvFileFlagBeatsEnvironment(t *testing.T) {
	byFlag := writeEnvFile(t, "PASSTHROUGH_HEADERS_SOURCE=env\n")
	byEnv := writeEnvFile(t, "PASSTHROUGH_HEADERS_SOURCE=merge\n")
	cfg, err := Load(parsedFlags(t, "--env-file", byFlag), environ(map[string]string{EnvEnvFile: byEnv}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EnvFile != byFlag || cfg.Passthrough.Source != passthrough.SourceEnv {
		t.Errorf("EnvFile = %q, Source = %q; want %q, env", cfg.EnvFile, cfg.Passthrough.Source, byFlag)
	}
}

// The two tests below change the working directory, where the default .env
// file is looked for; t.Chdir restores it and keeps them from running in parallel.

func TestMissingDefaultEnvFileIsNotAnError(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg, err := Load(parsedFlags(t), environ(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EnvFile != "" {
		t.Errorf("EnvFile = %q, want none", cfg.EnvFile)
	}
	if !reflect.DeepEqual(cfg.Passthrough, passthrough.DefaultSettings()) {
		t.Errorf("Passthrough = %+v, want the defaults", cfg.Passthrough)
	}
}

func TestDefaultEnvFileIsRead(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, DefaultEnvFile), []byte("ENABLE_HEADER_PASSTHROUGH=true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	cfg, err := Load(nil, environ(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EnvFile != DefaultEnvFile || !cfg.Passthrough.EnableHeaderPassthrough {
		t.Errorf("EnvFile = %q, EnableHeaderPassthrough = %v; want %q, true", cfg.EnvFile, cfg.Passthrough.EnableHeaderPassthrough, DefaultEnvFile)
	}
}

func TestMalformedEnvFileNamesTheLine(t *testing.T) {
	path := writeEnvFile(t, "A=1\n\nthis is not a setting\n")
	_, err := Load(nil, environ(map[string]string{EnvEnvFile: path}))
	if err == nil || !strings.Contains(err.Error(), "parse "+path+" line 3:") {
		t.Fatalf("error = %v, want one naming %s line 3", err, path)
	}
}

func TestRepeatedEnvFileKeyLaterWins(t *testing.T) {
	path := writeEnvFile(t, "PASSTHROUGH_HEADERS_SOURCE=env\nPASSTHROUGH_HEADERS_SOURCE=merge\n")
	cfg, err := Load(nil, environ(map[string]string{EnvEnvFile: path}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Passthrough.Source != passthrough.SourceMerge {
		t.Errorf("Source = %q, want merge", cfg.Passthrough.Source)
	}
}

// manyNames is a comma list of n distinct header names.
func manyNames(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("X-H%d", i)
	}
	return strings.Join(names, ",")
}

// TestAllowedHostsTakesOrigins: ALLOWED_HOSTS entries written as origins
// become allowed origins, in the form the Origin check compares.
func TestAllowedHostsTakesOrigins(t *testing.T) {
	cfg, err := Load(nil, func(name string) (string, bool) {
		if name == EnvAllowedHosts {
			return "gw.internal, HTTPS://App.Example:443, http://localhost:6274, http://[::1]:80", true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Gateway.AllowedHosts, []string{"gw.internal"}; !slices.Equal(got, want) {
		t.Errorf("AllowedHosts = %q, want %q", got, want)
	}
	if got, want := cfg.Gateway.AllowedOrigins, []string{"https://app.example", "http://localhost:6274", "http://[::1]"}; !slices.Equal(got, want) {
		t.Errorf("AllowedOrigins = %q, want %q", got, want)
	}
}
