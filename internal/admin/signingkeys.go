package admin

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// KeyRotator rotates mcpgate's identity assertion signing key;
// *auth.AssertionKeys is one.
type KeyRotator interface {
	Rotate(ctx context.Context) (kid string, signsFrom time.Time, err error)
}

// SigningKeys serves POST /admin/identity-assertion/keys/rotate: a new
// signing key, published in /.well-known/jwks.json at once and signing
// from signs_from (docs/identity-assertion.md, "Keys and rotation").
type SigningKeys struct {
	// Keys is nil when mcpgate has none (no AUTH_ENCRYPTION_SECRET).
	Keys   KeyRotator
	Logger *slog.Logger
}

// Routes is the key rotation route, for the gateway's route table.
func (s *SigningKeys) Routes() []Route {
	return []Route{{"POST /admin/identity-assertion/keys/rotate", http.HandlerFunc(s.rotate)}}
}

func (s *SigningKeys) rotate(w http.ResponseWriter, r *http.Request) {
	if s.Keys == nil {
		writeJSON(w, http.StatusConflict, map[string]string{"detail": "mcpgate has no identity assertion signing keys: set AUTH_ENCRYPTION_SECRET, which seals them"})
		return
	}
	kid, from, err := s.Keys.Rotate(r.Context())
	if err != nil {
		if s.Logger != nil {
			s.Logger.Error("identity assertion key rotation failed", "err", err)
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"detail": "the new signing key could not be stored (mcpgate's log has the cause); the current key goes on signing"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"kid": kid, "signs_from": from.UTC().Format(time.RFC3339Nano)})
}
