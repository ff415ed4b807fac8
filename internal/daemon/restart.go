package daemon

import (
	"time"

	"overcast/internal/dataplane"
	"overcast/internal/mrib"
)

// A restarted daemon finds in the forwarder the routes its predecessor
// left (a forwarder that outlives the process: the kernel's table handed
// over, or a simulation's). It keeps forwarding them for the restart
// grace while PIM and IGMP relearn: each is taken as a flow (as its first
// packet's upcall would make it), its input kept and its outputs added to
// what the protocols want. When the grace ends, the routes are what the
// protocols say, and what nobody wants goes.
type restartState struct {
	kept  map[dataplane.SG]dataplane.Route
	until time.Time
}

// adoptLeftovers takes the routes a predecessor left, once the interfaces
// are up: those on interfaces this daemon has are kept for the grace, the
// rest are removed at the first full pass.
func (d *Daemon) adoptLeftovers(now time.Time, left []dataplane.Route) {
	grace := *d.cfg.RestartGrace
	if grace <= 0 || len(left) == 0 {
		return
	}
	d.restart.kept = map[dataplane.SG]dataplane.Route{}
	d.restart.until = now.Add(grace)
	for _, r := range left {
		if !d.knownIface(r.IIF) {
			continue
		}
		d.restart.kept[r.SG] = r
	}
	d.adopted = len(d.restart.kept)
	for k, r := range d.restart.kept {
		// The route exists because its packets came: what its first
		// packet's upcall did, the adoption does.
		d.Upcall(now, dataplane.Upcall{Kind: dataplane.NoCache, Iface: r.IIF, SG: k, IPID: -1})
	}
	d.log.Info("restart: forwarding the routes the previous run left while PIM and IGMP relearn",
		"routes", len(d.restart.kept), "of", len(left), "grace", grace)
}

func (d *Daemon) knownIface(name string) bool {
	return d.ifs[name] != nil || (name == dataplane.RegisterName && d.pim != nil)
}

// keepRestart merges a kept route into a flow's entry during the grace:
// the input it had, and its outputs beside the protocols' own.
func (d *Daemon) keepRestart(e *mrib.Entry, now time.Time) {
	r, ok := d.restart.kept[e.SG]
	if !ok || !now.Before(d.restart.until) {
		return
	}
	// The predecessor's input stands until this router forwards the flow
	// on its own join toward the source (its route's input is where that
	// join goes), or until a routing change (the kept input was the old
	// routing's).
	own := false
	if d.pim != nil {
		up, ok := d.pim.r.JoinedUpstream(e.Source, e.Group)
		own = ok && up == e.IIF
	}
	if !own && r.IIF != "" && d.knownIface(r.IIF) && e.IIF != r.IIF {
		e.IIF, e.IIFOrigin = r.IIF, mrib.Restart
		kept := e.Outputs[:0]
		for _, o := range e.Outputs {
			if o.Name != e.IIF {
				kept = append(kept, o)
			}
		}
		e.Outputs = kept
	}
	for _, o := range r.OIFs {
		if o != e.IIF && d.knownIface(o) {
			e.Add(o, mrib.Restart)
		}
	}
	if len(e.Outputs) > 0 {
		e.Flags &^= mrib.Pruned
	}
}

// restartRouting: after a routing change in the grace the kept inputs
// are stale; the outputs stay.
func (d *Daemon) restartRouting() {
	for k, r := range d.restart.kept {
		r.IIF = ""
		d.restart.kept[k] = r
	}
}

// restartDeadline is when the grace ends (zero: no grace running).
func (d *Daemon) restartDeadline() time.Time {
	if len(d.restart.kept) == 0 {
		return time.Time{}
	}
	return d.restart.until
}

// endRestart ends the grace: every route becomes what the protocols say.
func (d *Daemon) endRestart(now time.Time) {
	n := len(d.restart.kept)
	d.restart = restartState{}
	d.log.Info("restart grace over: routes are what PIM and IGMP say", "kept", n)
	d.reconcile(now)
}
