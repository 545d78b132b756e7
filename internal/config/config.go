// Package config loads mcpgate's configuration from command-line flags, the
// process environment and a .env file.
//
// It does the I/O the pure passthrough package must not do. Every setting is
// read through one layered lookup, highest precedence first:
//
//  1. a flag set on the command line (--enable-header-passthrough=true);
//  2. the process environment (ENABLE_HEADER_PASSTHROUGH=true);
//  3. the .env file (see [DefaultEnvFile]);
//  4. the default.
//
// A layer whose value is empty or blank does not decide: the next one is
// asked. This follows passthrough.ParseSettings, where an empty value keeps
// the default; an empty list is written "[]".
package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/mcpgate/mcpgate/passthrough"
)

// Config is mcpgate's configuration. It is built once, in cmd, and passed
// down as a value.
type Config struct {
	// Passthrough holds the header passthrough settings (spec §1). Its
	// AuthenticatesClients is AuthRequired.
	Passthrough passthrough.Settings
	// AuthRequired (AUTH_REQUIRED) says whether clients must authenticate
	// to mcpgate, with the AUTH_HEADER_NAME header.
	AuthRequired bool
	// Gateway holds the settings of `mcpgate serve`.
	Gateway Gateway
	// EnvFile is the .env file that was read, or "" when none was.
	EnvFile string
}

// Names of the settings this package adds to passthrough's.
const (
	// EnvAuthRequired is AUTH_REQUIRED, true unless switched off.
	EnvAuthRequired = "AUTH_REQUIRED"
	// EnvEnvFile names the .env file to read instead of DefaultEnvFile. It
	// is read from the environment only; the flag is --env-file.
	EnvEnvFile = "MCPGATE_ENV_FILE"
)

// DefaultEnvFile is the .env file read when none is named, relative to the
// working directory. It may be missing; a file named with --env-file or
// MCPGATE_ENV_FILE may not.
const DefaultEnvFile = ".env"

// Load reads the configuration. fs holds the flags of RegisterFlags, already
// parsed (nil: no flags); only flags set on the command line count. environ
// reads the process environment (os.LookupEnv in the gateway; nil reads
// nothing).
//
// An unusable value is an error wrapping a *passthrough.SettingError, which
// names the setting and what it accepts; the message also says where the
// value came from.
func Load(fs *flag.FlagSet, environ passthrough.Lookup) (Config, error) {
	if environ == nil {
		environ = func(string) (string, bool) { return "", false }
	}
	src := &sources{flags: setFlags(fs), environ: environ}
	if err := src.readEnvFile(); err != nil {
		return Config{}, err
	}

	settings, err := passthrough.ParseSettings(func(name string) (string, bool) {
		v, _, ok := src.lookup(name)
		return v, ok
	})
	if err != nil {
		return Config{}, src.locate(err)
	}
	authRequired := true
	if v, _, ok := src.lookup(EnvAuthRequired); ok {
		if authRequired, err = passthrough.ParseBool(EnvAuthRequired, v); err != nil {
			return Config{}, src.locate(err)
		}
	}
	settings.AuthenticatesClients = authRequired
	gateway, err := src.loadGateway()
	if err != nil {
		return Config{}, src.locate(err)
	}
	if gateway.Access, err = src.loadAccess(authRequired); err != nil {
		return Config{}, src.locate(err)
	}
	return Config{Passthrough: settings, AuthRequired: authRequired, Gateway: gateway, EnvFile: src.envFile}, nil
}

// sources are the layers settings are read from.
type sources struct {
	flags   map[string]string // environment name (or flagEnvFile) -> value of a flag set on the command line
	environ passthrough.Lookup
	dotenv  map[string]dotenvEntry
	envFile string // the .env file read, or ""
}

// lookup returns the value of the named setting from the first layer that
// has a non-blank one, and says where it came from.
func (s *sources) lookup(name string) (value, origin string, ok bool) {
	if v, ok := s.flags[name]; ok && strings.TrimSpace(v) != "" {
		return v, "flag --" + FlagName(name), true
	}
	if v, ok := s.environ(name); ok && strings.TrimSpace(v) != "" {
		return v, "the environment", true
	}
	if e, ok := s.dotenv[name]; ok && strings.TrimSpace(e.value) != "" {
		return e.value, fmt.Sprintf("%s line %d", s.envFile, e.line), true
	}
	return "", "", false
}

// locate adds to a setting error where the bad value came from.
func (s *sources) locate(err error) error {
	var se *passthrough.SettingError
	if errors.As(err, &se) {
		if _, origin, ok := s.lookup(se.Name); ok {
			return fmt.Errorf("%w (from %s)", err, origin)
		}
	}
	return err
}

// readEnvFile reads the .env file named by --env-file, else by
// MCPGATE_ENV_FILE, else DefaultEnvFile if it exists.
func (s *sources) readEnvFile() error {
	path, origin := s.flags[flagEnvFile], "flag --"+flagEnvFile
	if strings.TrimSpace(path) == "" {
		path, _ = s.environ(EnvEnvFile)
		origin = EnvEnvFile
	}
	explicit := strings.TrimSpace(path) != ""
	if !explicit {
		path = DefaultEnvFile
	}
	f, err := os.Open(path)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if explicit {
			return fmt.Errorf("env file from %s: %w", origin, err)
		}
		return fmt.Errorf("env file: %w", err)
	}
	defer f.Close()
	entries, err := parseDotenv(path, f)
	if err != nil {
		return err
	}
	s.dotenv = make(map[string]dotenvEntry, len(entries))
	for _, e := range entries {
		s.dotenv[e.key] = e // a repeated key: the later line wins
	}
	s.envFile = path
	return nil
}
