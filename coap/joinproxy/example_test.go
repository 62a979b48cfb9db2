package joinproxy_test

import (
	"encoding/hex"
	"fmt"

	"github.com/tumbler-iot/tumbler/coap/joinproxy"
)

// A JPY message round trip: the header and content of the draft's
// Appendix A reply, shortened.
func ExampleDecode() {
	b, _ := hex.DecodeString("8250d01914bcc376a88ffecc50ca6017b0c1" + "4d16fefd0000000000000000002f")
	m, err := joinproxy.Decode(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("header  %x\ncontent %x\n", m.Header, m.Content)
	out, _ := m.Encode()
	fmt.Println(hex.EncodeToString(out) == hex.EncodeToString(b))
	// Output:
	// header  d01914bcc376a88ffecc50ca6017b0c1
	// content 16fefd0000000000000000002f
	// true
}

// A registrar accepts arrays of two or more elements and uses the first
// two.
func ExampleMessage_Encode() {
	b, _ := hex.DecodeString("83" + "4101" + "420203" + "f6") // [h'01', h'0203', null]
	m, _ := joinproxy.Decode(b)
	out, _ := m.Encode()
	fmt.Printf("%x\n", out)
	// Output: 824101420203
}
