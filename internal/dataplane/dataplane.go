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
	installed map[SG]programmed
	Errors    uint64
}

// programmed is an installed route in 16 bytes: at 10,000 routes the
// reconciler's copy was one of the daemon's largest tables.
type programmed struct {
	iif  int
	oifs uint64 // bit i set: VIF i (Linux has 32 VIFs)
}

// MaxVIF is the largest VIF index a route may use.
const MaxVIF = 63

func pack(r Route) (programmed, error) {
	p := programmed{iif: r.IIF}
	for _, o := range r.OIFs {
		if o < 0 || o > MaxVIF {
			return p, fmt.Errorf("route %v: VIF %d out of range", r.SG, o)
		}
		p.oifs |= 1 << o
	}
	return p, nil
}

func (p programmed) route(k SG) Route {
	r := Route{SG: k, IIF: p.iif}
	for o := range MaxVIF + 1 {
		if p.oifs&(1<<o) != 0 {
			r.OIFs = append(r.OIFs, o)
		}
	}
	return r
}

// NewReconciler returns a reconciler over fw.
func NewReconciler(fw Forwarder) *Reconciler {
	return &Reconciler{fw: fw, installed: map[SG]programmed{}}
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
	for _, want := range desired {
		note(r.set(want))
	}
	return first
}

// Update installs the given routes where the plane does not hold them
// already, leaving every other route alone, and returns the first error.
func (r *Reconciler) Update(routes []Route) error {
	var first error
	for _, want := range routes {
		if err := r.set(want); err != nil {
			r.Errors++
			if first == nil {
				first = err
			}
		}
	}
	return first
}

func (r *Reconciler) set(want Route) error {
	p, err := pack(want)
	if err != nil {
		return err
	}
	if have, ok := r.installed[want.SG]; ok && have == p {
		return nil
	}
	if err := r.fw.SetRoute(want); err != nil {
		return err
	}
	r.installed[want.SG] = p
	return nil
}

// Holds reports whether the plane holds exactly this route.
func (r *Reconciler) Holds(want Route) bool {
	have, ok := r.installed[want.SG]
	p, err := pack(want)
	return ok && err == nil && have == p
}

// Lookup returns the installed route for k.
func (r *Reconciler) Lookup(k SG) (Route, bool) {
	p, ok := r.installed[k]
	if !ok {
		return Route{}, false
	}
	return p.route(k), true
}

// Len is the number of installed routes.
func (r *Reconciler) Len() int { return len(r.installed) }

// Resync forgets what was installed.
func (r *Reconciler) Resync() { clear(r.installed) }
