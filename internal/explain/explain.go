// Package explain answers "what would mcpgate forward, and why?" for cases
// read as JSON Lines: it is `mcpgate explain`.
//
// Each non-blank input line is one case, a JSON object:
//
//	{"request_headers": {"X-Tenant-Id": "acme"},
//	 "base_headers": {"Content-Type": "application/json"},
//	 "global_allowlist": ["X-Tenant-Id"],
//	 "upstream": {"name": "crm", "auth_type": "bearer", "token_exchange": false,
//	              "passthrough_headers": null},
//	 "settings": {"enable_header_passthrough": true}}
//
// Every field is optional:
//   - request_headers: the client's headers, an object or a list of
//     [name, value] pairs (to repeat a name exactly). Object keys are read in
//     order, so of "X-A" and a later "x-a" the later wins, as with repeated
//     headers (spec §2). Names are data: they need not be valid HTTP tokens.
//   - base_headers: mcpgate's own headers for the upstream, the same two forms,
//     kept in order.
//   - global_allowlist: the global allowlist (spec §3). Absent or null, it is
//     DEFAULT_PASSTHROUGH_HEADERS of the loaded settings: explain reads no
//     database.
//   - upstream: absent or null, there is no upstream (no auth_type rules).
//     auth_type is one of passthrough.AuthTypes(); passthrough_headers null
//     or absent inherits the global list, a list (even an empty one, which
//     forwards nothing) replaces it. Lists may also be written as a string
//     holding a comma list, as the admin API accepts.
//   - settings: overrides of the loaded settings for this case:
//     enable_header_passthrough, enable_overwrite_base_headers,
//     authenticates_clients (AUTH_REQUIRED).
//
// Unknown fields are errors, so that a typo does not pass silently.
//
// Blank input lines are skipped and produce no output. Cases are numbered by
// their input line.
package explain

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mcpgate/mcpgate/passthrough"
)

// Format is how Run writes its answers.
type Format string

// Formats.
const (
	// FormatJSON writes one JSON object per non-blank input line:
	// {"headers": {...}, "decisions": [{"header", "action", "reason", "message"}]},
	// or {"line": N, "error": "..."} for a line that could not be read.
	FormatJSON Format = "json"
	// FormatTable writes, for a person, each case's forwarded headers and a
	// table of its decisions.
	FormatTable Format = "table"
)

// String returns the format's name.
func (f Format) String() string { return string(f) }

// Set sets the format from its name, so that a *Format is a flag.Value.
func (f *Format) Set(name string) error {
	switch Format(name) {
	case FormatJSON, FormatTable:
		*f = Format(name)
		return nil
	}
	return fmt.Errorf("unknown format %q (want json or table)", name)
}

// Run reads cases from in, one per line, and writes what would be forwarded
// and why to out. base is the loaded configuration each case starts from.
//
// A line that cannot be read as a case (invalid JSON, a wrong type, an
// unknown field, a bad auth_type) is reported, as "line N: ...", on errOut
// and, in its place, on out; the other lines are still answered. failed
// counts those lines. err is for what stops the run: reading in, writing
// out, or ctx ending.
func Run(ctx context.Context, in io.Reader, out, errOut io.Writer, base passthrough.Settings, format Format) (failed int, err error) {
	var w writer
	switch format {
	case FormatJSON:
		w = &jsonWriter{}
	case FormatTable:
		w = &tableWriter{}
	default:
		return 0, fmt.Errorf("explain: unknown format %q (want json or table)", format)
	}
	r := bufio.NewReaderSize(in, 64<<10)
	bw := bufio.NewWriterSize(out, 64<<10)
	ex := newExplainer(base)
	var line []byte
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return failed, joinFlush(err, flush(bw))
		}
		var rerr error
		line, rerr = readLine(r, line[:0])
		if rerr != nil && rerr != io.EOF {
			return failed, joinFlush(fmt.Errorf("explain: read line %d: %w", n, rerr), flush(bw))
		}
		if c := bytes.TrimSpace(line); len(c) > 0 {
			res, cerr := ex.explain(c)
			if cerr != nil {
				failed++
				cerr = fmt.Errorf("line %d: %w", n, cerr)
				err = w.failure(bw, n, cerr)
				if err == nil {
					// Flushed first so that, on a terminal, the message
					// shows after the answers to earlier lines.
					err = bw.Flush()
				}
				if err == nil {
					_, err = fmt.Fprintln(errOut, cerr)
				}
			} else {
				err = w.result(bw, n, res)
			}
			if err != nil {
				return failed, fmt.Errorf("explain: write: %w", err)
			}
		}
		if rerr == io.EOF {
			return failed, flush(bw)
		}
	}
}

// readLine reads one line, of any length, into buf, without its line ending.
// At the end of the input it returns io.EOF with the last line, if any.
func readLine(r *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		chunk, err := r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if err != bufio.ErrBufferFull {
			return bytes.TrimRight(buf, "\r\n"), err
		}
	}
}

// joinFlush returns err, joined with ferr when flushing the output failed too.
func joinFlush(err, ferr error) error {
	if ferr == nil {
		return err
	}
	return errors.Join(err, ferr)
}

func flush(w *bufio.Writer) error {
	if err := w.Flush(); err != nil {
		return fmt.Errorf("explain: write: %w", err)
	}
	return nil
}

// explainer computes the answer to one case. It keeps one policy per
// combination of the switches a case may override, and the compiled env
// list of each, so that a case costs one decode and one Compute.
type explainer struct {
	base     passthrough.Settings
	policies [8]*preparedPolicy // by the switches' bits, as in overrides
}

type preparedPolicy struct {
	policy *passthrough.Policy
	env    *passthrough.Allowlist // the compiled DEFAULT_PASSTHROUGH_HEADERS
}

func newExplainer(base passthrough.Settings) *explainer {
	return &explainer{base: base}
}

// explain decodes one case and computes it.
func (e *explainer) explain(line []byte) (passthrough.Result, error) {
	c, err := decodeCase(line)
	if err != nil {
		return passthrough.Result{}, err
	}
	p := e.policy(c.settings)
	allow := p.env
	if c.global != nil || c.own != nil {
		global := e.base.DefaultPassthroughHeaders // a case cannot override it
		if c.global != nil {
			global = *c.global
		}
		allow = p.policy.Compile(passthrough.EffectiveAllowlist(c.own, global))
	}
	return p.policy.Compute(passthrough.Call{
		Request:   c.request,
		Base:      c.base,
		Allowlist: allow,
		Upstream:  c.upstream,
	}), nil
}

// policy returns the prepared policy for the base settings with o applied.
func (e *explainer) policy(o overrides) *preparedPolicy {
	s := o.apply(e.base)
	var key uint8
	if s.EnableHeaderPassthrough {
		key |= switchPassthrough
	}
	if s.EnableOverwriteBaseHeaders {
		key |= switchOverwrite
	}
	if s.AuthenticatesClients {
		key |= switchAuthenticates
	}
	if p := e.policies[key]; p != nil {
		return p
	}
	pol := passthrough.NewPolicy(s)
	p := &preparedPolicy{policy: pol, env: pol.Compile(passthrough.EffectiveAllowlist(nil, s.DefaultPassthroughHeaders))}
	e.policies[key] = p
	return p
}
