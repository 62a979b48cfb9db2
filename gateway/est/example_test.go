package est_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/gateway/est"
	"github.com/tumbler-iot/tumbler/pki"
)

// A pledge decodes a /crts answer (Accept 62): here the cBRSKI draft's
// domain CA as the single 287 part.
func ExampleParseCerts() {
	raw, err := os.ReadFile("testdata/cv-crts-domain-ca-62.hex")
	if err != nil {
		panic(err)
	}
	payload, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	if err != nil {
		panic(err)
	}
	certs, err := est.ParseCerts(coap.FormatMultipartCore, payload)
	if err != nil {
		panic(err)
	}
	for _, c := range certs {
		fmt.Println(c.Subject.CommonName, c.IsCA)
	}
	// Output: Custom-ER Global CA true
}

// The /att answer of an EST-coaps server, decoded.
func ExampleParseCSRAttrs() {
	der, err := est.DefaultCSRAttrs().Marshal()
	if err != nil {
		panic(err)
	}
	attrs, err := est.ParseCSRAttrs(der)
	if err != nil {
		panic(err)
	}
	for _, a := range attrs {
		fmt.Println(a.OID, len(a.Values))
	}
	// Output:
	// 1.2.840.10045.4.3.2 0
	// 1.2.840.10045.2.1 1
}

type allowAll struct{ serial string }

func (a allowAll) Authorize(_ context.Context, p coap.Peer, _ est.Op) (est.Identity, error) {
	return est.Identity{DeviceID: pki.DeviceID(p.Chain[0]), Serial: a.serial}, nil
}

type logRecorder struct{}

func (logRecorder) RecordIssued(_ context.Context, id est.Identity, c *x509.Certificate, op est.Op) error {
	fmt.Println(op, "recorded for", id.Serial)
	return nil
}

// A server on a mux, and a pledge's /sen through it.
func ExampleServer_Register() {
	now := time.Now()
	caKey, _ := pki.GenerateKey(nil)
	caCert, _ := pki.NewCA(now, caKey, pki.Profile{Subject: pkix.Name{CommonName: "Domain CA"}})
	srv, err := est.NewServer(est.CA{Cert: caCert, Key: caKey},
		est.WithAuthorizer(allowAll{serial: "SN-42"}), est.WithRecorder(logRecorder{}))
	if err != nil {
		panic(err)
	}
	mux := coap.NewMux()
	srv.Register(mux)
	fmt.Println(mux.Links([]string{"rt=ace.est.sen"}))

	// The pledge side (its IDevID stands in for the DTLS-verified chain).
	devKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idevid, _ := pki.NewCA(now, devKey, pki.Profile{Subject: pkix.Name{CommonName: "pledge"}})
	csr, err := est.NewCSR(rand.Reader, devKey, idevid.Subject)
	if err != nil {
		panic(err)
	}
	resp, err := mux.ServeCoAP(context.Background(), &coap.Request{
		Method: codes.POST, Path: est.PathSen,
		ContentFormat: coap.FormatPKCS10, Accept: coap.FormatPKIXCert, Payload: csr,
		Peer: coap.Peer{Chain: []*x509.Certificate{idevid}},
	})
	if err != nil {
		panic(err)
	}
	certs, err := est.ParseCerts(resp.ContentFormat, resp.Payload)
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Code, certs[0].Subject)
	// Output:
	// </.well-known/est/sen>;rt=ace.est.sen;ct="281 287"
	// enroll recorded for SN-42
	// Changed SERIALNUMBER=SN-42,CN=pledge
}
