package pim

import (
	"net/netip"
	"time"

	wire "overcast/internal/packet/pim"
)

// This file is the assert mechanism (RFC 7761 section 4.6): when two
// routers forward the same flow onto a LAN, each sees the other's packets
// arrive on an outgoing interface; they exchange Asserts and the one with
// the better metric keeps forwarding. Routers downstream on that LAN hear
// the Asserts too and send their joins to the winner (RPF').

// AssertState is an interface's assert state for (S,G) or (*,G).
type AssertState int

const (
	AssertNoInfo AssertState = iota
	AssertWinner             // I am the assert winner: I forward onto the LAN
	AssertLoser              // another router forwards onto the LAN
)

func (s AssertState) String() string { return [...]string{"NoInfo", "Winner", "Loser"}[s] }

// AssertOverrideInterval is how long before Assert_Time the winner
// refreshes its Assert (4.11).
const AssertOverrideInterval = 3 * time.Second

// AssertMetric orders candidate forwarders: a shortest-path tree before
// the shared tree, then lower route preference, then lower metric, then the
// higher address (4.6.1).
type AssertMetric struct {
	RPT        bool
	Preference uint32
	Metric     uint32
	Addr       netip.Addr
}

// infiniteMetric is what a router that cannot assert compares with, and
// what an AssertCancel carries.
var infiniteMetric = AssertMetric{RPT: true, Preference: wire.AssertInfinity, Metric: 0xffffffff}

// Better says whether a is the preferred metric.
func (a AssertMetric) Better(b AssertMetric) bool {
	if a.RPT != b.RPT {
		return !a.RPT
	}
	if a.Preference != b.Preference {
		return a.Preference < b.Preference
	}
	if a.Metric != b.Metric {
		return a.Metric < b.Metric
	}
	return a.Addr.Compare(b.Addr) > 0
}

func (a AssertMetric) infinite() bool {
	return a.Preference == wire.AssertInfinity && a.Metric == 0xffffffff
}

// assertInfo is one interface's assert state for an entry.
type assertInfo struct {
	state  AssertState
	winner AssertMetric // the winner's metric and address (ours when Winner)
	timer  time.Time    // AT: refresh when Winner, forget when Loser
}

func (e *entry) assertOn(iface string) *assertInfo {
	if e == nil {
		return nil
	}
	return e.asserts[iface]
}

func (r *Router) sendAssert(iface string, k SG, m AssertMetric) {
	src := k.S
	if !src.IsValid() {
		src = netip.IPv4Unspecified() // (*,G): wildcard source
	}
	r.res.Sends = append(r.res.Sends, Send{Iface: iface, Dst: wire.AllPIMRouters, Msg: &wire.Assert{
		Group: wire.GroupPrefix(k.G), Source: src, RPT: m.RPT, Preference: m.Preference, Metric: m.Metric}})
}

func (r *Router) setAssert(e *entry, iface string, a *assertInfo) {
	if e.asserts == nil {
		e.asserts = map[string]*assertInfo{}
	}
	e.asserts[iface] = a
	r.markChanged(e)
}

func (r *Router) clearAssert(e *entry, iface string) {
	if _, ok := e.asserts[iface]; ok {
		delete(e.asserts, iface)
		r.markChanged(e)
	}
}

// becomeWinner sends our Assert and takes the Winner state.
func (r *Router) becomeWinner(e *entry, iface string, m AssertMetric, now time.Time) {
	r.sendAssert(iface, e.key, m)
	r.setAssert(e, iface, &assertInfo{state: AssertWinner, winner: m, timer: now.Add(r.cfg.AssertTime - AssertOverrideInterval)})
}

func (r *Router) becomeLoser(e *entry, iface string, w AssertMetric, now time.Time) {
	r.setAssert(e, iface, &assertInfo{state: AssertLoser, winner: w, timer: now.Add(r.cfg.AssertTime)})
}

