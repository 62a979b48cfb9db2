package record

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/tumbler-iot/tumbler/cose"
	"github.com/tumbler-iot/tumbler/cose/voucher"
)

// readTestdata reads a file from testdata.
func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// readHex reads a hex file from testdata, ignoring white space.
func readHex(tb testing.TB, name string) []byte {
	tb.Helper()
	return mustHex(tb, string(readTestdata(tb, name)))
}

// mustHex decodes hex, ignoring white space.
func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// formatHex renders b as upper-case hex wrapped at 64 characters.
func formatHex(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	var sb strings.Builder
	for len(h) > 64 {
		sb.WriteString(h[:64] + "\n")
		h = h[64:]
	}
	sb.WriteString(h + "\n")
	return sb.String()
}

// gatewayKey is the committed test gateway key (testdata/gateway_key.pem).
func gatewayKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	blk, _ := pem.Decode(readTestdata(tb, "gateway_key.pem"))
	if blk == nil || blk.Type != "PRIVATE KEY" {
		tb.Fatal("testdata/gateway_key.pem: no PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return k.(*ecdsa.PrivateKey)
}

// otherKey returns a fresh P-256 key: "another gateway".
func otherKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// otherP384 returns a fresh P-384 key.
func otherP384(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// Test devices. Device A is the cBRSKI draft's pledge: its id is the
// SHA-256 of /work/shared/vectors/cbrski/pledge.der and its serial that
// certificate's subject serialNumber. B and C are made up.
var (
	deviceA = DeviceID(mustDecodeHex("f0c761c64d6acc9c57a66f2a7ae64d1128e6c0bd6628e95f65dabac47f6c9429"))
	deviceB = DeviceIDOf([]byte("tumbler test device B"))
	deviceC = DeviceIDOf([]byte("tumbler test device C"))
)

const (
	serialA = "JADA123456789"
	serialB = "TB-0002"
	serialC = "TB-0003"
)

// draftVoucherHash is the SHA-256 of the cBRSKI draft's voucher.hex.
var draftVoucherHash = [32]byte(mustDecodeHex("1bfbde1247dc2cb384fd90ce0621b3ba1249d5a4d7a02309359bbc3f813c7728"))

func mustDecodeHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// t0 is the time of the golden chain's first record.
var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// raw encodes v with cose's deterministic mode.
func raw(tb testing.TB, v any) cbor.RawMessage {
	tb.Helper()
	b, err := cose.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// goldenEntry is one record of the golden chain: everything but Prev,
// which follows from the files before it.
type goldenEntry struct {
	file   string
	device DeviceID
	serial string
	seq    uint64
	typ    Type
	body   TypedBody // nil for reserved types
	raw    Body      // reserved types
}

// goldenChain is the committed chain testdata/chain/*.hex, in order: three
// devices interleaved, every type with a typed body, two reserved types, a
// re-enrollment and a gap in the sequence numbers.
func goldenChain(tb testing.TB) []goldenEntry {
	return []goldenEntry{
		{file: "0001-enroll.hex", device: deviceA, serial: serialA, seq: 1, body: &EnrollBody{
			LDevIDSerial:   []byte{0x01, 0x7e, 0xad},
			LDevIDNotAfter: time.Date(2028, 1, 5, 10, 0, 0, 0, time.UTC),
			LDevIDHash:     [32]byte(mustDecodeHex("9c3e0e2d6e6c35a2b7f4a6d03f0b2c1e5d4a3b2c1d0e0f1a2b3c4d5e6f708192")),
			VoucherHash:    draftVoucherHash,
			MASAURL:        "https://masa.stok.nl/.well-known/brski",
			Assertion:      voucher.Proximity,
		}},
		{file: "0002-enroll.hex", device: deviceB, serial: serialB, seq: 2, body: &EnrollBody{
			LDevIDSerial:   []byte{0x02},
			LDevIDNotAfter: time.Date(2028, 1, 5, 10, 1, 0, 0, time.UTC),
			LDevIDHash:     [32]byte(mustDecodeHex("0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20")),
			VoucherHash:    [32]byte(mustDecodeHex("a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0")),
			MASAURL:        "https://masa.example/.well-known/brski",
			Assertion:      voucher.Logged,
		}},
		{file: "0003-checkin.hex", device: deviceA, serial: serialA, seq: 3, body: &CheckInBody{
			Uptime: 3600, Firmware: "1.4.2", Battery: ptr(uint8(87)), Reboots: 2,
			OSCORESeq: ptr(uint64(17)), NextDue: time.Date(2026, 1, 12, 10, 2, 0, 0, time.UTC),
			Extra: Body{
				5: raw(tb, "rssi -71"),
				9: raw(tb, []any{uint64(1), -2, 3.5}),
			},
		}},
		{file: "0004-enroll.hex", device: deviceC, serial: serialC, seq: 4, body: &EnrollBody{
			LDevIDSerial:   []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88},
			LDevIDNotAfter: time.Date(2028, 1, 5, 10, 3, 0, 0, time.UTC),
			LDevIDHash:     [32]byte(mustDecodeHex("5f5e5d5c5b5a595857565554535251504f4e4d4c4b4a49484746454443424140")),
			VoucherHash:    [32]byte(mustDecodeHex("c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf")),
			MASAURL:        "https://masa.example/.well-known/brski",
			Assertion:      voucher.Verified,
		}},
		{file: "0005-checkin.hex", device: deviceB, serial: serialB, seq: 5, body: &CheckInBody{
			Uptime: 120, Firmware: "0.9.0", Reboots: 0,
		}},
		{file: "0006-overdue.hex", device: deviceC, serial: serialC, seq: 6, body: &OverdueBody{
			Due: time.Date(2026, 1, 12, 10, 3, 0, 0, time.UTC), Missed: 1,
		}},
		{file: "0007-transfer.hex", device: deviceA, serial: serialA, seq: 7, body: &TransferBody{
			Out:               true,
			AuthorizationHash: [32]byte(mustDecodeHex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")),
			NewOwner:          [32]byte(mustDecodeHex("ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100")),
			NotAfter:          time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
		}},
		{file: "0009-enroll.hex", device: deviceB, serial: serialB, seq: 9, body: &EnrollBody{
			LDevIDSerial:   []byte{0x03},
			LDevIDNotAfter: time.Date(2028, 1, 5, 10, 8, 0, 0, time.UTC),
			LDevIDHash:     [32]byte(mustDecodeHex("fefdfcfbfaf9f8f7f6f5f4f3f2f1f0efeeedecebeae9e8e7e6e5e4e3e2e1e0df")),
			ReEnrollment:   true,
		}},
		{file: "0010-decommission.hex", device: deviceC, serial: serialC, seq: 10, body: &DecommissionBody{
			Reason: "end of life", Revoked: [][]byte{{0x02}},
		}},
	}
}

// record builds the Record of e with the given prev, at t0 + seq minutes.
func (e goldenEntry) record(tb testing.TB, prev *ID) *Record {
	tb.Helper()
	r := &Record{
		Type: e.typ, Device: e.device, Serial: e.serial,
		Time: t0.Add(time.Duration(e.seq) * time.Minute), Seq: e.seq, Prev: prev,
		Body: e.raw,
	}
	if e.body != nil {
		if err := r.SetBody(e.body); err != nil {
			tb.Fatalf("%s: %v", e.file, err)
		}
	}
	return r
}

// loadGoldenChain reads the committed chain.
func loadGoldenChain(tb testing.TB) (files []string, data [][]byte) {
	tb.Helper()
	for _, e := range goldenChain(tb) {
		files = append(files, filepath.Join("testdata", "chain", e.file))
		data = append(data, readHex(tb, filepath.Join("chain", e.file)))
	}
	return files, data
}

// mustParse parses data or fails the test.
func mustParse(tb testing.TB, data []byte) *Signed {
	tb.Helper()
	s, err := Parse(data)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// mustSign signs r with key or fails the test.
func mustSign(tb testing.TB, key *ecdsa.PrivateKey, r *Record) []byte {
	tb.Helper()
	b, err := Sign(rand.Reader, key, r)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
