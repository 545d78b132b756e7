// Command mcpgate is the MCP gateway's command line.
//
// Usage:
//
//	mcpgate <command> [flags]
//
// Run "mcpgate help" for the commands and "mcpgate help <command>" for one.
// Exit status: 0 success, 1 the command failed (explain: a case could not be
// read), 2 a usage or configuration error.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
)

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2 // a bad command line or configuration
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// streams are a command's standard input and outputs, and its environment.
type streams struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        func(string) (string, bool)
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	// usage writes the command's help.
	usage func(w io.Writer)
	// run runs the command with its arguments and returns the exit status.
	run func(ctx context.Context, args []string, s streams) int
}

// commands lists the subcommands, in the order help shows them.
func commands() []command {
	return []command{
		{"serve", "run the gateway", serveUsage, runServe},
		{"token", "mint a client token (or a new secret)", tokenUsage, runToken},
		{"explain", "show which headers would be forwarded upstream, and why", explainUsage, runExplain},
		{"version", "print the version", func(w io.Writer) { fmt.Fprintln(w, "Usage: mcpgate version") }, runVersion},
		{"help", "show help for mcpgate or one command", func(w io.Writer) { fmt.Fprintln(w, "Usage: mcpgate help [command]") }, runHelp},
	}
}

// run runs mcpgate with args (without the program name) and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, environ func(string) (string, bool)) int {
	s := streams{stdin: stdin, stdout: stdout, stderr: stderr, environ: environ}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		return runHelp(ctx, args[1:], s)
	}
	if c, ok := lookup(args[0]); ok {
		return c.run(ctx, args[1:], s)
	}
	fmt.Fprintf(stderr, "mcpgate: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// usage writes mcpgate's help.
func usage(w io.Writer) {
	fmt.Fprintln(w, "mcpgate is an MCP gateway.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: mcpgate <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "mcpgate help <command>" for a command's flags and settings.`)
}

func runHelp(_ context.Context, args []string, s streams) int {
	switch len(args) {
	case 0:
		usage(s.stdout)
		return exitOK
	case 1:
		if c, ok := lookup(args[0]); ok {
			c.usage(s.stdout)
			return exitOK
		}
		fmt.Fprintf(s.stderr, "mcpgate help: unknown command %q\n\n", args[0])
	}
	usage(s.stderr)
	return exitUsage
}

func runVersion(_ context.Context, args []string, s streams) int {
	if len(args) > 0 {
		fmt.Fprintln(s.stderr, "mcpgate version: takes no arguments")
		return exitUsage
	}
	fmt.Fprintln(s.stdout, version())
	return exitOK
}

// version describes the build: the module version, the VCS revision when
// the binary was built from a checkout, and the Go version.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "mcpgate (unknown version)"
	}
	parts := []string{"mcpgate", info.Main.Version}
	for _, kv := range info.Settings {
		if kv.Key == "vcs.revision" {
			parts = append(parts, kv.Value)
		}
	}
	return strings.Join(append(parts, info.GoVersion), " ")
}
