// Package oscore implements Object Security for Constrained RESTful
// Environments (OSCORE, RFC 8613) for CoAP servers and clients: security
// context derivation (§3), the OSCORE option (§6.1), protection and
// verification of whole CoAP messages (§4, §5, §8) with AES-CCM-16-64-128,
// the replay window (§7.4), Sender Sequence Number persistence (Appendix
// B.1.1) and replay-window recovery with the Echo option (Appendix B.1.2,
// RFC 9175).
//
// Message level: a client calls Context.ProtectRequest and, with the
// returned Exchange, Context.UnprotectResponse; a server calls
// Context.UnprotectRequest and Context.ProtectResponse. Messages are
// go-coap messages, so the UDP codec turns them into bytes; the tests
// reproduce RFC 8613 Appendix C byte for byte.
//
// Request/response level: Handler serves OSCORE in front of a coap.Handler,
// finding contexts in a ContextStore; Client does the same for a client.
//
// Observe (§4.1.3.5) is supported at the message level: FETCH/2.05 outer
// codes, notifications with their own Partial IVs, ordering by Partial IV.
// Block-wise: Block options of the original message are Inner options
// (§4.1.3.4.1), so end-to-end fragmentation is protected per block. Outer
// Block options (§4.1.3.4.2) belong to the CoAP transport, which reassembles
// before OSCORE sees the message (go-coap's blockwise layer, whose maximum
// message size is the MAX_UNFRAGMENTED_SIZE policy); any outer Block option
// that still reaches this package is discarded as §8.2 step 1 requires.
// Appendix B.2 context re-derivation, Group OSCORE and Class I options are
// not implemented.
package oscore
