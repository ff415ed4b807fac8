package pim

import (
	"net/netip"
	"slices"
	"time"
)

// SourceActive tells the RP that an RP in another domain has source s
// sending to g (an MSDP Source-Active, RFC 3618 section 3). When g has
// receivers here (the RP's (*,G) has outgoing interfaces), the RP creates
// (S,G) with its keepalive running, so JoinDesired(S,G) holds and it joins
// toward s (RFC 7761 section 4.2). It reports whether it did: without
// receivers nothing is created, and the caller offers the source again
// when (*,G) state appears.
func (r *Router) SourceActive(now time.Time, s, g netip.Addr) (Result, bool) {
	if !r.IAmRP(g) || r.cfg.RPs.IsSSM(g) || !s.IsValid() || r.IsLocal(s) {
		return Result{}, false
	}
	if len(r.immediateOlist(SG{G: g})) == 0 {
		return Result{}, false
	}
	if !r.mayCreate(SG{S: s, G: g}, byData, "") {
		return Result{}, false
	}
	e := r.ensure(now, SG{S: s, G: g})
	if kat := now.Add(r.cfg.KeepalivePeriod); e.kat.Before(kat) {
		e.kat = kat
	}
	r.markChanged(e)
	r.reconcileKey(now, e.key)
	return r.flush(), true
}

// GroupsWithReceivers lists the groups this router is RP for whose (*,G)
// has outgoing interfaces.
func (r *Router) GroupsWithReceivers() []netip.Addr {
	var out []netip.Addr
	for k := range r.entries {
		if !k.S.IsValid() && r.HasReceivers(k.G) {
			out = append(out, k.G)
		}
	}
	return out
}

// HasReceivers says whether this RP's (*,G) has outgoing interfaces.
func (r *Router) HasReceivers(g netip.Addr) bool {
	return r.IAmRP(g) && len(r.immediateOlist(SG{G: g})) > 0
}

// MSDPCandidate says whether this router, as RP for g, should originate
// an MSDP SA for (S,G): the source registered to it, or is directly
// connected to it, and is active (keepalive running). Cisco's mroute flag A.
func (r *Router) MSDPCandidate(now time.Time, s, g netip.Addr) bool {
	e := r.entries[SG{S: s, G: g}]
	if e == nil || !s.IsValid() || !r.IAmRP(g) || r.cfg.RPs.IsSSM(g) || !r.katRunning(e, now) {
		return false
	}
	return e.regs != nil || r.directlyConnected(s)
}

// MSDPCandidates lists every (S,G) MSDPCandidate holds for.
func (r *Router) MSDPCandidates(now time.Time) []SG {
	var out []SG
	for k := range r.entries {
		if k.S.IsValid() && r.MSDPCandidate(now, k.S, k.G) {
			out = append(out, k)
		}
	}
	return out
}

// Downstream says what PIM neighbours joined for g on interfaces other
// than except: whether any (*,G) join (asm), and the sources of (S,G)
// joins (what an overlay gateway wants from the overlay for its domain).
func (r *Router) Downstream(g netip.Addr, except string) (asm bool, sources []netip.Addr) {
	other := func(e *entry) bool {
		for _, n := range joinsOf(e) {
			if n != except {
				return true
			}
		}
		return false
	}
	if e := r.entries[SG{G: g}]; e != nil {
		asm = other(e)
	}
	for _, e := range r.byGroup[g] {
		if e.key.S.IsValid() && other(e) {
			sources = append(sources, e.key.S)
		}
	}
	slices.SortFunc(sources, netip.Addr.Compare)
	return asm, sources
}
