package upstream

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// Message is a record as an MQTT subscriber receives it.
type Message struct {
	Topic string
	// RecordID is the record-id user property (hex SHA-256 of Payload).
	RecordID string
	// ContentType is the MQTT 5 content type.
	ContentType string
	// Payload is the COSE_Sign1 record.
	Payload []byte
}

// Subscribe receives records published by Tumbler gateways on an MQTT 5
// broker (QoS 1, resubscribing after reconnects) and calls handle for each
// until ctx ends. It is the integrator's side of the MQTT sink, used by
// `tumbler record subscribe` and the tests. handle runs on paho's receive
// goroutine and must not block for long.
func Subscribe(ctx context.Context, brokerURL, clientID, topic string, handle func(Message)) error {
	u, err := url.Parse(brokerURL)
	if err != nil {
		return fmt.Errorf("upstream: subscribe: %w", err)
	}
	switch u.Scheme {
	case "mqtt":
		u.Scheme = "tcp"
	case "mqtts":
		u.Scheme = "tls"
	}
	if u.Port() == "" {
		port := defaultMQTTPort
		if isTLSScheme(u.Scheme) {
			port = defaultMQTTSPort
		}
		u.Host += ":" + port
	}
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         3600,
		ConnectTimeout:                10 * time.Second,
		// autopaho's default waits 5 s to 10 min between attempts; a
		// receiver should be back within a couple of seconds of its broker.
		ReconnectBackoff: autopaho.NewExponentialBackoff(100*time.Millisecond, 2*time.Second, 500*time.Millisecond, 2),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}})
		},
		ClientConfig: paho.ClientConfig{
			ClientID: clientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				m := Message{Topic: pr.Packet.Topic, Payload: pr.Packet.Payload}
				if p := pr.Packet.Properties; p != nil {
					m.ContentType = p.ContentType
					m.RecordID = p.User.Get(UserPropertyRecordID)
				}
				handle(m)
				return true, nil
			}},
		},
	}
	if u.User != nil {
		cfg.ConnectUsername = u.User.Username()
		pw, _ := u.User.Password()
		cfg.ConnectPassword = []byte(pw)
	}
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		return fmt.Errorf("upstream: subscribe: %w", err)
	}
	<-ctx.Done()
	dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cm.Disconnect(dctx)
	<-cm.Done()
	return nil
}
