package masa

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Event is one audit-log entry: a voucher issued for a device. The JSON
// field names are RFC 8995 §5.8.1's audit-log-response event, with the
// device serial added for the MASA's own index.
type Event struct {
	Serial    string    `json:"serial"`
	Date      time.Time `json:"date"`
	DomainID  string    `json:"domainID"` // base64 of the pinned domain CA's key identifier
	Nonce     *string   `json:"nonce"`    // base64, null for a nonceless voucher
	Assertion string    `json:"assertion"`
}

// auditLog keeps the events in memory, indexed by serial, and appends each
// one to a JSON-lines file with fsync before the voucher is released: a
// voucher the MASA handed out is always in its log.
type auditLog struct {
	mu      sync.Mutex
	f       *os.File
	events  map[string][]Event
	written uint64 // appends written to f

	syncMu sync.Mutex
	synced uint64 // appends known durable
}

func openAudit(path string) (*auditLog, error) {
	a := &auditLog{events: make(map[string][]Event)}
	if path == "" {
		return a, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("masa: audit log: %w", err)
	}
	r := bufio.NewReader(f)
	var off int64
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if len(b) != 0 {
				// A torn last line from a crash mid-append: the voucher
				// it describes was never released (fsync precedes the
				// response), so the line is dropped.
				if err := f.Truncate(off); err != nil {
					f.Close()
					return nil, fmt.Errorf("masa: audit log: %w", err)
				}
			}
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("masa: audit log: %w", err)
		}
		var e Event
		if err := json.Unmarshal(b, &e); err != nil {
			f.Close()
			return nil, fmt.Errorf("masa: audit log %s line %d: %w", path, line, err)
		}
		a.events[e.Serial] = append(a.events[e.Serial], e)
		off += int64(len(b))
	}
	a.f = f
	return a, nil
}

// claim appends e if check (called with the log locked, so that checking
// ownership and recording the new owner are atomic) allows it, and returns
// once the line is durable.
func (a *auditLog) claim(e Event, check func(prev []Event) error) error {
	a.mu.Lock()
	if err := check(a.events[e.Serial]); err != nil {
		a.mu.Unlock()
		return err
	}
	if a.f != nil {
		b, err := json.Marshal(e)
		if err == nil {
			_, err = a.f.Write(append(b, '\n'))
		}
		if err != nil {
			a.mu.Unlock()
			return fmt.Errorf("masa: audit log: %w", err)
		}
	}
	a.events[e.Serial] = append(a.events[e.Serial], e)
	a.written++
	gen := a.written
	a.mu.Unlock()
	return a.syncTo(gen)
}

// syncTo returns once append number gen is on disk. Concurrent callers
// share fsyncs: whoever holds syncMu syncs everything written so far.
func (a *auditLog) syncTo(gen uint64) error {
	if a.f == nil {
		return nil
	}
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	if a.synced >= gen {
		return nil
	}
	a.mu.Lock()
	target := a.written
	a.mu.Unlock()
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("masa: audit log: %w", err)
	}
	a.synced = target
	return nil
}

// currentOwner is the domain of the latest voucher for serial.
func (a *auditLog) currentOwner(serial string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ev := a.events[serial]
	if len(ev) == 0 {
		return "", false
	}
	return ev[len(ev)-1].DomainID, true
}

func (a *auditLog) list(serial string) []Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Event(nil), a.events[serial]...)
}

func (a *auditLog) close() error {
	if a.f == nil {
		return nil
	}
	return a.f.Close()
}

// auditResponse is RFC 8995 §5.8.1's audit-log-response:
//
//	audit-log-response = {
//	  "version": uint,
//	  "events": [ + event ]
//	  "truncation": {
//	    ? "nonced duplicates": uint,
//	    ? "nonceless duplicates": uint,
//	    ? "arbitrary": uint,
//	  }
//	}
//	event = {
//	  "date": text,
//	  "domainID": text,
//	  "nonce": text / null,
//	  "assertion": "verified" / "logged" / "proximity",
//	  ? "truncated": uint,
//	}
type auditResponse struct {
	Version    int             `json:"version"`
	Events     []auditEvent    `json:"events"`
	Truncation map[string]uint `json:"truncation"`
}

type auditEvent struct {
	Date      string  `json:"date"`
	DomainID  string  `json:"domainID"`
	Nonce     *string `json:"nonce"`
	Assertion string  `json:"assertion"`
}

func renderAudit(ev []Event) auditResponse {
	out := auditResponse{Version: 1, Events: []auditEvent{}, Truncation: map[string]uint{}}
	for _, e := range ev {
		out.Events = append(out.Events, auditEvent{
			Date: e.Date.UTC().Format(time.RFC3339), DomainID: e.DomainID, Nonce: e.Nonce, Assertion: e.Assertion,
		})
	}
	return out
}
