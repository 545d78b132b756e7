package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/passthrough"
)

// reopenFix is what an administrator does about stored credentials of
// upstream id that cannot be opened.
func reopenFix(id string) string {
	return fmt.Sprintf("give them again with PUT /gateways/%s, or set %s to the secret they were sealed under",
		id, auth.EnvOldEncryptionSecret)
}

// noSealerFix is what an administrator does about stored credentials of
// upstream id while AUTH_ENCRYPTION_SECRET is not set: new ones could not
// be sealed either.
func noSealerFix(id string) string {
	return fmt.Sprintf("set %s to the secret they were sealed under (or drop them: PUT /gateways/%s with auth_type none)",
		auth.EnvEncryptionSecret, id)
}

// keepSealed decides what an Update does with stored credentials that
// could not be opened (openErr, nil when they could): a patch that gives
// new credentials, or changes the auth type (which drops them), replaces
// them; a patch that names the same auth type again has them checked, and
// cannot, so it is refused on "auth"; any other patch (a new name, list,
// URL, enablement) keeps the sealed blob byte for byte — a previous secret
// may still open it — and the upstream stays unavailable with the reason.
func keepSealed(openErr error, p Patch, stored passthrough.AuthType) (keep bool, err error) {
	switch {
	case openErr == nil, p.Credentials != nil, p.AuthType != nil && *p.AuthType != stored:
		return false, nil
	case p.AuthType != nil:
		return false, &FieldError{"auth", fmt.Sprintf("the stored credentials cannot be opened with the current %s; "+
			"give them again in this request (%v)", auth.EnvEncryptionSecret, openErr)}
	}
	return true, nil
}

// resealStored runs at Start, before the upstreams connect. Every stored
// credential sealed under OLD_AUTH_ENCRYPTION_SECRET is sealed again under
// AUTH_ENCRYPTION_SECRET and stored back, so the old secret can be removed
// after one start; how many is logged once, never what. Each upstream whose
// credentials open under neither gets a WARN naming the fix (it is then
// unavailable, with the same reason). It returns records as now stored.
func (r *Registry) resealStored(ctx context.Context, records []store.Upstream) []store.Upstream {
	resealed, raced := 0, 0
	out := records[:0:0]
	for _, rec := range records {
		if len(rec.AuthSecret) == 0 {
			out = append(out, rec)
			continue
		}
		if r.cfg.Sealer == nil {
			r.cfg.Logger.Warn("stored upstream credentials cannot be opened: "+auth.EnvEncryptionSecret+" is not set",
				"upstream", rec.Name, "upstream_id", rec.ID,
				"fix", noSealerFix(rec.ID))
			out = append(out, rec)
			continue
		}
		blob, changed, err := r.cfg.Sealer.Reseal(rec.AuthSecret)
		if err != nil {
			r.cfg.Logger.Warn("stored upstream credentials cannot be opened", "upstream", rec.Name, "upstream_id", rec.ID,
				"err", err, "fix", reopenFix(rec.ID))
			out = append(out, rec)
			continue
		}
		if !changed {
			out = append(out, rec)
			continue
		}
		// rec.Version makes this conditional: an upstream changed meanwhile
		// (another instance re-sealed it, or an administrator gave new
		// credentials) keeps what was stored since.
		stored := rec
		stored.AuthSecret = blob
		updated, err := r.cfg.Store.UpdateUpstream(ctx, stored)
		switch {
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			raced++
			fresh, gerr := r.cfg.Store.GetUpstream(ctx, rec.ID)
			switch {
			case errors.Is(gerr, store.ErrNotFound): // deleted meanwhile: not loaded
			case gerr != nil:
				out = append(out, rec)
			default:
				out = append(out, fresh)
			}
		case err != nil:
			// It still opens under the old secret; the next start tries
			// again.
			r.cfg.Logger.Warn("store re-sealed upstream credentials", "upstream", rec.Name, "upstream_id", rec.ID, "err", err)
			out = append(out, rec)
		default:
			resealed++
			out = append(out, updated)
		}
	}
	if r.cfg.Sealer != nil && r.cfg.Sealer.HasOld() {
		r.cfg.Logger.Info("re-sealed stored upstream credentials under the current "+auth.EnvEncryptionSecret,
			"upstreams", resealed, "changed_meanwhile", raced,
			"next", auth.EnvOldEncryptionSecret+" can be removed once every instance has started with this "+auth.EnvEncryptionSecret)
	}
	return out
}
