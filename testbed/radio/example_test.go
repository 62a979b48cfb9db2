package radio_test

import (
	"fmt"

	"github.com/tumbler-iot/tumbler/testbed/radio"
)

// A 300-byte datagram on a three-hop Thread mesh whose frames carry 96 bytes
// travels as four 6LoWPAN fragments, twelve link frames in all.
func ExampleWithFragmentation() {
	n, err := radio.NewNetwork(radio.WithHops(3), radio.WithFragmentation(96))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()
	mote, _ := n.Listen("mote-1:49152")
	if _, err := n.Listen("gw:5684"); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := mote.WriteTo(make([]byte, 300), radio.Addr("gw:5684")); err != nil {
		fmt.Println(err)
		return
	}
	st := n.Stats()
	fmt.Println("frames:", st.Frames, "delivered:", st.Delivered, "dropped:", st.Dropped())
	// Output: frames: 12 delivered: 1 dropped: 0
}
