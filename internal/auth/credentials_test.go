package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/passthrough"
)

func validOAuth() *OAuth {
	return &OAuth{GrantType: GrantClientCredentials, TokenURL: "https://idp.example.com/oauth/token", ClientID: "mcpgate", ClientSecret: "oauth-client-secret-123", Scopes: []string{"mcp:read", "mcp:write"}}
}

func TestValidateNamesTheFirstBadField(t *testing.T) {
	oauth := func(mod func(*OAuth)) *OAuth {
		o := validOAuth()
		mod(o)
		return o
	}
	hs := func(kv ...string) []Header {
		var out []Header
		for i := 0; i < len(kv); i += 2 {
			out = append(out, Header{kv[i], kv[i+1]})
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		authType  passthrough.AuthType
		c         Credentials
		wantField string // "" = valid
	}{
		{"none with nothing", passthrough.AuthNone, Credentials{}, ""},
		{"none with a token", passthrough.AuthNone, Credentials{Token: "t"}, "auth.token"},
		{"unknown type", "kerberos", Credentials{}, "auth.type"},
		{"unspecified type", passthrough.AuthUnspecified, Credentials{}, "auth.type"},

		{"basic", passthrough.AuthBasic, Credentials{Username: "alice", Password: "pw"}, ""},
		{"basic with an empty password (API key as user)", passthrough.AuthBasic, Credentials{Username: "sk_live_1"}, ""},
		{"basic without username", passthrough.AuthBasic, Credentials{Password: "pw"}, "auth.username"},
		{"basic username with a colon", passthrough.AuthBasic, Credentials{Username: "a:b", Password: "pw"}, "auth.username"},
		{"basic username with CR LF", passthrough.AuthBasic, Credentials{Username: "a\r\nX-Injected", Password: "pw"}, "auth.username"},
		{"basic username with NUL", passthrough.AuthBasic, Credentials{Username: "a\x00", Password: "pw"}, "auth.username"},
		{"basic password with LF", passthrough.AuthBasic, Credentials{Username: "a", Password: "p\nw"}, "auth.password"},
		{"basic password with DEL", passthrough.AuthBasic, Credentials{Username: "a", Password: "p\x7fw"}, "auth.password"},
		{"basic with a token too", passthrough.AuthBasic, Credentials{Username: "alice", Password: "pw", Token: "t"}, "auth.token"},
		{"basic with oauth too", passthrough.AuthBasic, Credentials{Username: "alice", OAuth: validOAuth()}, "auth.oauth"},

		{"bearer", passthrough.AuthBearer, Credentials{Token: "abc123"}, ""},
		{"bearer without token", passthrough.AuthBearer, Credentials{}, "auth.token"},
		{"bearer token with the scheme pasted in", passthrough.AuthBearer, Credentials{Token: "Bearer abc123"}, "auth.token"},
		{"bearer token with a line break", passthrough.AuthBearer, Credentials{Token: "abc\r\nX-Evil: 1"}, "auth.token"},
		{"bearer with a password too", passthrough.AuthBearer, Credentials{Token: "abc", Password: "pw"}, "auth.password"},

		{"authheaders", passthrough.AuthHeaders, Credentials{Headers: hs("X-API-Key", "k1", "X-Tenant", "acme")}, ""},
		{"authheaders may set Authorization", passthrough.AuthHeaders, Credentials{Headers: hs("Authorization", "ApiKey k1")}, ""},
		{"authheaders with none", passthrough.AuthHeaders, Credentials{}, "auth.headers"},
		{"authheaders invalid name", passthrough.AuthHeaders, Credentials{Headers: hs("X-API-Key", "k", "X_Bad", "v")}, "auth.headers[1].name"},
		{"authheaders name with a newline", passthrough.AuthHeaders, Credentials{Headers: hs("X-Key\n", "v")}, "auth.headers[0].name"},
		{"authheaders protocol header", passthrough.AuthHeaders, Credentials{Headers: hs("Content-Length", "5")}, "auth.headers[0].name"},
		{"authheaders MCP header", passthrough.AuthHeaders, Credentials{Headers: hs("Mcp-Session-Id", "s")}, "auth.headers[0].name"},
		{"authheaders empty value", passthrough.AuthHeaders, Credentials{Headers: hs("X-API-Key", "")}, "auth.headers[0].value"},
		{"authheaders value with a control character", passthrough.AuthHeaders, Credentials{Headers: hs("X-API-Key", "k\x00")}, "auth.headers[0].value"},
		{"authheaders name repeated in another case", passthrough.AuthHeaders, Credentials{Headers: hs("X-API-Key", "a", "x-api-key", "b")}, "auth.headers[1].name"},
		{"authheaders with username too", passthrough.AuthHeaders, Credentials{Username: "u", Headers: hs("X-A", "v")}, "auth.username"},

		{"oauth", passthrough.AuthOAuth, Credentials{OAuth: validOAuth()}, ""},
		{"oauth over plain http", passthrough.AuthOAuth, Credentials{OAuth: oauth(func(o *OAuth) { o.TokenURL = "http://127.0.0.1:8080/token" })}, ""},
		{"oauth without scopes", passthrough.AuthOAuth, Credentials{OAuth: oauth(func(o *OAuth) { o.Scopes = nil })}, ""},
		{"oauth missing", passthrough.AuthOAuth, Credentials{}, "auth.oauth"},
		{"oauth without grant type", passthrough.AuthOAuth, Credentials{OAuth: oauth(func(o *OAuth) { o.GrantType = "" })}, "auth.oauth.grant_type"},
		{"oauth token_exchange is reserved", passthrough.AuthOAuth, Credentials{OAuth: oauth(func(o *OAuth) { o.GrantType = GrantTokenExchange })}, "auth.oauth.grant_type"},
		{"oauth unknown grant type", passthrough.AuthOAuth, Credentials{OAuth: oauth(func(o *OAuth) { o.GrantType = "password" })}, "auth.oauth.grant_type"},
		{"oauth without token_url", passthrough.AuthOAuth, Credentials{OAuth: oauth(func(o *OAuth) { o.TokenURL = "" })}, "auth.oauth.token_url"},
		{"oauth relative token_url", passthrough.AuthOAuth, Credentials{OAuth: oauth(func(o *OAuth) { o.TokenURL = "/oauth/token" })}, "auth.oauth.token_url"},
		{"oauth token_url without host", passthrough.AuthOAuth, Credentials{OAuth: oauth(func(o *OAuth) { o.TokenURL = "https:///token" })}, "auth.oauth.token_url"},
		{"oauth ftp token_url", passthrough.AuthOAuth, Credentials{OAuth: oauth(func(o *OAuth) { o.TokenURL = "ftp://idp.example.com/token" })}, "auth.oauth.token_url"},
		{"oauth token_url with credentials", passthrough.AuthOAuth, Credentials{OAuth: oauth(func(o *OAuth) { o.TokenURL = "https://id:secret@idp.example.com/token" })}, "auth.oauth.token_url"},
		{"oauth without client_id", passthrough.AuthOAuth, Credentials{OAuth: oauth(func(o *OAuth) { o.ClientID = "" })}, "auth.oauth.client_id"},
		{"oauth without client_secret", passthrough.AuthOAuth, Credentials{OAuth: oauth(func(o *OAuth) { o.ClientSecret = "" })}, "auth.oauth.client_secret"},
		{"oauth scope with a space", passthrough.AuthOAuth, Credentials{OAuth: oauth(func(o *OAuth) { o.Scopes = []string{"a", "b c"} })}, "auth.oauth.scopes[1]"},
		{"oauth empty scope", passthrough.AuthOAuth, Credentials{OAuth: oauth(func(o *OAuth) { o.Scopes = []string{""} })}, "auth.oauth.scopes[0]"},
		{"oauth with headers too", passthrough.AuthOAuth, Credentials{OAuth: validOAuth(), Headers: hs("X-A", "v")}, "auth.headers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate(tc.authType)
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate = %v, want a *FieldError for %s", err, tc.wantField)
			}
			if fe.Field != tc.wantField {
				t.Errorf("field = %q, want %q (%v)", fe.Field, tc.wantField, err)
			}
			for _, secret := range []string{"pw", "abc123", "oauth-client-secret-123", "k1"} {
				if strings.Contains(fe.Message, secret) {
					t.Errorf("message %q shows the secret %q", fe.Message, secret)
				}
			}
		})
	}
}

