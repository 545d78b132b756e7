package assertion_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/mcpgate/mcpgate/assertion"
)

// An upstream behind mcpgate refuses every request whose identity
// assertion does not verify, and reads who each call is for.
func ExampleVerifier_Middleware() {
	v, err := assertion.NewVerifier(assertion.Config{
		JWKSURL:  "https://gw.example.com/.well-known/jwks.json",
		Audience: "https://crm.example.com/mcp", // this upstream's URL as registered at mcpgate
	})
	if err != nil {
		log.Fatal(err)
	}
	mcpHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := assertion.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s of %s, tenant %s", c.Subject, c.ClientIssuer, r.Header.Get("X-Tenant-Id"))
	})
	http.Handle("/mcp", v.Middleware(mcpHandler)) // e.g. mcp.NewStreamableHTTPHandler(...)
}
