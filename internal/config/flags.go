package config

import (
	"flag"
	"strings"

	"github.com/mcpgate/mcpgate/passthrough"
)

// flagEnvFile is the flag naming the .env file (MCPGATE_ENV_FILE).
const flagEnvFile = "env-file"

// SettingDocs lists every setting Load reads, for flags and help texts: the
// passthrough settings in the order of spec §1, then AUTH_REQUIRED, then the
// gateway's.
func SettingDocs() []passthrough.SettingDoc {
	docs := append(passthrough.SettingDocs(), passthrough.SettingDoc{
		Name:    EnvAuthRequired,
		Default: "true",
		Usage:   "clients must authenticate to mcpgate with AUTH_HEADER_NAME, which is then never forwarded",
		Bool:    true,
	})
	return append(append(append(append(docs, gatewayDocs()...), accessDocs()...), identityAssertionDocs()...), resourceDocs()...)
}

// FlagName returns the command-line flag of a setting: its environment name
// in lower case with "_" turned into "-" (ENABLE_HEADER_PASSTHROUGH is
// --enable-header-passthrough).
func FlagName(env string) string {
	return strings.ReplaceAll(strings.ToLower(env), "_", "-")
}

// RegisterFlags adds to fs one flag per setting of SettingDocs, and
// --env-file. Values are checked by Load, not while parsing, so an unusable
// one is reported like any other. A switch (SettingDoc.Bool) is a boolean
// flag: given alone, --enable-header-passthrough means true.
func RegisterFlags(fs *flag.FlagSet) {
	for _, d := range SettingDocs() {
		v := &settingValue{value: d.Default, boolean: d.Bool}
		fs.Var(v, FlagName(d.Name), d.Usage+" (env "+d.Name+")")
	}
	fs.String(flagEnvFile, "", "the .env file to read; it must exist (env "+EnvEnvFile+", default "+DefaultEnvFile+" if it exists)")
}

// setFlags returns the values of the setting flags set on the command line,
// by environment name.
func setFlags(fs *flag.FlagSet) map[string]string {
	set := make(map[string]string)
	if fs == nil {
		return set
	}
	byFlag := make(map[string]string)
	for _, d := range SettingDocs() {
		byFlag[FlagName(d.Name)] = d.Name
	}
	byFlag[flagEnvFile] = flagEnvFile
	fs.Visit(func(f *flag.Flag) {
		if name, ok := byFlag[f.Name]; ok {
			set[name] = f.Value.String()
		}
	})
	return set
}

// settingValue is a setting flag's value, kept as text for Load to parse.
// Before the flag is set it holds the default, for help texts.
type settingValue struct {
	value   string
	boolean bool
}

func (v *settingValue) String() string {
	if v == nil {
		return ""
	}
	return v.value
}

func (v *settingValue) Set(s string) error {
	v.value = s
	return nil
}

// IsBoolFlag lets a boolean setting be given without a value.
func (v *settingValue) IsBoolFlag() bool { return v.boolean }