// allSecrets are credentials with every secret field set to a distinct value.
func allSecrets() (Credentials, []string) {
	c := Credentials{
		Username: "alice",
		Password: "secret-password-1",
		Token:    "secret-token-2",
		Headers:  []Header{{"X-API-Key", "secret-header-3"}, {"Authorization", "ApiKey secret-header-4"}},
		OAuth:    &OAuth{GrantType: GrantClientCredentials, TokenURL: "https://idp.example.com/token", ClientID: "mcpgate", ClientSecret: "secret-client-5", Scopes: []string{"mcp"}},
	}
	return c, []string{"secret-password-1", "secret-token-2", "secret-header-3", "secret-header-4", "secret-client-5"}
}

func TestRedactedHidesEverySecret(t *testing.T) {
	c, secrets := allSecrets()
	r := c.Redacted()
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(string(out), s) {
			t.Errorf("redacted JSON %s contains %q", out, s)
		}
	}
	// What is not secret is kept, and each secret shows as set.
	if r.Username != "alice" || r.Password != "****" || r.Token != "****" || r.Headers[0] != (Header{"X-API-Key", "****"}) ||
		r.OAuth.ClientID != "mcpgate" || r.OAuth.ClientSecret != "****" || r.OAuth.TokenURL != c.OAuth.TokenURL {
		t.Errorf("Redacted = %#v", r)
	}
	// The original is untouched.
	if c.OAuth.ClientSecret != "secret-client-5" || c.Headers[0].Value != "secret-header-3" {
		t.Error("Redacted changed the original")
	}
	// An unset secret stays unset, so the redacted form still says which are.
	if r := (Credentials{Username: "u"}).Redacted(); r.Password != "" {
		t.Errorf("empty password redacted to %q", r.Password)
	}
}

