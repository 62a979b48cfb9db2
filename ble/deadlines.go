package ble

import (
	"time"

	"github.com/pion/transport/v5/deadline"
)

// deadlines are the read and write deadlines of a Central or a
// PeripheralConn, with the net.PacketConn methods that set them.
type deadlines struct {
	rd, wd *deadline.Deadline
}

func newDeadlines() deadlines { return deadlines{rd: deadline.New(), wd: deadline.New()} }

// SetDeadline sets the read and write deadlines.
func (d deadlines) SetDeadline(t time.Time) error {
	d.rd.Set(t)
	d.wd.Set(t)
	return nil
}

// SetReadDeadline sets the deadline for ReadFrom; zero means none.
func (d deadlines) SetReadDeadline(t time.Time) error {
	d.rd.Set(t)
	return nil
}

// SetWriteDeadline sets the deadline for WriteTo; zero means none.
func (d deadlines) SetWriteDeadline(t time.Time) error {
	d.wd.Set(t)
	return nil
}
