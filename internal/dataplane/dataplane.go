// Package dataplane is the seam between desired multicast forwarding state
// and a forwarding plane: the Forwarder interface, the typed upcalls a
// forwarding plane raises, and the Reconciler, the only code that programs it.
package dataplane

import (
	"fmt"
	"net/netip"
	"slices"
)

// VIF is one virtual interface of the forwarding plane.
type VIF struct {
	Index   int // 0..31 on Linux
	IfIndex int
	Name    string
}

// SG names a forwarding entry.
type SG struct{ Source, Group netip.Addr }

func (k SG) String() string { return fmt.Sprintf("(%s, %s)", k.Source, k.Group) }

// Route is one (S,G) forwarding entry: packets arriving on IIF go out of OIFs.
type Route struct {
	SG
	IIF  int
	OIFs []int // sorted VIF indices
}

// Equal reports whether two routes program the same forwarding.
func (r Route) Equal(o Route) bool {
	return r.SG == o.SG && r.IIF == o.IIF && slices.Equal(r.OIFs, o.OIFs)
}

// Counters are a route's kernel counters.
type Counters struct {
	Packets, Bytes, WrongIf uint64
}

// UpcallKind says why the forwarding plane handed a packet to the daemon.
type UpcallKind int

const (
	NoCache  UpcallKind = 1 // no route for (S,G) yet
	WrongVIF UpcallKind = 2 // (S,G) arrived on an interface other than its IIF
	WholePkt UpcallKind = 3 // whole packet for the register VIF
)

func (k UpcallKind) String() string {
	switch k {
	case NoCache:
		return "nocache"
	case WrongVIF:
		return "wrongvif"
	case WholePkt:
		return "wholepkt"
	}
	return fmt.Sprintf("upcall%d", int(k))
}

// Upcall is one notification from the forwarding plane.
type Upcall struct {
	Kind UpcallKind
	VIF  int
	SG
	Packet []byte // WholePkt: the packet to encapsulate, IP header included
	IPID   int    // NoCache/WrongVIF: the packet's IP identification (-1 unknown)
}

// Forwarder programs a forwarding plane.
type Forwarder interface {
	AddVIF(v VIF) error
	DelVIF(index int) error
	SetRoute(r Route) error // add or replace
	DelRoute(k SG) error
	Counters(fn func(SG, Counters)) error // calls fn for every route
}

// Reconciler makes the forwarding plane hold exactly the desired routes. It
// remembers what it installed; Resync forgets that so the next Apply
// re-installs everything (after a forwarding-plane restart).
type Reconciler struct {
	fw        Forwarder
	installed map[SG]Route
	Errors    uint64
}

// NewReconciler returns a reconciler over fw.
func NewReconciler(fw Forwarder) *Reconciler {
	return &Reconciler{fw: fw, installed: map[SG]Route{}}
}

// Apply converges the forwarding plane towards desired and returns the first error.
func (r *Reconciler) Apply(desired map[SG]Route) error {
	var first error
	note := func(err error) {
		if err != nil {
			r.Errors++
			if first == nil {
				first = err
			}
		}
	}
	for k := range r.installed {
		if _, ok := desired[k]; !ok {
			err := r.fw.DelRoute(k)
			note(err)
			if err == nil {
				delete(r.installed, k)
			}
		}
	}
	for k, want := range desired {
		if have, ok := r.installed[k]; ok && have.Equal(want) {
			continue
		}
		err := r.fw.SetRoute(want)
		note(err)
		if err == nil {
			r.installed[k] = want
		}
	}
	return first
}

// Update installs the given routes where the plane does not hold them
// already, leaving every other route alone, and returns the first error.
func (r *Reconciler) Update(routes []Route) error {
	var first error
	for _, want := range routes {
		if r.Holds(want) {
			continue
		}
		if err := r.fw.SetRoute(want); err != nil {
			r.Errors++
			if first == nil {
				first = err
			}
			continue
		}
		r.installed[want.SG] = want
	}
	return first
}

// Holds reports whether the plane holds exactly this route.
func (r *Reconciler) Holds(want Route) bool {
	have, ok := r.installed[want.SG]
	return ok && have.Equal(want)
}

// Installed returns a copy of what is programmed.
func (r *Reconciler) Installed() map[SG]Route {
	out := make(map[SG]Route, len(r.installed))
	for k, v := range r.installed {
		out[k] = v
	}
	return out
}

// Resync forgets what was installed.
func (r *Reconciler) Resync() { clear(r.installed) }
