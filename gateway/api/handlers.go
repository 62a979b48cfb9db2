package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tumbler-iot/tumbler/gateway/ownership"
)

// DeviceList is the response of GET /api/devices.
type DeviceList struct {
	Devices []ownership.DeviceView `json:"devices"`
}

// ParkedList is the response of GET /api/parked.
type ParkedList struct {
	Parked []ownership.ParkedView `json:"parked"`
}

// Ack is the response of the operations that return nothing else: reset,
// decommission, readmit and the end of a delegation.
type Ack struct {
	Device     string `json:"device"`
	Action     string `json:"action"` // reset, decommission, readmit, end-delegation
	Delegation string `json:"delegation,omitempty"`
	// Pending is set when the action waits for the device's next check-in
	// (a reset without immediate).
	Pending bool `json:"pending,omitempty"`
}

// Health is the response of GET /healthz when healthy.
type Health struct {
	Status string `json:"status"` // "ok"
}

// Actions named in an Ack.
const (
	ActionReset         = "reset"
	ActionDecommission  = "decommission"
	ActionReadmit       = "readmit"
	ActionObject        = "object"
	ActionEndDelegation = "end-delegation"
)

// listDevices: GET /api/devices?state=&overdue=&limit=
func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, c caller) error {
	q, err := queryParams(r, "state", "overdue", "limit")
	if err != nil {
		return err
	}
	f := ownership.ListFilter{State: q.Get("state")}
	if v := q.Get("overdue"); v != "" {
		if f.Overdue, err = strconv.ParseBool(v); err != nil {
			return invalid("query parameter \"overdue\": %q is not true or false", clip(v))
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 0 {
			return invalid("query parameter \"limit\": %q is not a non-negative integer", clip(v))
		}
	}
	if c.admin < 0 {
		f.IDs = append([]string{}, c.scope...) // not nil: only the delegate's devices
	}
	list, err := s.svc.ListDevices(r.Context(), f)
	if err != nil {
		return err
	}
	if c.admin < 0 {
		for i := range list {
			list[i].Claim = nil // between owners
		}
	}
	if list == nil {
		list = []ownership.DeviceView{}
	}
	writeJSON(w, http.StatusOK, DeviceList{Devices: list})
	return nil
}

// getDevice: GET /api/devices/{id}. A delegate is not shown the device's
// delegations, which name the other delegates, nor repossession claims,
// which are between owners.
func (s *Server) getDevice(w http.ResponseWriter, r *http.Request, c caller) error {
	id, err := deviceID(r)
	if err != nil {
		return err
	}
	d, err := s.svc.GetDevice(r.Context(), id)
	if err != nil {
		return err
	}
	if c.admin < 0 {
		d.Delegations = []ownership.DelegationView{}
		d.Claims, d.Claim = []ownership.ClaimView{}, nil
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// expect: POST /api/devices/expected
func (s *Server) expect(w http.ResponseWriter, r *http.Request) error {
	var req ownership.ExpectRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	res, err := s.svc.Expect(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, res)
	return nil
}

// transfer: POST /api/devices/{id}/transfer
func (s *Server) transfer(w http.ResponseWriter, r *http.Request) error {
	id, err := deviceID(r)
	if err != nil {
		return err
	}
	var req ownership.TransferRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	res, err := s.svc.Transfer(r.Context(), id, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// repossess: POST /api/repossess
func (s *Server) repossess(w http.ResponseWriter, r *http.Request) error {
	var req ownership.RepossessRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	res, err := s.svc.Repossess(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// reset: POST /api/devices/{id}/reset (body optional). 202 when the reset
// waits for the device's check-in, 200 when immediate.
func (s *Server) reset(w http.ResponseWriter, r *http.Request) error {
	id, err := deviceID(r)
	if err != nil {
		return err
	}
	var req ownership.ResetRequest
	if err := decodeBody(w, r, &req, true); err != nil {
		return err
	}
	if err := s.svc.Reset(r.Context(), id, req); err != nil {
		return err
	}
	status := http.StatusOK
	if !req.Immediate {
		status = http.StatusAccepted
	}
	writeJSON(w, status, Ack{Device: id, Action: ActionReset, Pending: !req.Immediate})
	return nil
}

// decommission: POST /api/devices/{id}/decommission (body optional)
func (s *Server) decommission(w http.ResponseWriter, r *http.Request) error {
	id, err := deviceID(r)
	if err != nil {
		return err
	}
	var req ownership.DecommissionRequest
	if err := decodeBody(w, r, &req, true); err != nil {
		return err
	}
	if err := s.svc.Decommission(r.Context(), id, req); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Ack{Device: id, Action: ActionDecommission})
	return nil
}

// readmit: POST /api/devices/{id}/readmit (no body, or {})
func (s *Server) readmit(w http.ResponseWriter, r *http.Request) error {
	return s.bareAction(w, r, s.svc.Readmit, ActionReadmit)
}

// object: POST /api/devices/{id}/object (no body, or {})
func (s *Server) object(w http.ResponseWriter, r *http.Request) error {
	return s.bareAction(w, r, s.svc.Object, ActionObject)
}

// bareAction runs an operation on a device that takes no request body
// (none, or {}) and answers 200 with an Ack.
func (s *Server) bareAction(w http.ResponseWriter, r *http.Request, do func(context.Context, string) error, action string) error {
	id, err := deviceID(r)
	if err != nil {
		return err
	}
	var none struct{}
	if err := decodeBody(w, r, &none, true); err != nil {
		return err
	}
	if err := do(r.Context(), id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Ack{Device: id, Action: action})
	return nil
}

// delegate: POST /api/devices/{id}/delegations. 201 with Location; the
// token in the body is shown once.
func (s *Server) delegate(w http.ResponseWriter, r *http.Request) error {
	id, err := deviceID(r)
	if err != nil {
		return err
	}
	var req ownership.DelegateRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	res, err := s.svc.Delegate(r.Context(), id, req)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/devices/"+id+"/delegations/"+url.PathEscape(res.ID))
	writeJSON(w, http.StatusCreated, res)
	return nil
}

// endDelegation: DELETE /api/devices/{id}/delegations/{delegation}
func (s *Server) endDelegation(w http.ResponseWriter, r *http.Request) error {
	id, err := deviceID(r)
	if err != nil {
		return err
	}
	d, err := delegationID(r)
	if err != nil {
		return err
	}
	if err := s.svc.EndDelegation(r.Context(), id, d); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Ack{Device: id, Action: ActionEndDelegation, Delegation: d})
	return nil
}

// parked: GET /api/parked?sink=
func (s *Server) parked(w http.ResponseWriter, r *http.Request) error {
	q, err := queryParams(r, "sink")
	if err != nil {
		return err
	}
	list, err := s.svc.Parked(r.Context(), q.Get("sink"))
	if err != nil {
		return err
	}
	if list == nil {
		list = []ownership.ParkedView{}
	}
	writeJSON(w, http.StatusOK, ParkedList{Parked: list})
	return nil
}

// crl: GET /crl, the DER CRL (public: relying parties fetch it).
func (s *Server) crl(w http.ResponseWriter, r *http.Request) error {
	der, err := s.svc.CRL(r.Context())
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/pkix-crl")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(der)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(der)
	return nil
}

// healthz: GET /healthz (public). The cause of a failure is logged, not
// sent.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	if s.health != nil {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		if err := s.health(ctx); err != nil {
			return &httpError{status: http.StatusServiceUnavailable, msg: "unhealthy", cause: err}
		}
	}
	writeJSON(w, http.StatusOK, Health{Status: "ok"})
	return nil
}
