package pim

// The RFC 7761 macros, in one place (as FRR's pim_macro.c): the RP and
// RPF, the olists (immediate_olist, inherited_olist and their (S,G,rpt)
// forms), JoinDesired, PruneDesired, CouldRegister, the SPT switch, and
// the assert macros of section 4.6 (lost_assert, CouldAssert,
// my_assert_metric, AssertTrackingDesired). They read state and never
// change it; the machines in router.go, events.go and assert.go act on
// what they say. macros_test.go checks them against the RFC's text case
// by case.

import (
	"net/netip"
	"slices"
	"time"
)

// --- Tree macros (RFC 7761 section 4.1.6, 4.5, 4.2) -------------------

// RP returns the RP of a group and whether it has one.
func (r *Router) RP(g netip.Addr) (netip.Addr, bool) { return r.cfg.RPs.RP(g) }

// IAmRP says whether this router is g's RP.
func (r *Router) IAmRP(g netip.Addr) bool {
	rp, ok := r.RP(g)
	return ok && r.addrs[rp]
}

func (r *Router) iAmDR(iface string) bool {
	i := r.ifaces[iface]
	return i != nil && i.IsDR()
}

// rpf returns RPF_interface and RPF'(neighbour) toward addr. For local
// addresses (the RP itself) the interface is empty.
func (r *Router) rpf(a netip.Addr) (RPF, bool) {
	if r.addrs[a] {
		return RPF{}, true
	}
	return r.rt.Lookup(a)
}

func (r *Router) directlyConnected(s netip.Addr) bool {
	x, ok := r.rpf(s)
	return ok && x.Iface != "" && !x.Neighbor.IsValid()
}

func (r *Router) localInclude(k SG, iface string) bool { return r.members[iface][k] }

// pimInclude(*,G) / (S,G): interfaces where local receivers want the
// traffic and this router is the one to deliver it: the DR, unless it lost
// an assert there, or the assert winner.
func (r *Router) pimInclude(k SG) []string {
	var out []string
	e := r.entries[k]
	for name := range r.ifaces {
		if !r.localInclude(k, name) {
			continue
		}
		if (r.iAmDR(name) && !r.lostAssert(e, k, name)) || e.assertWinnerIsMe(name) {
			out = append(out, name)
		}
	}
	return out
}

// lostAssert is lost_assert(*,G,I) or lost_assert(S,G,I).
func (r *Router) lostAssert(e *entry, k SG, iface string) bool {
	if e == nil || e.asserts == nil {
		return false
	}
	if !k.S.IsValid() {
		return r.lostAssertStar(k.G, iface)
	}
	return r.lostAssertSG(e, iface)
}

func (r *Router) pimExclude(k SG) map[string]bool {
	out := map[string]bool{}
	for name := range r.ifaces {
		if r.iAmDR(name) && r.excludes[name][k] {
			out[name] = true
		}
	}
	return out
}

func joinsOf(e *entry) []string {
	if e == nil {
		return nil
	}
	var out []string
	for _, d := range e.down {
		if d.state == Join || d.state == PrunePending {
			out = append(out, d.iface)
		}
	}
	return out
}

func prunesRPT(e *entry) map[string]bool {
	out := map[string]bool{}
	if e == nil {
		return out
	}
	for _, d := range e.rptDown {
		if d.state == Pruned {
			out[d.iface] = true
		}
	}
	return out
}

func set(xs ...[]string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		for _, v := range x {
			m[v] = true
		}
	}
	return m
}

// immediateBase is joins(k) + pim_include(k).
func (r *Router) immediateBase(k SG) map[string]bool {
	return set(joinsOf(r.entries[k]), r.pimInclude(k))
}

// immediateOlist is joins(k) + pim_include(k) - lost_assert(k).
func (r *Router) immediateOlist(k SG) map[string]bool {
	out := r.immediateBase(k)
	if e := r.entries[k]; e != nil && e.asserts != nil {
		for n := range out {
			if r.lostAssert(e, k, n) {
				delete(out, n)
			}
		}
	}
	return out
}

