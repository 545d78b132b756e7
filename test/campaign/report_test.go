package campaign

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// A violation is reported as a replayable case cut down to what still
// shows it: the seed, the settings, the allowlists, the header lines sent,
// what Go parsed, what the model expects and what the upstream got.

// minimise drops the case's header lines one at a time while the
// violation (same key) still occurs, replaying on the same gateway.
func (c *campaign) minimise(rc *reqCase, v violation) *reqCase {
	still := func(cand *reqCase) bool {
		o := c.try(cand, true)
		return slices.ContainsFunc(o.violations, func(w violation) bool { return w.key() == v.key() })
	}
	best := rc
	for _, field := range []func(*reqCase) *[]string{func(x *reqCase) *[]string { return &x.Open }, func(x *reqCase) *[]string { return &x.Call }} {
		for i := len(*field(best)) - 1; i >= 0; i-- {
			cand := *best
			lines := slices.Delete(slices.Clone(*field(best)), i, i+1)
			*field(&cand) = lines
			if still(&cand) {
				best = &cand
			}
		}
	}
	if best.Change != nil {
		cand := *best
		cand.Change = nil
		if still(&cand) {
			best = &cand
		}
	}
	return best
}

// describe is a case and its violation as a failure message: everything
// needed to replay it and to see why it is wrong.
func (c *campaign) describe(rc *reqCase, v violation) string {
	o := c.try(rc, true)
	r := rc.round
	up := r.upstreams[rc.Upstream]
	var b strings.Builder
	env := slices.Sorted(maps.Keys(r.settings.Env))
	fmt.Fprintf(&b, "  seed %d (replay: go test ./test/campaign -run TestWireCampaign -campaign.seed=%d -campaign.requests=%d -campaign.round=%d), round %d\n",
		c.seed, c.seed, c.tried, *flagRound, r.no)
	fmt.Fprintf(&b, "  %s: %s\n", v.key(), shorten(redact(v.Detail, c.token)))
	b.WriteString("  settings:")
	for _, k := range env {
		fmt.Fprintf(&b, " %s=%q", k, r.settings.Env[k])
	}
	fmt.Fprintf(&b, "\n  global list stored: %q (row exists: %v); upstream %s auth %s base %q, own list %s\n",
		r.stored, r.storedExists, up.plan.Name, up.plan.Auth.Type, up.plan.Auth.Base, listString(up.list))
	if rc.Change != nil {
		fmt.Fprintf(&b, "  between open and call: %s list %s → %s\n", changeTarget(r, rc.Change), listString(rc.Change.Before), listString(rc.Change.After))
	}
	fmt.Fprintf(&b, "  transport %s; effective allowlist %q\n", rc.Transport, o.allowlist)
	if hasOpen, _ := carries(rc.Transport); hasOpen {
		fmt.Fprintf(&b, "  header lines at open: %s\n", quoteLines(rc.Open, c.token))
	}
	if _, hasCall := carries(rc.Transport); hasCall {
		fmt.Fprintf(&b, "  header lines of the call: %s\n", quoteLines(rc.Call, c.token))
	}
	fmt.Fprintf(&b, "  (the credential line %q goes at position %d when AUTH_REQUIRED)\n", redact(rc.authLine(), c.token), rc.AuthAt)
	fmt.Fprintf(&b, "  as Go's server parsed them: %s\n", parsedString(o.parsed, c.token))
	var expected []string
	for _, h := range o.expected {
		expected = append(expected, h.Name+": "+h.Value)
	}
	fmt.Fprintf(&b, "  the model predicts: accepted=%v %s; forwarded %s\n", o.accept, o.why, quoteLines(expected, c.token))
	var got []string
	for _, l := range o.got {
		got = append(got, l.Name+": "+l.Value)
	}
	fmt.Fprintf(&b, "  the gateway: open HTTP %d, call HTTP %d, answer %q, err %v\n", o.ex.OpenStatus, o.ex.CallStatus, o.ex.Answer, o.err)
	fmt.Fprintf(&b, "  the upstream got (forwarded=%v): %s\n", o.forwarded, quoteLines(got, c.token))
	var now []string
	for _, w := range o.violations {
		now = append(now, w.key())
	}
	fmt.Fprintf(&b, "  violations on this replay: %v", now)
	return b.String()
}

func listString(l optionalList) string {
	if !l.Set {
		return "null (inherit)"
	}
	return fmt.Sprintf("%q", l.List)
}

func changeTarget(r *round, ch *change) string {
	if ch.Upstream < 0 {
		return "the global"
	}
	return "upstream " + r.upstreams[ch.Upstream].plan.Name + "'s"
}

// quoteLines quotes lines for a failure message, the token redacted.
func quoteLines(lines []string, token string) string {
	q := make([]string, len(lines))
	for i, l := range lines {
		q[i] = strconv.Quote(shorten(redact(l, token)))
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// shorten keeps a long value readable in a failure message.
func shorten(s string) string {
	if len(s) <= 160 {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes in all)…%s", s[:100], len(s), s[len(s)-40:])
}

func parsedString(h map[string][]string, token string) string {
	keys := slices.Sorted(maps.Keys(h))
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := make([]string, len(h[k]))
		for i, v := range h[k] {
			vs[i] = shorten(redact(v, token))
		}
		parts = append(parts, fmt.Sprintf("%s=%q", k, vs))
	}
	return strings.Join(parts, " ")
}

// redact keeps failure messages short: the token is long and the same
// everywhere.
func redact(s, token string) string { return strings.ReplaceAll(s, token, "<TOKEN>") }
