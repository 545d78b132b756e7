// Package passthrough decides which of a client's HTTP headers reach an
// upstream MCP server, and says why for each one.
//
// It is the pure engine behind mcpgate's header passthrough: values in,
// headers and decisions out. It does no I/O, keeps no package-level state and
// imports nothing but the standard library, so other Go programs can use it
// as it is. The behaviour is mcpgate's specification (shared/spec/passthrough.md),
// which follows IBM ContextForge's passthrough system minus its known bugs;
// comments cite the section a rule implements (spec §2.3 is §2, step 3).
//
// Vocabulary, kept from ContextForge:
//   - an upstream is a registered backing MCP server (ContextForge: a gateway);
//   - base headers are what mcpgate itself puts on the upstream request: the
//     upstream's credentials and static headers, the content type;
//   - passthrough headers are the allowlist: client headers copied upstream;
//   - X-Upstream-Authorization is a client header whose value becomes the
//     upstream's Authorization, so a client can give the upstream a credential
//     without giving it to mcpgate.
//
// The usual flow:
//
//	policy := passthrough.NewPolicy(settings)            // once, at start-up
//	allow := policy.Compile(names)                        // once per allowlist version
//	res := policy.Compute(passthrough.Call{               // once per upstream request
//		Request:   r.Header,
//		Base:      base,
//		Allowlist: allow,
//		Upstream:  passthrough.Upstream{Name: "crm", AuthType: passthrough.AuthBearer},
//	})
//	// res.Headers go upstream; res.Decisions feed logs, metrics and explain.
//
// The effective allowlist comes from [GlobalAllowlist], [EffectiveAllowlist]
// and the caching [AllowlistResolver] (spec §3); sessions keep their opening
// headers with [Policy.CaptureSession] (spec §4).
package passthrough
