package daemon

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"overcast/internal/api"
	"overcast/internal/dataplane"
)

// A planned restart hands the running router over to a successor (the
// same binary or a new one) without a packet lost: the loop stops, no
// goodbye is said and no route is touched, and the process execs the
// successor with the kernel's routing socket open (cmd/overcast). The
// kernel forwards throughout; the successor adopts the VIFs and routes
// (restart.go) and says Hello with the same generation IDs, so its PIM
// neighbours keep the state they hold for it.

// Handover is what a run hands its successor besides the routing socket.
type Handover struct {
	// GenIDs are PIM's generation IDs by interface: kept, the neighbours
	// see the same router and keep their state (RFC 7761 4.3.1).
	GenIDs map[string]uint32 `json:"genids,omitempty"`
	// Hellos are the last Hello each PIM neighbour sent, by interface
	// (whole IPv4 packets): replayed at the successor's start, it knows
	// its neighbours at once instead of after their next Hello.
	Hellos map[string][][]byte `json:"hellos,omitempty"`
	// At is when the predecessor stopped (the successor logs the gap);
	// Count how many handovers came before this one's successor.
	At    time.Time `json:"at"`
	Count uint64    `json:"count"`
}

// handovers counts the planned restarts behind this run.
func (d *Daemon) handovers() uint64 {
	if d.env.Handover == nil {
		return 0
	}
	return d.env.Handover.Count
}

// ErrRestart is Run's return when the daemon stopped to hand over to a
// successor: the caller execs it (RestartBinary) with the routing socket
// and Handover.
var ErrRestart = errors.New("handing over to a successor")

// exitReq is why the loop is to end: a planned restart, or a stop.
type exitReq struct {
	restart bool
	binary  string // restart: the successor
	flush   bool   // stop: remove the kernel's VIFs and routes
}

// RequestRestart asks the loop to hand over to binary, once CheckSuccessor
// (Env) says it runs. Safe from any goroutine.
func (d *Daemon) RequestRestart(binary string) error {
	if binary == "" {
		return errors.New("restart: no successor binary given")
	}
	if d.env.CheckSuccessor != nil {
		if err := d.env.CheckSuccessor(binary); err != nil {
			return fmt.Errorf("restart refused, still running: %w", err)
		}
	}
	return d.requestExit(exitReq{restart: true, binary: binary})
}

// RequestHandover asks the loop to end for a successor the caller starts
// (systemd's fd store: RestartBinary is empty).
func (d *Daemon) RequestHandover() error { return d.requestExit(exitReq{restart: true}) }

// RequestStop asks the loop to stop: PIM says goodbye, and the kernel's
// routes are left for the next run unless flush.
func (d *Daemon) RequestStop(flush bool) error {
	return d.requestExit(exitReq{flush: flush})
}

func (d *Daemon) requestExit(r exitReq) error {
	select {
	case d.loop.quit <- r:
		return nil
	case <-d.loop.done:
		return ErrStopped
	default:
		return errors.New("the daemon is already stopping")
	}
}

// RestartBinary is the successor a restart asked for.
func (d *Daemon) RestartBinary() string { return d.exit.binary }

// HandoverState is what the successor needs, read once the loop ended.
func (d *Daemon) HandoverState(now time.Time) Handover {
	h := Handover{At: now, Count: d.handovers() + 1}
	if d.pim != nil {
		h.GenIDs = map[string]uint32{}
		h.Hellos = map[string][][]byte{}
		for name := range d.pim.active {
			if i := d.pim.r.Interface(name); i != nil {
				h.GenIDs[name] = i.GenerationID()
			}
			for a, pkt := range d.pim.hellos[name] {
				if i := d.pim.r.Interface(name); i != nil && i.Neighbor(a) != nil {
					h.Hellos[name] = append(h.Hellos[name], pkt)
				}
			}
		}
	}
	return h
}

// stopForHandover ends the components that hold resources of their own
// (BGP and MSDP sessions, the overlay's device, the mirror's taps) and
// nothing else: no goodbye, no route change.
func (d *Daemon) stopForHandover() {
	d.frozen = true
	if d.mbgp != nil {
		d.mbgp.stop()
	}
	if d.ovl != nil {
		d.ovl.stop()
	}
	if d.mir != nil {
		d.mir.stop()
	}
}

// replayHellos feeds a predecessor's neighbours' last Hellos to PIM, as
// if they had just come.
func (d *Daemon) replayHellos(now time.Time) {
	h := d.env.Handover
	if h == nil || d.pim == nil {
		return
	}
	n := 0
	for name, pkts := range h.Hellos {
		if d.ifs[name] == nil {
			continue
		}
		for _, pkt := range pkts {
			d.Packet(now, name, dataplane.PIM, pkt)
			n++
		}
	}
	d.log.Info("restart: taken over from the previous run", "gap", now.Sub(h.At).Round(time.Millisecond), "neighbors", n)
}

// lifecycleHandlers are the restart and stop actions. They run off the
// loop: the successor's check takes a moment, and the loop ends after.
// The answer goes out before the loop ends (Run waits for the API).
func (d *Daemon) lifecycleHandlers(out map[string]api.Handler) {
	out[api.PathRestart] = func(arg string) (any, error) {
		var req api.RestartRequest
		if strings.HasPrefix(arg, "{") {
			if err := json.Unmarshal([]byte(arg), &req); err != nil {
				return nil, fmt.Errorf("restart: %w (the body is {\"binary\": PATH})", err)
			}
		}
		bin := cmp.Or(req.Binary, d.defaultBinary)
		if err := d.RequestRestart(bin); err != nil {
			return nil, err
		}
		return api.Lifecycle{Action: "restarting", Detail: "handing over to " + bin + "; the kernel keeps forwarding"}, nil
	}
	out[api.PathStop] = func(arg string) (any, error) {
		var req api.StopRequest
		switch {
		case arg == "flush":
			req.Flush = true
		case strings.HasPrefix(arg, "{"):
			if err := json.Unmarshal([]byte(arg), &req); err != nil {
				return nil, fmt.Errorf("stop: %w (the body is {\"flush\": true|false})", err)
			}
		case arg != "":
			return nil, fmt.Errorf("stop %q: the only option is flush (remove the kernel's routes too)", arg)
		}
		if err := d.RequestStop(req.Flush); err != nil {
			return nil, err
		}
		detail := "PIM says goodbye; the kernel's routes stay for the next start (stop --flush removes them)"
		if req.Flush {
			detail = "PIM says goodbye; the kernel's routes and VIFs are removed"
		}
		return api.Lifecycle{Action: "stopping", Detail: detail}, nil
	}
}

// SetDefaultBinary is the successor of a restart that names none (the
// running binary).
func (d *Daemon) SetDefaultBinary(path string) { d.defaultBinary = path }
