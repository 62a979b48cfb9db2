package upstream

import (
	"errors"
	"testing"
	"time"
)

func TestValidateSinks(t *testing.T) {
	okMQTT := &MQTTConfig{URL: "mqtt://127.0.0.1:1883"}
	okHook := &WebhookConfig{URL: "https://crm.example.com/hook"}
	tests := []struct {
		name      string
		list      []SinkConfig
		wantField string // "" means valid
		wantMsg   string // checked when set
	}{
		{name: "valid mqtt and webhook", list: []SinkConfig{{Name: "broker", MQTT: okMQTT}, {Name: "crm", Webhook: okHook}}},
		{name: "empty list", list: nil},
		{
			name:      "http scheme for mqtt",
			list:      []SinkConfig{{Name: "a", MQTT: okMQTT}, {Name: "b", MQTT: &MQTTConfig{URL: "http://broker:1883"}}},
			wantField: "upstream[1].mqtt.url",
			wantMsg:   `upstream[1].mqtt.url: scheme "http" is not mqtt, mqtts, tcp, ssl or tls`,
		},
		{name: "missing name", list: []SinkConfig{{MQTT: okMQTT}}, wantField: "upstream[0].name"},
		{name: "bad name", list: []SinkConfig{{Name: "a b", MQTT: okMQTT}}, wantField: "upstream[0].name"},
		{name: "duplicate name", list: []SinkConfig{{Name: "x", MQTT: okMQTT}, {Name: "x", Webhook: okHook}}, wantField: "upstream[1].name"},
		{name: "neither kind", list: []SinkConfig{{Name: "x"}}, wantField: "upstream[0].mqtt"},
		{name: "both kinds", list: []SinkConfig{{Name: "x", MQTT: okMQTT, Webhook: okHook}}, wantField: "upstream[0].mqtt"},
		{name: "mqtt url missing", list: []SinkConfig{{Name: "x", MQTT: &MQTTConfig{}}}, wantField: "upstream[0].mqtt.url"},
		{name: "mqtt url with path", list: []SinkConfig{{Name: "x", MQTT: &MQTTConfig{URL: "mqtt://h/a"}}}, wantField: "upstream[0].mqtt.url"},
		{name: "mqtt url with credentials", list: []SinkConfig{{Name: "x", MQTT: &MQTTConfig{URL: "mqtt://u:p@h"}}}, wantField: "upstream[0].mqtt.url"},
		{name: "mqtt bad port", list: []SinkConfig{{Name: "x", MQTT: &MQTTConfig{URL: "mqtt://h:99999"}}}, wantField: "upstream[0].mqtt.url"},
		{name: "prefix with wildcard", list: []SinkConfig{{Name: "x", MQTT: &MQTTConfig{URL: "mqtt://h", Prefix: "a/+"}}}, wantField: "upstream[0].mqtt.prefix"},
		{name: "prefix with empty level", list: []SinkConfig{{Name: "x", MQTT: &MQTTConfig{URL: "mqtt://h", Prefix: "a//b"}}}, wantField: "upstream[0].mqtt.prefix"},
		{name: "prefix $SYS", list: []SinkConfig{{Name: "x", MQTT: &MQTTConfig{URL: "mqtt://h", Prefix: "$SYS"}}}, wantField: "upstream[0].mqtt.prefix"},
		{name: "multi-level prefix ok", list: []SinkConfig{{Name: "x", MQTT: &MQTTConfig{URL: "mqtt://h", Prefix: "site/a"}}}},
		{name: "password without username", list: []SinkConfig{{Name: "x", MQTT: &MQTTConfig{URL: "mqtt://h", Password: "p"}}}, wantField: "upstream[0].mqtt.username"},
		{name: "tls on plain mqtt", list: []SinkConfig{{Name: "x", MQTT: &MQTTConfig{URL: "mqtt://h", TLS: TLSConfig{CAFile: "ca.pem"}}}}, wantField: "upstream[0].mqtt.tls"},
		{name: "tls on mqtts ok", list: []SinkConfig{{Name: "x", MQTT: &MQTTConfig{URL: "mqtts://h", TLS: TLSConfig{CAFile: "ca.pem"}}}}},
		{name: "inline ca not PEM", list: []SinkConfig{{Name: "x", MQTT: &MQTTConfig{URL: "mqtts://h", TLS: TLSConfig{CA: "not a certificate"}}}}, wantField: "upstream[0].mqtt.tls.ca"},
		{name: "inline ca and ca file", list: []SinkConfig{{Name: "x", Webhook: &WebhookConfig{URL: "https://h/x", TLS: TLSConfig{CA: "x", CAFile: "ca.pem"}}}}, wantField: "upstream[0].webhook.tls.ca"},
		{name: "key without cert", list: []SinkConfig{{Name: "x", MQTT: &MQTTConfig{URL: "ssl://h", TLS: TLSConfig{KeyFile: "k.pem"}}}}, wantField: "upstream[0].mqtt.tls.cert_file"},
		{name: "keep alive too long", list: []SinkConfig{{Name: "x", MQTT: &MQTTConfig{URL: "mqtt://h", KeepAlive: 24 * time.Hour}}}, wantField: "upstream[0].mqtt.keep_alive"},
		{name: "sub-second session expiry", list: []SinkConfig{{Name: "x", MQTT: &MQTTConfig{URL: "mqtt://h", SessionExpiry: time.Millisecond}}}, wantField: "upstream[0].mqtt.session_expiry"},
		{name: "negative inflight", list: []SinkConfig{{Name: "x", MQTT: &MQTTConfig{URL: "mqtt://h", MaxInflight: -1}}}, wantField: "upstream[0].mqtt.max_inflight"},
		{name: "webhook ftp", list: []SinkConfig{{Name: "x", Webhook: &WebhookConfig{URL: "ftp://h/x"}}}, wantField: "upstream[0].webhook.url"},
		{name: "webhook http to a public host", list: []SinkConfig{{Name: "x", Webhook: &WebhookConfig{URL: "http://crm.example.com/x"}}}, wantField: "upstream[0].webhook.url"},
		{name: "webhook http to loopback ok", list: []SinkConfig{{Name: "x", Webhook: &WebhookConfig{URL: "http://127.0.0.1:8080/x"}}}},
		{name: "webhook bad format", list: []SinkConfig{{Name: "x", Webhook: &WebhookConfig{URL: "https://h/x", Format: "xml"}}}, wantField: "upstream[0].webhook.format"},
		{name: "webhook short secret", list: []SinkConfig{{Name: "x", Webhook: &WebhookConfig{URL: "https://h/x", Secret: "short"}}}, wantField: "upstream[0].webhook.secret"},
		{name: "webhook reserved header", list: []SinkConfig{{Name: "x", Webhook: &WebhookConfig{URL: "https://h/x", Headers: map[string]string{"idempotency-key": "x"}}}}, wantField: "upstream[0].webhook.headers"},
		{name: "webhook header injection", list: []SinkConfig{{Name: "x", Webhook: &WebhookConfig{URL: "https://h/x", Headers: map[string]string{"X-A": "a\r\nB: c"}}}}, wantField: "upstream[0].webhook.headers"},
		{name: "webhook tiny timeout", list: []SinkConfig{{Name: "x", Webhook: &WebhookConfig{URL: "https://h/x", Timeout: time.Millisecond}}}, wantField: "upstream[0].webhook.timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateSinks(tt.list)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("ValidateSinks: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %T %v, want *FieldError", err, err)
			}
			if fe.Field != tt.wantField {
				t.Errorf("field = %q, want %q (%v)", fe.Field, tt.wantField, err)
			}
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Errorf("message = %q, want %q", err.Error(), tt.wantMsg)
			}
		})
	}
}

