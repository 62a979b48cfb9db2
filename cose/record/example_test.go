package record_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tumbler-iot/tumbler/cose/record"
)

// A gateway records a check-in, chains the next record of the same device
// to it, and a receiver parses, verifies and checks the chain.
func Example() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	device := record.DeviceIDOf([]byte("IDevID certificate DER"))
	now := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

	// The device's OSCORE-protected check-in payload: {1: 3600, 2: "1.0", 4: 0}.
	body, err := record.ParseCheckInRequest([]byte{0xa3, 0x01, 0x19, 0x0e, 0x10, 0x02, 0x63, '1', '.', '0', 0x04, 0x00})
	if err != nil {
		panic(err)
	}
	seq := uint64(7)
	body.OSCORESeq = &seq
	first := &record.Record{Device: device, Serial: "SN-1", Time: now, Seq: 1}
	if err := first.SetBody(body); err != nil {
		panic(err)
	}
	data1, err := record.Sign(rand.Reader, key, first)
	if err != nil {
		panic(err)
	}

	prev := record.IDOf(data1)
	second := &record.Record{Device: device, Serial: "SN-1", Time: now.Add(time.Hour), Seq: 2, Prev: &prev}
	if err := second.SetBody(&record.OverdueBody{LastCheckIn: now, Due: now.Add(time.Hour), Missed: 1}); err != nil {
		panic(err)
	}
	data2, err := record.Sign(rand.Reader, key, second)
	if err != nil {
		panic(err)
	}

	var chain []*record.Signed
	for _, data := range [][]byte{data1, data2} {
		s, err := record.Parse(data)
		if err != nil {
			panic(err)
		}
		if err := s.Verify(&key.PublicKey); err != nil {
			panic(err)
		}
		chain = append(chain, s)
	}
	fmt.Println("chain:", record.VerifyChain(chain))

	var c record.CheckInBody
	if err := chain[0].Record.DecodeBody(&c); err != nil {
		panic(err)
	}
	fmt.Println(chain[0].Record.Type, c.Uptime, c.Firmware, c.Battery == nil, *c.OSCORESeq)
	fmt.Println(chain[1].Record.Type, *chain[1].Record.Prev == chain[0].ID)
	// Output:
	// chain: <nil>
	// checkin 3600 1.0 true 7
	// overdue true
}

// Diagnostic renders a committed record for `tumbler record inspect`.
func ExampleDiagnostic() {
	hexData, err := os.ReadFile("testdata/chain/0006-overdue.hex")
	if err != nil {
		panic(err)
	}
	data, err := hex.DecodeString(strings.Join(strings.Fields(string(hexData)), ""))
	if err != nil {
		panic(err)
	}
	d, err := record.Diagnostic(data)
	if err != nil {
		panic(err)
	}
	// Print the body only: the hashes and the signature depend on the
	// (randomized) signatures of the committed chain.
	start := strings.Index(d, "    / body /")
	end := strings.Index(d, "  }>>")
	fmt.Print(d[start:end])
	// Output:
	//     / body / 8: {
	//       / last-checkin / 1: null,
	//       / due / 2: 1768212180 / 2026-01-12T10:03:00Z /,
	//       / missed / 3: 1
	//     }
}