// inheritedOlistRPTBase is (joins(*,G) - prunes(S,G,rpt)) + (pim_include(*,G) - pim_exclude(S,G)).
func (r *Router) inheritedOlistRPTBase(k SG) map[string]bool {
	star := SG{G: k.G}
	out := map[string]bool{}
	if _, ok := r.RP(k.G); !ok {
		return out
	}
	pr := prunesRPT(r.entries[k])
	for _, n := range joinsOf(r.entries[star]) {
		if !pr[n] {
			out[n] = true
		}
	}
	ex := r.pimExclude(k)
	for _, n := range r.pimInclude(star) {
		if !ex[n] {
			out[n] = true
		}
	}
	return out
}

// inheritedOlistRPT is inheritedOlistRPTBase - (lost_assert(*,G) + lost_assert(S,G,rpt)).
func (r *Router) inheritedOlistRPT(k SG) map[string]bool {
	out := r.inheritedOlistRPTBase(k)
	star, e := r.entries[SG{G: k.G}], r.entries[k]
	if (star == nil || star.asserts == nil) && (e == nil || e.asserts == nil) {
		return out
	}
	for n := range out {
		if r.lostAssertStar(k.G, n) || (e != nil && r.lostAssertSGRPT(e, n)) {
			delete(out, n)
		}
	}
	return out
}

// inheritedOlist(S,G) is inherited_olist(S,G,rpt) + joins(S,G) +
// pim_include(S,G) - lost_assert(S,G).
func (r *Router) inheritedOlist(k SG) map[string]bool {
	out := r.inheritedOlistRPT(k)
	for n := range r.immediateBase(k) {
		out[n] = true
	}
	if e := r.entries[k]; e != nil && e.asserts != nil {
		for n := range out {
			if r.lostAssertSG(e, n) {
				delete(out, n)
			}
		}
	}
	return out
}

// joinDesired is JoinDesired(*,G) or JoinDesired(S,G) (4.5.6, 4.5.7).
func (r *Router) joinDesired(e *entry, now time.Time) bool {
	if !e.key.S.IsValid() {
		rp, ok := r.RP(e.key.G)
		if !ok || r.addrs[rp] {
			return false // no RP, or we are the RP: the tree is rooted here
		}
		return len(r.immediateOlist(e.key)) > 0
	}
	if r.addrs[e.key.S] {
		return false
	}
	if len(r.immediateOlist(e.key)) > 0 {
		return true
	}
	return r.katRunning(e, now) && len(r.inheritedOlist(e.key)) > 0
}

func (r *Router) katRunning(e *entry, now time.Time) bool {
	return !e.kat.IsZero() && now.Before(e.kat)
}

// rptJoinDesired(G) is JoinDesired(*,G).
func (r *Router) rptJoinDesired(g netip.Addr, now time.Time) bool {
	e := r.entries[SG{G: g}]
	return e != nil && r.joinDesired(e, now)
}

// pruneDesiredRPT is PruneDesired(S,G,rpt) (4.5.8).
func (r *Router) pruneDesiredRPT(e *entry, now time.Time) bool {
	if !r.rptJoinDesired(e.key.G, now) {
		return false
	}
	if len(r.inheritedOlistRPT(e.key)) == 0 {
		return true
	}
	if e.sptBit {
		sg, ok1 := r.upstream(e.key)
		star, ok2 := r.upstream(SG{G: e.key.G})
		return ok1 && ok2 && sg != star
	}
	return false
}

