package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/explain"
	"github.com/mcpgate/mcpgate/passthrough"
)

// runExplain is "mcpgate explain": cases on stdin, answers on stdout.
func runExplain(ctx context.Context, args []string, s streams) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and help are written below, where they belong
	format := explain.FormatJSON
	fs.Var(&format, "format", "output format: json or table")
	config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			explainUsage(s.stdout)
			return exitOK
		}
		fmt.Fprintf(s.stderr, "mcpgate explain: %v\n\n", err)
		explainUsage(s.stderr)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(s.stderr, "mcpgate explain: unexpected argument %q: cases are read from standard input\n\n", fs.Arg(0))
		explainUsage(s.stderr)
		return exitUsage
	}
	cfg, err := config.Load(fs, s.environ)
	if err != nil {
		fmt.Fprintf(s.stderr, "mcpgate: %v\n", err)
		return exitUsage
	}
	failed, err := explain.Run(ctx, s.stdin, s.stdout, s.stderr, cfg.Passthrough, format)
	if err != nil {
		fmt.Fprintf(s.stderr, "mcpgate: %v\n", err)
		return exitFailed
	}
	if failed > 0 {
		return exitFailed
	}
	return exitOK
}

// explainUsage writes explain's help, the settings included.
func explainUsage(w io.Writer) {
	authTypes := make([]string, 0, len(passthrough.AuthTypes()))
	for _, t := range passthrough.AuthTypes() {
		authTypes = append(authTypes, string(t))
	}
	fmt.Fprintf(w, `Usage: mcpgate explain [flags] < cases.jsonl

Reads cases, one JSON object per line, and prints for each the headers mcpgate
would send to the upstream and a decision for every header it considered.

A case (every field is optional; an unknown field is an error):
  {"request_headers": {"X-Tenant-Id": "acme"},    an object, or [["name", "value"], ...]
   "base_headers": {"Content-Type": "text/plain"}, mcpgate's own headers, same forms
   "global_allowlist": ["X-Tenant-Id"],            absent: DEFAULT_PASSTHROUGH_HEADERS
   "upstream": {"name": "crm", "auth_type": "%s",
                "token_exchange": false,
                "passthrough_headers": null},      null inherits the global list, [] forwards nothing
   "settings": {"enable_header_passthrough": true, "enable_overwrite_base_headers": false,
                "authenticates_clients": true}}    overrides of the settings below
Blank lines are skipped. In request_headers the later of two names differing
only in case wins.

Output (--format json): one line per case,
  {"headers": {...}, "decisions": [{"header", "action", "reason", "message"}]}
or {"line": N, "error": "..."} for a line that could not be read (also on stderr).

Flags:
`, strings.Join(authTypes, "|"))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  --format json|table\toutput: a JSON line per case (default), or a table per case for a person")
	fmt.Fprintf(tw, "  --env-file PATH\tthe .env file to read; it must exist (env %s; default %s if it exists)\n",
		config.EnvEnvFile, config.DefaultEnvFile)
	tw.Flush()
	fmt.Fprint(w, "\nSettings (a flag beats the environment, which beats the .env file, which beats the default):\n")
	fmt.Fprintln(tw, "  FLAG\tENVIRONMENT\tDEFAULT\tMEANING")
	for _, d := range config.SettingDocs() {
		fmt.Fprintf(tw, "  --%s\t%s\t%s\t%s\n", config.FlagName(d.Name), d.Name, d.Default, d.Usage)
	}
	tw.Flush()
	fmt.Fprint(w, `
Exit status: 0 every case answered; 1 a line could not be read; 2 a usage or
configuration error.
`)
}
