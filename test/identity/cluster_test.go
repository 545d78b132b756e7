package identity

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testenv"
	"github.com/mcpgate/mcpgate/test/internal/gatewaytest"
)

// TestARotationReachesEveryInstance: two instances on one PostgreSQL
// share the signing keys; a key rotated through one is published by the
// other within the bus's latency, long before the other's periodic
// maintenance (half the 60 s lead) would have read it.
func TestARotationReachesEveryInstance(t *testing.T) {
	db := testenv.PostgresDatabase(t, "identity_cluster")
	settings := map[string]string{"DATABASE_URL": db, "IDENTITY_ASSERTION_KEY_LEAD": "60s", "IDENTITY_ASSERTION_KEY_ROTATION": "0"}
	a := gatewaytest.StartWith(t, mcpgateBinary, settings)
	b := gatewaytest.StartWith(t, mcpgateBinary, settings)
	if ka, kb := published(t, a), published(t, b); len(ka) != 1 || !slices.Equal(ka, kb) {
		t.Fatalf("two instances on one database publish %v and %v, want the same one key", ka, kb)
	}
	status, body := a.Do(t, "POST", "/admin/identity-assertion/keys/rotate", map[string]any{})
	var rotated struct {
		Kid string `json:"kid"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &rotated) != nil {
		t.Fatalf("rotate: %d %s", status, body)
	}
	start := time.Now()
	for !slices.Contains(published(t, b), rotated.Kid) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the other instance does not publish the new key %s after %s", rotated.Kid, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond) // polling the other instance's JWKS: the bus gives this test no signal
	}
	t.Logf("the new key reached the other instance's JWKS in %s", time.Since(start).Round(time.Millisecond))
}
