package upstream_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/gateway/upstream"
)

// The gateway wires the outbox (here a MemorySource) to the configured
// upstreams and runs the Deliverer until shutdown.
func ExampleNewDeliverer() {
	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	cfg, err := upstream.ParseSinkURL("mqtt://127.0.0.1:1883")
	if err != nil {
		log.Fatal().Err(err).Msg("upstream")
	}
	sink, err := upstream.NewSink(cfg, "gw1", upstream.WithSinkLogger(log))
	if err != nil {
		log.Fatal().Err(err).Msg("upstream")
	}
	src := upstream.NewMemorySource()
	d, err := upstream.NewDeliverer(src, []upstream.Sink{sink},
		upstream.WithLogger(log), upstream.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		log.Fatal().Err(err).Msg("upstream")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := d.Run(ctx); err != nil {
		log.Error().Err(err).Msg("upstream stopped")
	}
}

// The expected header was computed independently with Python's hmac
// module: hmac.new(b"0123456789abcdef", b"1767225600.hello", "sha256").
func ExampleSign() {
	secret := []byte("0123456789abcdef")
	body := []byte("hello")
	header := upstream.Sign(secret, time.Unix(1767225600, 0), body)
	fmt.Println(header)
	fmt.Println(upstream.VerifySignature(secret, header, body, time.Unix(1767225660, 0), upstream.DefaultSignatureTolerance))
	// Output:
	// t=1767225600,v1=e1553611ed828d141907d45c81d3bbca60ad2c9112fd70afcc6ba9366c5a4cf3
	// <nil>
}

func ExampleParseSinkURL() {
	c, err := upstream.ParseSinkURL("mqtt://127.0.0.1:1883")
	if err != nil {
		panic(err)
	}
	fmt.Println(c.Name, c.MQTT.URL, c.MQTT.Prefix, c.MQTT.MaxInflight)
	_, err = upstream.ParseSinkURL("http://broker.example.com:1883")
	fmt.Println(err)
	// Output:
	// mqtt mqtt://127.0.0.1:1883 tumbler 64
	// upstream.webhook.url: scheme "http" is only allowed to a loopback host; use https
}
