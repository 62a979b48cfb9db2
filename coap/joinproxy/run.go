package joinproxy

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// runner makes Serve single-use and lets Close stop it.
type runner struct {
	mu      sync.Mutex
	serving bool
	closed  bool
	cancel  context.CancelFunc
}

// begin starts the one Serve of a proxy. It returns the serving context
// (cancelled by Close or when Serve ends) and its cancel function.
func (r *runner) begin(ctx context.Context) (context.Context, context.CancelFunc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.serving || r.closed {
		return nil, nil, ErrServing
	}
	r.serving = true
	run, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	return run, cancel, nil
}

// close stops a running Serve (which then returns nil) and refuses later
// ones.
func (r *runner) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.cancel != nil {
		r.cancel()
	}
}

// checkLinks validates the pledge-facing links of a Serve call: one to 256
// of them (the header carries the link index in one byte), none nil.
func checkLinks(links []net.PacketConn) error {
	if len(links) == 0 || len(links) > 256 {
		return invalid("%d links, want 1 to 256", len(links))
	}
	for i, l := range links {
		if l == nil {
			return invalid("link %d is nil", i)
		}
	}
	return nil
}

func closeAll(conns ...net.PacketConn) {
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
}

// readEnded reports whether a read error is the end of serving (Serve's
// context is done, and it closed the socket) rather than a failure.
func readEnded(ctx context.Context) bool { return ctx.Err() != nil }

// sampled is the logger for per-datagram lines: debug level, at most a
// burst of 10 a second.
func sampled(l zerolog.Logger) zerolog.Logger {
	return l.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Second})
}

// sameAddr reports whether a and b name the same endpoint.
func sameAddr(a net.Addr, key string) bool {
	return a != nil && a.String() == key
}