// dataOnOutgoing is "a data packet arrives on an outgoing interface"
// (4.6.1, 4.6.2): another router forwards the flow onto a LAN we forward
// onto, so we assert.
func (r *Router) dataOnOutgoing(e *entry, iface string, now time.Time) {
	if r.ifaces[iface] == nil || iface == RegisterVIF {
		return
	}
	if e.assertOn(iface) == nil && r.couldAssertSG(e, iface) {
		r.becomeWinner(e, iface, r.sptMetric(e.key.S, iface), now)
		return
	}
	star := r.entries[SG{G: e.key.G}]
	if star != nil && star.assertOn(iface) == nil && e.assertOn(iface) == nil && r.couldAssertStar(e.key.G, iface) {
		r.becomeWinner(star, iface, r.rptMetric(e.key.G, iface), now)
	}
}

// receiveAssert runs both assert machines for an Assert from src on iface.
func (r *Router) receiveAssert(now time.Time, iface string, src netip.Addr, m *wire.Assert) {
	if r.ifaces[iface] == nil || src == r.myAddr(iface) {
		return
	}
	g := m.Group.Prefix.Addr()
	if !g.IsMulticast() || linkLocal.Contains(g) {
		return
	}
	their := AssertMetric{RPT: m.RPT, Preference: m.Preference, Metric: m.Metric, Addr: src}
	cancel := their.infinite()
	s := m.Source
	if !m.RPT && s.IsValid() && !s.IsUnspecified() {
		if !r.mayCreate(SG{S: s, G: g}, byData, iface) {
			return
		}
		r.assertSG(now, iface, r.ensure(now, SG{S: s, G: g}), their, cancel)
		return
	}
	// RPT bit set: an (S,G) forwarder on the SPT overrides it (4.6.1);
	// otherwise the (*,G) machine decides.
	if s.IsValid() && !s.IsUnspecified() {
		if e := r.entries[SG{S: s, G: g}]; e != nil && e.assertOn(iface) == nil && r.couldAssertSG(e, iface) {
			r.becomeWinner(e, iface, r.sptMetric(s, iface), now)
			return
		}
	}
	star := r.entries[SG{G: g}]
	if star == nil {
		if !r.couldAssertStar(g, iface) && !(r.rpIface(g) == iface && r.rptJoinDesired(g, now)) {
			return
		}
		if !r.mayCreate(SG{G: g}, byData, iface) {
			return
		}
		star = r.ensure(now, SG{G: g})
	}
	r.assertStar(now, iface, star, their, cancel)
}

// assertSG is the (S,G) assert machine (4.6.1) for a received Assert with
// the RPT bit clear.
func (r *Router) assertSG(now time.Time, iface string, e *entry, their AssertMetric, cancel bool) {
	r.assertMachine(now, iface, e, their, cancel, r.myMetricSG(e, iface),
		func() bool { return r.couldAssertSG(e, iface) },
		func() bool { return r.trackingDesiredSG(e, iface, now) },
		func() AssertMetric { return r.sptMetric(e.key.S, iface) })
}

// assertStar is the (*,G) assert machine (4.6.2).
func (r *Router) assertStar(now time.Time, iface string, e *entry, their AssertMetric, cancel bool) {
	g := e.key.G
	r.assertMachine(now, iface, e, their, cancel, r.myMetricStar(g, iface),
		func() bool { return r.couldAssertStar(g, iface) },
		func() bool { return r.trackingDesiredStar(e, iface, now) },
		func() AssertMetric { return r.rptMetric(g, iface) })
}

// assertMachine is what the two machines share: an Assert with metric
// their (cancel: an AssertCancel) against my metric mine.
func (r *Router) assertMachine(now time.Time, iface string, e *entry, their AssertMetric, cancel bool, mine AssertMetric,
	could, tracking func() bool, winMetric func() AssertMetric) {
	a := e.assertOn(iface)
	switch {
	case a == nil:
		switch {
		case !cancel && their.Better(mine):
			if tracking() {
				r.becomeLoser(e, iface, their, now)
			}
		case could():
			r.becomeWinner(e, iface, winMetric(), now) // an inferior assert: we forward
		}
	case a.state == AssertWinner:
		if !cancel && their.Better(mine) {
			r.becomeLoser(e, iface, their, now)
		} else {
			r.becomeWinner(e, iface, mine, now) // inferior: re-assert
		}
	case a.state == AssertLoser:
		switch {
		case !cancel && their.Better(a.winner):
			r.becomeLoser(e, iface, their, now)
		case their.Addr == a.winner.Addr && !cancel && !mine.Better(their):
			r.becomeLoser(e, iface, their, now) // the winner refreshes
		case their.Addr == a.winner.Addr:
			r.clearAssert(e, iface) // the winner cancelled or became inferior
		}
	}
}

