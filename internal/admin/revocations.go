package admin

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/store"
)

// Revocations is what the token-revocation routes manage: revoked client
// tokens, stored and shared with every instance.
type Revocations interface {
	List(ctx context.Context) ([]store.Revocation, error)
	Revoke(ctx context.Context, r store.Revocation) (store.Revocation, error)
	Lift(ctx context.Context, id string) error
}

// RevocationAPI serves /admin/tokens/revocations: an administrator revokes
// one client token by its jti, or every token of a subject issued until
// now, lists the revocations and lifts one.
type RevocationAPI struct {
	Revocations Revocations
	Logger      *slog.Logger
}

// RevocationsPath is where revocations are managed.
const RevocationsPath = "/admin/tokens/revocations"

// maxRevocationValue bounds a jti, subject, issuer or reason.
const maxRevocationValue = 1024

// Register adds the revocation routes to mux.
func (a *RevocationAPI) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+RevocationsPath, a.list)
	mux.HandleFunc("POST "+RevocationsPath, a.revoke)
	mux.HandleFunc("DELETE "+RevocationsPath+"/{id}", a.lift)
}

// revocationJSON is a revocation as the API shows it.
type revocationJSON struct {
	ID        string    `json:"id"`
	JTI       string    `json:"jti,omitempty"`
	Subject   string    `json:"subject,omitempty"`
	Issuer    string    `json:"issuer,omitempty"`
	Reason    string    `json:"reason"`
	RevokedBy string    `json:"revoked_by"`
	RevokedAt time.Time `json:"revoked_at"`
}

func toJSON(r store.Revocation) revocationJSON {
	j := revocationJSON{ID: r.ID, Reason: r.Reason, RevokedBy: r.RevokedBy, RevokedAt: r.RevokedAt}
	if r.Kind == store.RevokeTokenID {
		j.JTI = r.Value
	} else {
		j.Subject, j.Issuer = r.Value, r.Issuer
	}
	return j
}

func (a *RevocationAPI) list(w http.ResponseWriter, r *http.Request) {
	list, err := a.Revocations.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]revocationJSON, 0, len(list))
	for _, rv := range list {
		out = append(out, toJSON(rv))
	}
	writeJSON(w, http.StatusOK, out)
}

func revocationField(name string) bool {
	switch name {
	case "jti", "subject", "issuer", "reason":
		return true
	}
	return false
}

// revoke takes {"jti": "…"} or {"subject": "…", "issuer": "…"} (issuer
// left out: mcpgate's own tokens), each with an optional "reason".
func (a *RevocationAPI) revoke(w http.ResponseWriter, r *http.Request) {
	fields, ok := readObject(w, r, revocationField)
	if !ok {
		return
	}
	var jti, subject, issuer, reason string
	for name, dst := range map[string]*string{"jti": &jti, "subject": &subject, "issuer": &issuer, "reason": &reason} {
		if !decodeField(w, fields, name, dst) {
			return
		}
		if len(*dst) > maxRevocationValue {
			unprocessable(w, name, "longer than 1024 bytes", "value_error")
			return
		}
	}
	rv := store.Revocation{Reason: reason, RevokedBy: auth.Principal(r.Context())}
	switch {
	case jti != "" && (subject != "" || issuer != ""):
		unprocessable(w, "jti", "give either jti (one token) or subject with an optional issuer (all tokens of the subject), not both", "value_error")
		return
	case jti != "":
		rv.Kind, rv.Value = store.RevokeTokenID, jti
	case subject != "":
		if issuer == "" {
			issuer = auth.Issuer // the tokens `mcpgate token` mints
		}
		rv.Kind, rv.Value, rv.Issuer = store.RevokeSubject, subject, issuer
	case issuer != "":
		unprocessable(w, "subject", "field required with issuer: name the subject whose tokens to revoke", "missing")
		return
	default:
		unprocessable(w, "jti", "field required: give jti (one token) or subject (all tokens of the subject)", "missing")
		return
	}
	stored, err := a.Revocations.Revoke(r.Context(), rv)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toJSON(stored))
}

func (a *RevocationAPI) lift(w http.ResponseWriter, r *http.Request) {
	if err := a.Revocations.Lift(r.Context(), r.PathValue("id")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *RevocationAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, map[string]string{"detail": "revocation not found: " + r.PathValue("id")})
		return
	}
	if a.Logger != nil {
		a.Logger.ErrorContext(r.Context(), "admin request failed", "path", r.URL.Path, "err", err)
	}
	writeJSON(w, http.StatusInternalServerError, map[string]string{"detail": "internal error; see the gateway's log"})
}
