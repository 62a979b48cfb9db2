package meshcop_test

import (
	"fmt"

	"github.com/tumbler-iot/tumbler/thread/meshcop"
)

// Steering data admitting one joiner, as a commissioner sets it with
// MGMT_COMMISSIONER_SET (the ot-br-posix self-test vector).
func ExampleSteeringData() {
	eui, _ := meshcop.ParseEUI64("18b4300000000002")
	id := meshcop.JoinerIDFromEUI64(eui)
	sd, _ := meshcop.NewSteeringData(15)
	sd.Add(id)
	fmt.Println(id, sd, sd.Contains(id))
	// Output: d65e64fa83f81cf7 000000020000001000000000000000 true
}

// An RLY_TX.ntf payload carrying a DTLS record back to a joiner.
func ExampleRelay() {
	r := &meshcop.Relay{
		JoinerUDPPort:       993,
		JoinerIID:           [8]byte{0xd4, 0x5e, 0x64, 0xfa, 0x83, 0xf8, 0x1c, 0xf7},
		JoinerRouterLocator: 0x0400,
		Payload:             []byte{0x16, 0xfe, 0xfd},
	}
	b, _ := r.MarshalBinary()
	fmt.Printf("%x\n", b)
	// Output: 120203e1140204001308d45e64fa83f81cf711ff000316fefd
}

func ExamplePSKc() {
	pskc, _ := meshcop.PSKc("12SECRETPASSWORD34", "Test Network", [8]byte{0, 1, 2, 3, 4, 5, 6, 7})
	fmt.Printf("%x\n", pskc)
	// Output: c3f59368445a1b6106be420a706d4cc9
}
