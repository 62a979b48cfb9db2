package upstream

import (
	"context"
	"io"
	"sync"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho/session"
)

// lockedSession serialises paho's session state across reconnects.
//
// In paho.golang v0.23.0, State.AddToSession reads the connection's send
// quota after releasing its mutex, while State.ConAckReceived replaces the
// quota for a new connection: a publish racing a reconnect is a data race,
// and can store a message against the old connection that the new
// connection's resend scan misses (eclipse-paho/paho.golang#341 and #343,
// fixed after v0.23.0). Holding a read lock over AddToSession and the write
// lock over ConAckReceived orders them. It cannot deadlock: an AddToSession
// blocked on the quota is released when its connection is lost, and paho
// calls ConnectionLost (not locked here) before the next ConAckReceived.
type lockedSession struct {
	session.SessionManager
	mu sync.RWMutex
}

func (l *lockedSession) AddToSession(ctx context.Context, p session.Packet, resp chan<- packets.ControlPacket) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.SessionManager.AddToSession(ctx, p, resp)
}

func (l *lockedSession) ConAckReceived(w io.Writer, cp *packets.Connect, ca *packets.Connack) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.SessionManager.ConAckReceived(w, cp, ca)
}
