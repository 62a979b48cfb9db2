package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/tumbler-iot/tumbler/gateway/api"
	"github.com/tumbler-iot/tumbler/gateway/ownership"
)

// overdueOnly is a service with one overdue device. It implements only
// the methods the example reaches (the embedded interface is nil).
type overdueOnly struct{ ownership.Service }

func (overdueOnly) ListDevices(context.Context, ownership.ListFilter) ([]ownership.DeviceView, error) {
	return []ownership.DeviceView{{ID: "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b", Serial: "SN-0001", State: "active", Missed: 2, Overdue: true}}, nil
}

func (overdueOnly) Scope(context.Context, string) ([]string, error) {
	return nil, ownership.ErrUnauthorized
}

func ExampleClient() {
	const token = "example-admin-token-0001"
	srv, err := api.New(overdueOnly{}, api.Config{Tokens: []string{token}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := api.NewClient(ts.URL, token)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseIdleConnections()
	devices, err := c.ListDevices(ctx, ownership.ListFilter{Overdue: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range devices {
		fmt.Println(d.Serial, d.State, "missed", d.Missed)
	}

	stranger, err := api.NewClient(ts.URL, "somebody-elses-token-01")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stranger.CloseIdleConnections()
	_, err = stranger.ListDevices(ctx, ownership.ListFilter{})
	fmt.Println(err, errors.Is(err, ownership.ErrUnauthorized))
	// Output:
	// SN-0001 active missed 2
	// 401 Unauthorized: invalid token true
}
