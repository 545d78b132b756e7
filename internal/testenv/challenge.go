package testenv

import (
	"net/http"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// BearerChallenge returns the parameters of the Bearer challenge in a
// response's WWW-Authenticate, parsed as the go-sdk's OAuth clients parse
// it; the test fails when there is none or it does not parse.
func BearerChallenge(t testing.TB, h http.Header) map[string]string {
	t.Helper()
	cs, err := oauthex.ParseWWWAuthenticate(h.Values("WWW-Authenticate"))
	if err != nil {
		t.Fatalf("WWW-Authenticate %q: %v", h.Values("WWW-Authenticate"), err)
	}
	for _, c := range cs {
		if c.Scheme == "bearer" {
			return c.Params
		}
	}
	t.Fatalf("WWW-Authenticate %q has no Bearer challenge", h.Values("WWW-Authenticate"))
	return nil
}