func TestPrintingOrLoggingCredentialsShowsNoSecret(t *testing.T) {
	c, secrets := allSecrets()
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("upstream", "creds", c, "oauth", c.OAuth, "header", c.Headers[0])
	slog.New(slog.NewTextHandler(&logs, nil)).Info("upstream", "creds", c, "oauth", c.OAuth, "header", c.Headers[0])
	for _, out := range []string{
		fmt.Sprint(c), fmt.Sprintf("%v|%+v|%#v|%s", c, c, c, c),
		fmt.Sprintf("%v|%+v|%#v", c.OAuth, c.OAuth, *c.OAuth),
		fmt.Sprintf("%v|%+v|%#v", c.Headers, c.Headers, c.Headers),
		logs.String(),
	} {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s\ncontains %q", out, s)
			}
		}
		if !strings.Contains(out, "****") {
			t.Errorf("%s\nshows no redacted value", out)
		}
	}
}

func TestCredentialsJSONIsSnakeCase(t *testing.T) {
	c, _ := allSecrets()
	out, _ := json.Marshal(c)
	for _, key := range []string{`"username"`, `"password"`, `"token"`, `"headers"`, `"name"`, `"value"`, `"oauth"`,
		`"grant_type"`, `"token_url"`, `"client_id"`, `"client_secret"`, `"scopes"`} {
		if !bytes.Contains(out, []byte(key)) {
			t.Errorf("JSON %s has no key %s", out, key)
		}
	}
	var back Credentials
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if back.OAuth.ClientSecret != c.OAuth.ClientSecret || back.Headers[1] != c.Headers[1] {
		t.Errorf("round trip lost data: %#v", back.Redacted())
	}
}