// reconcileAssert leaves assert states whose conditions went away: a
// winner that can no longer assert cancels; a loser that no longer cares,
// or whose metric became the better one, forgets.
func (r *Router) reconcileAssert(e *entry, now time.Time) {
	for iface, a := range e.asserts {
		if r.ifaces[iface] == nil {
			r.clearAssert(e, iface)
			continue
		}
		sg := e.key.S.IsValid()
		switch a.state {
		case AssertWinner:
			could := false
			if sg {
				could = r.couldAssertSG(e, iface)
			} else {
				could = r.couldAssertStar(e.key.G, iface)
			}
			if !could {
				m := infiniteMetric
				m.Addr = r.myAddr(iface)
				r.sendAssert(iface, e.key, m) // AssertCancel
				r.clearAssert(e, iface)
			}
		case AssertLoser:
			var tracking bool
			var mine AssertMetric
			if sg {
				tracking, mine = r.trackingDesiredSG(e, iface, now), r.myMetricSG(e, iface)
			} else {
				tracking, mine = r.trackingDesiredStar(e, iface, now), r.myMetricStar(e.key.G, iface)
			}
			switch {
			case !tracking:
				r.clearAssert(e, iface)
			case mine.Better(a.winner):
				// Our metric became the better one (we joined the SPT, or
				// our route improved). RFC 7761 forgets the assert and
				// waits for a packet on the interface; the kernel reports
				// one at most every 3 s per flow, so assert at once.
				r.becomeWinner(e, iface, mine, now)
			}
		}
	}
}

// assertOnSPTSwitch starts (S,G) asserts where (*,G) assert state exists
// and this router now forwards S from the shortest-path tree: the LAN had
// two forwarders for G a moment ago, and the kernel reports a packet on an
// outgoing interface at most once every 3 s per flow, so waiting for the
// next report would let duplicates run that long. This is the rule of
// 4.6.1 ("Receive Assert with RPTbit set and CouldAssert(S,G,I)") applied
// to the (*,G) assert already heard.
func (r *Router) assertOnSPTSwitch(e *entry, now time.Time) {
	star := r.entries[SG{G: e.key.G}]
	if star == nil || len(star.asserts) == 0 {
		return
	}
	for iface := range star.asserts {
		if e.assertOn(iface) == nil && r.couldAssertSG(e, iface) {
			r.becomeWinner(e, iface, r.sptMetric(e.key.S, iface), now)
		}
	}
}

// assertTimers runs AT expiries for one entry.
func (r *Router) assertTimers(e *entry, now time.Time) {
	for iface, a := range e.asserts {
		if now.Before(a.timer) {
			continue
		}
		if a.state == AssertWinner {
			r.sendAssert(iface, e.key, a.winner)
			a.timer = now.Add(r.cfg.AssertTime - AssertOverrideInterval)
		} else {
			r.clearAssert(e, iface)
		}
	}
}

// forgetWinner drops loser states whose winner is a neighbour that went
// away or restarted (4.6.1: the current winner's NLT expires or its GenID
// changes).
func (r *Router) forgetWinner(iface string, nbr netip.Addr) {
	for _, e := range r.entries {
		if a := e.asserts[iface]; a != nil && a.state == AssertLoser && a.winner.Addr == nbr {
			r.clearAssert(e, iface)
		}
	}
}

// assertWinnerIsMe says whether this router won the assert on iface.
func (e *entry) assertWinnerIsMe(iface string) bool {
	a := e.assertOn(iface)
	return a != nil && a.state == AssertWinner
}

// assertLoserTo returns the winner when this router lost the assert on
// iface (RPF' then points at the winner, 4.1.6).
func (e *entry) assertLoserTo(iface string) (netip.Addr, bool) {
	a := e.assertOn(iface)
	if a == nil || a.state != AssertLoser {
		return netip.Addr{}, false
	}
	return a.winner.Addr, true
}
