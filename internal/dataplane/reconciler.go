package dataplane

import (
	"fmt"
	"net/netip"
	"slices"
)

// Reconciler makes a forwarding plane hold exactly the desired routes. It
// remembers what it installed; Resync forgets that so the next Apply
// re-installs everything (after a forwarding-plane restart).
type Reconciler struct {
	fw        Forwarder
	installed map[SG]programmed
	peers     map[SG][]netip.AddrPort // the few routes with a replication list
	names     []string                // output names by id
	ids       map[string]uint16
	Errors    uint64
}

// programmed is an installed route in a few bytes: at 10,000 routes the
// reconciler's copy was one of the daemon's largest tables. Outputs are
// interned names: the first 64 as a bitmask, the rest (an overlay with
// hundreds of outputs) in a slice.
type programmed struct {
	oifs  uint64
	more  *[]uint16 // nil for the usual route with fewer than 64 output names in use
	iif   uint16
	peers bool
}

func (p programmed) extra() []uint16 {
	if p.more == nil {
		return nil
	}
	return *p.more
}

func (p programmed) equal(o programmed) bool {
	return p.iif == o.iif && p.oifs == o.oifs && slices.Equal(p.extra(), o.extra()) && p.peers == o.peers
}

// NewReconciler returns a reconciler over fw.
func NewReconciler(fw Forwarder) *Reconciler {
	return &Reconciler{fw: fw, installed: map[SG]programmed{}, peers: map[SG][]netip.AddrPort{}, ids: map[string]uint16{}}
}

func (r *Reconciler) id(name string) (uint16, error) {
	if i, ok := r.ids[name]; ok {
		return i, nil
	}
	if len(r.names) >= 1<<16 {
		return 0, fmt.Errorf("more than %d output names", 1<<16)
	}
	i := uint16(len(r.names))
	r.names = append(r.names, name)
	r.ids[name] = i
	return i, nil
}

func (r *Reconciler) pack(rt Route) (programmed, error) {
	iif, err := r.id(rt.IIF)
	if err != nil {
		return programmed{}, err
	}
	p := programmed{iif: iif, peers: len(rt.Peers) > 0}
	var more []uint16
	for _, o := range rt.OIFs {
		i, err := r.id(o)
		if err != nil {
			return p, err
		}
		if i < 64 {
			p.oifs |= 1 << i
		} else {
			more = append(more, i)
		}
	}
	if len(more) > 0 {
		slices.Sort(more)
		p.more = &more
	}
	return p, nil
}

func (r *Reconciler) unpack(k SG, p programmed) Route {
	rt := Route{SG: k, IIF: r.names[p.iif]}
	for i := range 64 {
		if p.oifs&(1<<i) != 0 {
			rt.OIFs = append(rt.OIFs, r.names[i])
		}
	}
	for _, i := range p.extra() {
		rt.OIFs = append(rt.OIFs, r.names[i])
	}
	slices.Sort(rt.OIFs)
	if p.peers {
		rt.Peers = slices.Clone(r.peers[k])
	}
	return rt
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
			note(r.Delete(k))
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

// Delete removes one route from the plane if it is installed.
func (r *Reconciler) Delete(k SG) error {
	if _, ok := r.installed[k]; !ok {
		return nil
	}
	if err := r.fw.DelRoute(k); err != nil {
		return err
	}
	delete(r.installed, k)
	delete(r.peers, k)
	return nil
}

func (r *Reconciler) set(want Route) error {
	p, err := r.pack(want)
	if err != nil {
		return err
	}
	if have, ok := r.installed[want.SG]; ok && have.equal(p) && (!p.peers || slices.Equal(r.peers[want.SG], want.Peers)) {
		return nil
	}
	if err := r.fw.SetRoute(want); err != nil {
		return err
	}
	r.installed[want.SG] = p
	if p.peers {
		r.peers[want.SG] = slices.Clone(want.Peers)
	} else {
		delete(r.peers, want.SG)
	}
	return nil
}

// Holds reports whether the plane holds exactly this route.
func (r *Reconciler) Holds(want Route) bool {
	have, ok := r.installed[want.SG]
	if !ok {
		return false
	}
	p, err := r.pack(want)
	return err == nil && have.equal(p) && (!p.peers || slices.Equal(r.peers[want.SG], want.Peers))
}

// Lookup returns the installed route for k.
func (r *Reconciler) Lookup(k SG) (Route, bool) {
	p, ok := r.installed[k]
	if !ok {
		return Route{}, false
	}
	return r.unpack(k, p), true
}

// Adopt records a route the plane already holds (listed after a restart)
// as installed, so it is kept or changed, not flushed and re-added.
func (r *Reconciler) Adopt(rt Route) error {
	p, err := r.pack(rt)
	if err != nil {
		return err
	}
	r.installed[rt.SG] = p
	if p.peers {
		r.peers[rt.SG] = slices.Clone(rt.Peers)
	}
	return nil
}

// Len is the number of installed routes.
func (r *Reconciler) Len() int { return len(r.installed) }

// Resync forgets what was installed.
func (r *Reconciler) Resync() { clear(r.installed); clear(r.peers) }