// upstream returns RPF'(k): the interface and neighbour joins go to.
func (r *Router) upstream(k SG) (upKey, bool) {
	target := k.S
	if !k.S.IsValid() {
		rp, ok := r.RP(k.G)
		if !ok {
			return upKey{}, false
		}
		target = rp
	}
	x, ok := r.rpf(target)
	if !ok || x.Iface == "" || r.ifaces[x.Iface] == nil {
		return upKey{}, false
	}
	nbr := x.Neighbor
	if w, lost := r.entries[k].assertLoserTo(x.Iface); lost {
		return upKey{x.Iface, w}, true // RPF' is the assert winner (4.1.6)
	}
	if !nbr.IsValid() {
		// Directly connected: the target is on the LAN. When it is a PIM
		// neighbour's own address (an RP on a neighbour's interface), that
		// neighbour is RPF'; a host (a source) has no upstream neighbour.
		if n := r.ifaces[x.Iface].Neighbor(target); n != nil {
			return upKey{x.Iface, n.Addr}, true
		}
		return upKey{iface: x.Iface}, true
	}
	// RPF' is the neighbour as PIM knows it (its primary address).
	if n := r.ifaces[x.Iface].Neighbor(nbr); n != nil {
		nbr = n.Addr
	}
	return upKey{x.Iface, nbr}, true
}

// couldRegister is CouldRegister(S,G) (4.4.1).
func (r *Router) couldRegister(e *entry, now time.Time) bool {
	if !e.key.S.IsValid() || r.cfg.RPs.IsSSM(e.key.G) {
		return false
	}
	if _, ok := r.RP(e.key.G); !ok {
		return false
	}
	x, ok := r.rpf(e.key.S)
	return ok && x.Iface != "" && r.iAmDR(x.Iface) && r.katRunning(e, now) && r.directlyConnected(e.key.S)
}

func (r *Router) sptThreshold(g netip.Addr) SPTThreshold {
	if r.cfg.SwitchToSPT == nil {
		return SPTThreshold{}
	}
	return r.cfg.SwitchToSPT(g)
}

// switchToSPT is SwitchToSptDesired(S,G) at a last-hop router: at once,
// never, or once Traffic saw the source cross the group's threshold.
func (r *Router) switchToSPT(e *entry) bool {
	t := r.sptThreshold(e.key.G)
	return t.immediate() || (!t.Never && e.sptWanted())
}

// rpJoinsSource says whether the RP joins toward a registering source:
// unless the group's threshold is infinity (the threshold measures a
// last hop's traffic; the RP has no shared tree of its own to measure).
func (r *Router) rpJoinsSource(g netip.Addr) bool { return !r.sptThreshold(g).Never }

// countingHold is how long an entry measured against a threshold stays
// without its counters moving: three of the daemon's slowest counter
// polls (5 s, at 10,000 routes and more).
const countingHold = 15 * time.Second

// counting says whether an entry measures traffic against a packet or
// rate threshold: it stays while its source keeps sending.
func (r *Router) counting(e *entry, now time.Time) bool {
	t := r.sptThreshold(e.key.G)
	return e.key.S.IsValid() && !t.immediate() && !t.Never && e.traffic != nil && !e.traffic.at.IsZero() && now.Sub(e.traffic.at) < countingHold
}

// --- Assert macros (RFC 7761 section 4.6) --------------------------------

func (r *Router) rpfIface(a netip.Addr) string {
	x, ok := r.rpf(a)
	if !ok {
		return ""
	}
	return x.Iface
}

func (r *Router) rpIface(g netip.Addr) string {
	rp, ok := r.RP(g)
	if !ok {
		return ""
	}
	return r.rpfIface(rp)
}

// lostAssertSG is lost_assert(S,G,I).
func (r *Router) lostAssertSG(e *entry, iface string) bool {
	a := e.assertOn(iface)
	if a == nil || a.state != AssertLoser || r.rpfIface(e.key.S) == iface {
		return false
	}
	return a.winner.Better(r.sptMetric(e.key.S, iface))
}

// lostAssertStar is lost_assert(*,G,I).
func (r *Router) lostAssertStar(g netip.Addr, iface string) bool {
	a := r.entries[SG{G: g}].assertOn(iface)
	return a != nil && a.state == AssertLoser && r.rpIface(g) != iface
}

// lostAssertSGRPT is lost_assert(S,G,rpt,I).
func (r *Router) lostAssertSGRPT(e *entry, iface string) bool {
	a := e.assertOn(iface)
	if a == nil || a.state != AssertLoser {
		return false
	}
	if r.rpIface(e.key.G) == iface || (r.rpfIface(e.key.S) == iface && r.sptFlag(e)) {
		return false
	}
	return true
}

