package passthrough

import "slices"

// Problems returns what is wrong with the list itself, as the decisions
// Compute makes for it on every call whatever the request holds: a skip for
// each name that is invalid or never forwarded (spec §2.3), and for each
// name a later entry in another case replaces (spec §2.4; Compute reports
// that one only when the header is present). They depend on the list and
// the policy alone, so a caller can report them once per list rather than
// once per call.
func (a *Allowlist) Problems() []Decision {
	if a == nil {
		return nil
	}
	var out []Decision
	for i, e := range a.entries {
		if e.skip != 0 {
			out = append(out, Decision{Header: e.name, Action: Skipped, Reason: e.skip})
		}
		if !e.caseVariant {
			continue
		}
		for _, prev := range a.entries[:i] {
			d := Decision{Header: prev.name, Action: Skipped, Reason: ReasonReplacedByLaterEntry}
			if prev.skip == 0 && sameName(prev.name, e.name) && !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
	}
	return out
}
