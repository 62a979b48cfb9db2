package oscore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tumbler-iot/tumbler/coap"
)

// Doer sends an outer CoAP request (the OSCORE message of RFC 8613 §4,
// §8.1) and returns the outer response; a CoAP client adapter implements it. It must send Options as given (including
// the OSCORE option, whose value may be empty) and add no Uri-Path when
// Path is empty.
type Doer interface {
	Do(ctx context.Context, r *coap.Request) (*coap.Response, error)
}

// Client protects requests and verifies responses with one security
// context, in the request/response model of package coap (RFC 8613 §8.1,
// §8.4).
type Client struct {
	Ctx *Context
}

// Protect returns the outer request for r and the Exchange that verifies
// its response. The original request is r.Method, Path (as Uri-Path),
// Query (as Uri-Query), ContentFormat and Accept (as options, unless
// coap.FormatNone), Payload, and r.Options for any other option; fields
// replace options of the same kind.
func (c Client) Protect(r *coap.Request) (*coap.Request, *Exchange, error) {
	if c.Ctx == nil {
		return nil, nil, fmt.Errorf("%w: Client without a Context", ErrInvalidParams)
	}
	m, err := requestMessage(r)
	if err != nil {
		return nil, nil, err
	}
	out, ex, err := c.Ctx.ProtectRequest(m)
	if err != nil {
		return nil, nil, err
	}
	return &coap.Request{
		Method:        out.Code,
		ContentFormat: coap.FormatNone,
		Accept:        coap.FormatNone,
		Payload:       out.Payload,
		Options:       out.Options,
		Peer:          r.Peer,
	}, ex, nil
}

// Unprotect verifies the outer response resp to the request of ex and
// returns the original response, Content-Format in ContentFormat. An
// unprotected response yields a *ServerError.
func (c Client) Unprotect(resp *coap.Response, ex *Exchange) (*coap.Response, error) {
	if c.Ctx == nil || resp == nil {
		return nil, fmt.Errorf("%w: nil Context or response", ErrInvalidParams)
	}
	dec, err := c.Ctx.UnprotectResponse(Message{Code: resp.Code, Options: resp.Options, Payload: resp.Payload}, ex)
	if err != nil {
		return nil, err
	}
	return &coap.Response{
		Code:          dec.Code,
		ContentFormat: formatOption(dec.Options, optContentFmt),
		Payload:       dec.Payload,
		Options:       slices.DeleteFunc(dec.Options, func(o message.Option) bool { return o.ID == optContentFmt }),
	}, nil
}

// Do protects r, sends it with d and verifies the response. When the
// server answers with the protected 4.01 + Echo of Appendix B.1.2 (its
// replay window was lost), Do repeats the request once, under a new Partial
// IV, with the Echo value as an Inner option (RFC 9175 §2.3), and returns
// the answer to that.
func (c Client) Do(ctx context.Context, d Doer, r *coap.Request) (*coap.Response, error) {
	resp, err := c.roundTrip(ctx, d, r)
	if err != nil {
		return nil, err
	}
	echo, ok := optionValue(resp.Options, optEcho)
	if resp.Code != codes.Unauthorized || !ok {
		return resp, nil
	}
	retry := *r
	retry.Options = append(slices.DeleteFunc(slices.Clone(r.Options), func(o message.Option) bool { return o.ID == optEcho }),
		message.Option{ID: optEcho, Value: slices.Clone(echo)})
	return c.roundTrip(ctx, d, &retry)
}

func (c Client) roundTrip(ctx context.Context, d Doer, r *coap.Request) (*coap.Response, error) {
	out, ex, err := c.Protect(r)
	if err != nil {
		return nil, err
	}
	resp, err := d.Do(ctx, out)
	if err != nil {
		return nil, err
	}
	return c.Unprotect(resp, ex)
}

// requestMessage builds the original request message from r.
func requestMessage(r *coap.Request) (Message, error) {
	opts := make(message.Options, 0, len(r.Options)+4)
	for _, o := range r.Options {
		switch {
		case o.ID == optURIPath && r.Path != "",
			o.ID == optURIQuery && len(r.Query) > 0,
			o.ID == optContentFmt && r.ContentFormat != coap.FormatNone,
			o.ID == optAccept && r.Accept != coap.FormatNone:
			continue
		}
		opts = append(opts, o)
	}
	for _, seg := range strings.Split(r.Path, "/") {
		if seg != "" {
			opts = append(opts, message.Option{ID: optURIPath, Value: []byte(seg)})
		}
	}
	for _, q := range r.Query {
		opts = append(opts, message.Option{ID: optURIQuery, Value: []byte(q)})
	}
	for _, f := range []struct {
		id message.OptionID
		v  int
	}{{optContentFmt, r.ContentFormat}, {optAccept, r.Accept}} {
		if f.v == coap.FormatNone {
			continue
		}
		if f.v < 0 || f.v > 0xffff {
			return Message{}, fmt.Errorf("%w: content format %d", ErrInvalidMessage, f.v)
		}
		opts = append(opts, message.Option{ID: f.id, Value: appendUint(nil, uint32(f.v))})
	}
	slices.SortStableFunc(opts, cmpOption)
	return Message{Code: r.Method, Options: opts, Payload: r.Payload}, nil
}
