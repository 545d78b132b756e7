package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"text/tabwriter"

	"github.com/redis/go-redis/v9"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/gateway"
)

// redisLog is go-redis's logger, into the JSON log at debug.
type redisLog struct{ logger *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.logger.DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}

// runServe is "mcpgate serve": the gateway, until SIGINT or SIGTERM.
func runServe(ctx context.Context, args []string, s streams) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config.RegisterFlags(fs)
	if code, ok := parseFlags(fs, args, s, serveUsage); !ok {
		return code
	}
	cfg, err := config.Load(fs, s.environ)
	if err != nil {
		fmt.Fprintf(s.stderr, "mcpgate: %v\n", err)
		return exitUsage
	}
	logger := slog.New(slog.NewJSONHandler(s.stderr, &slog.HandlerOptions{Level: cfg.Gateway.LogLevel}))
	// go-redis logs every failed dial of its own, as plain text; while
	// Redis is away that would be one line per publish. The bus already says
	// once that it is down, so the client's lines go to debug.
	redis.SetLogger(redisLog{logger})
	g, err := gateway.New(ctx, cfg, logger, version())
	if err != nil {
		var se *gateway.StartupError
		if errors.As(err, &se) {
			fmt.Fprintf(s.stderr, "mcpgate: %v\n", err)
			return exitUsage
		}
		fmt.Fprintf(s.stderr, "mcpgate: %v\n", err)
		return exitFailed
	}
	defer g.Close()
	ln, err := net.Listen("tcp", cfg.Gateway.Addr())
	if err != nil {
		fmt.Fprintf(s.stderr, "mcpgate: listen on %s (HOST, PORT): %v\n", cfg.Gateway.Addr(), err)
		return exitFailed
	}
	logger.Info("mcpgate listening", "address", ln.Addr().String(), "url", "http://"+ln.Addr().String(),
		"database", strings.SplitN(cfg.Gateway.DatabaseURL, ":", 2)[0], "auth_required", cfg.AuthRequired,
		"header_passthrough", cfg.Passthrough.EnableHeaderPassthrough)
	if err := g.Serve(ctx, ln); err != nil {
		logger.Error("serve", "err", err)
		return exitFailed
	}
	logger.Info("mcpgate stopped")
	return exitOK
}

func serveUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: mcpgate serve [flags]

Runs the gateway: MCP Streamable HTTP at /mcp, JSON-RPC at /rpc, the admin API
(/gateways, /admin/config/passthrough-headers), /health, /ready and /metrics.
It stops on SIGINT or SIGTERM after in-flight calls finish.

Settings (a flag beats the environment, which beats the .env file, which beats the default):
`)
	printSettings(w)
}

// printSettings writes the settings table of every command's help.
func printSettings(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  FLAG\tENVIRONMENT\tDEFAULT\tMEANING")
	for _, d := range config.SettingDocs() {
		fmt.Fprintf(tw, "  --%s\t%s\t%s\t%s\n", config.FlagName(d.Name), d.Name, d.Default, d.Usage)
	}
	tw.Flush()
}

// parseFlags parses a subcommand's flags; on failure or -h it returns the
// exit code to use and false.
func parseFlags(fs *flag.FlagSet, args []string, s streams, usage func(io.Writer)) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(s.stdout)
			return exitOK, false
		}
		fmt.Fprintf(s.stderr, "mcpgate %s: %v\n\n", fs.Name(), err)
		usage(s.stderr)
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(s.stderr, "mcpgate %s: unexpected argument %q\n\n", fs.Name(), fs.Arg(0))
		usage(s.stderr)
		return exitUsage, false
	}
	return 0, true
}
