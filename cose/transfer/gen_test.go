package transfer

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/pki"
)

var update = flag.Bool("update", false, "rewrite testdata/")

// TestUpdateSeeds writes the fuzz seeds (with -update).
func TestUpdateSeeds(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/")
	}
	chain, reg, _ := registrar(t)
	authKey, _ := pki.GenerateKey(nil)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	a, _ := SignAuthorization(rand.Reader, reg.Key, chain, &Authorization{Device: [32]byte{1}, Serial: "SN-1", NewOwner: [32]byte{2}, NotAfter: now.Add(time.Hour), IssuedAt: now})
	o, _ := SignOrder(rand.Reader, authKey, &Order{Serial: "SN-1", NewOwner: [32]byte{2}, IssuedAt: now, Reason: "court order"})
	c, _ := SignClaim(rand.Reader, reg.Key, chain, &Claim{Serial: "SN-1", Order: o, Proof: make([]byte, 32)})
	x, _ := SignObjection(rand.Reader, reg.Key, chain, "SN-1", now)
	q, _ := SignClaimsQuery(rand.Reader, reg.Key, chain, now)
	for name, b := range map[string][]byte{"authorization.hex": a, "order.hex": o, "claim.hex": c, "objection.hex": x, "claims-query.hex": q} {
		if err := os.WriteFile(filepath.Join("testdata", name), []byte(hex.EncodeToString(b)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