func TestParseSinkURL(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    SinkConfig
		wantErr bool
	}{
		{
			name: "plain mqtt",
			in:   "mqtt://127.0.0.1:1883",
			want: SinkConfig{Name: "mqtt", MQTT: &MQTTConfig{URL: "mqtt://127.0.0.1:1883"}},
		},
		{
			name: "mqtts with credentials",
			in:   "mqtts://gw:s3cret@broker.example.com",
			want: SinkConfig{Name: "mqtt", MQTT: &MQTTConfig{URL: "mqtts://broker.example.com", Username: "gw", Password: "s3cret"}},
		},
		{
			name: "https webhook",
			in:   "https://crm.example.com/tumbler?tenant=7",
			want: SinkConfig{Name: "webhook", Webhook: &WebhookConfig{URL: "https://crm.example.com/tumbler?tenant=7"}},
		},
		{name: "loopback http webhook", in: "http://127.0.0.1:9000/hook", want: SinkConfig{Name: "webhook", Webhook: &WebhookConfig{URL: "http://127.0.0.1:9000/hook"}}},
		{name: "public http webhook", in: "http://crm.example.com/x", wantErr: true},
		{name: "unknown scheme", in: "amqp://h", wantErr: true},
		{name: "garbage", in: "::", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSinkURL(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("err = %v, want ErrConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want.WithDefaults()
			if got.Name != want.Name {
				t.Errorf("name = %q, want %q", got.Name, want.Name)
			}
			switch {
			case want.MQTT != nil:
				if got.MQTT == nil || *got.MQTT != *want.MQTT {
					t.Errorf("mqtt = %+v, want %+v", got.MQTT, want.MQTT)
				}
			case want.Webhook != nil:
				if got.Webhook == nil || got.Webhook.URL != want.Webhook.URL || got.Webhook.Format != FormatCOSE {
					t.Errorf("webhook = %+v, want %+v", got.Webhook, want.Webhook)
				}
			}
		})
	}
}

func TestNewSinkFieldErrors(t *testing.T) {
	tests := []struct {
		name      string
		cfg       SinkConfig
		gateway   string
		wantField string
	}{
		{
			name:      "missing ca file",
			cfg:       SinkConfig{Name: "b", MQTT: &MQTTConfig{URL: "mqtts://127.0.0.1", TLS: TLSConfig{CAFile: "/nonexistent/ca.pem"}}},
			gateway:   "gw",
			wantField: "mqtt.tls.ca_file",
		},
		{
			name:      "missing client cert",
			cfg:       SinkConfig{Name: "w", Webhook: &WebhookConfig{URL: "https://127.0.0.1/x", TLS: TLSConfig{CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem"}}},
			gateway:   "gw",
			wantField: "webhook.tls.cert_file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSink(tt.cfg, tt.gateway)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.wantField {
				t.Fatalf("err = %v, want a field error on %s", err, tt.wantField)
			}
		})
	}
	if _, err := NewSink(SinkConfig{Name: "b", MQTT: &MQTTConfig{URL: "mqtt://h"}}, "gw/1"); !errors.Is(err, ErrConfig) {
		t.Errorf("gateway id with '/': err = %v, want ErrConfig", err)
	}
}