// sptFlag is SPTbit(S,G); an SSM flow has only the shortest-path tree.
func (r *Router) sptFlag(e *entry) bool {
	return e != nil && (e.sptBit || r.cfg.RPs.IsSSM(e.key.G))
}

func (r *Router) myAddr(iface string) netip.Addr {
	if i := r.ifaces[iface]; i != nil {
		return i.Addr()
	}
	return netip.Addr{}
}

// sptMetric is spt_assert_metric(S,I).
func (r *Router) sptMetric(s netip.Addr, iface string) AssertMetric {
	x, ok := r.rpf(s)
	if !ok {
		return infiniteMetric
	}
	return AssertMetric{Preference: x.Preference, Metric: x.Metric, Addr: r.myAddr(iface)}
}

// rptMetric is rpt_assert_metric(G,I).
func (r *Router) rptMetric(g netip.Addr, iface string) AssertMetric {
	rp, ok := r.RP(g)
	if !ok {
		return infiniteMetric
	}
	x, ok := r.rpf(rp)
	if !ok {
		return infiniteMetric
	}
	return AssertMetric{RPT: true, Preference: x.Preference, Metric: x.Metric, Addr: r.myAddr(iface)}
}

// couldAssertSG is CouldAssert(S,G,I): this router forwards S's packets
// onto I from the shortest-path tree.
func (r *Router) couldAssertSG(e *entry, iface string) bool {
	if !r.sptFlag(e) || r.rpfIface(e.key.S) == iface {
		return false
	}
	if r.inheritedOlistRPTBase(e.key)[iface] && !r.lostAssertStar(e.key.G, iface) {
		return true
	}
	return r.immediateBase(e.key)[iface]
}

// couldAssertStar is CouldAssert(*,G,I).
func (r *Router) couldAssertStar(g netip.Addr, iface string) bool {
	if _, ok := r.RP(g); !ok || r.rpIface(g) == iface {
		return false
	}
	return r.immediateBase(SG{G: g})[iface]
}

// myMetricSG is my_assert_metric(S,G,I).
func (r *Router) myMetricSG(e *entry, iface string) AssertMetric {
	switch {
	case r.couldAssertSG(e, iface):
		return r.sptMetric(e.key.S, iface)
	case r.couldAssertStar(e.key.G, iface):
		return r.rptMetric(e.key.G, iface)
	}
	return infiniteMetric
}

func (r *Router) myMetricStar(g netip.Addr, iface string) AssertMetric {
	if r.couldAssertStar(g, iface) {
		return r.rptMetric(g, iface)
	}
	return infiniteMetric
}

// trackingDesiredSG is AssertTrackingDesired(S,G,I): this router cares who
// forwards S's packets on I, as a forwarder or as a downstream router.
func (r *Router) trackingDesiredSG(e *entry, iface string, now time.Time) bool {
	k := e.key
	if r.inheritedOlistRPTBase(k)[iface] && !r.lostAssertStar(k.G, iface) {
		return true
	}
	if slices.Contains(joinsOf(e), iface) {
		return true
	}
	if r.localInclude(k, iface) && (r.iAmDR(iface) || e.assertOn(iface) != nil && e.assertOn(iface).state == AssertWinner) {
		return true
	}
	if r.rpfIface(k.S) == iface && r.joinDesired(e, now) {
		return true
	}
	return r.rpIface(k.G) == iface && r.rptJoinDesired(k.G, now) && !e.sptBit
}

// trackingDesiredStar is AssertTrackingDesired(*,G,I).
func (r *Router) trackingDesiredStar(e *entry, iface string, now time.Time) bool {
	g := e.key.G
	if r.couldAssertStar(g, iface) {
		return true
	}
	if r.localInclude(e.key, iface) && (r.iAmDR(iface) || e.assertOn(iface) != nil && e.assertOn(iface).state == AssertWinner) {
		return true
	}
	return r.rpIface(g) == iface && r.rptJoinDesired(g, now)
}
