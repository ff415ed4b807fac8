package pim

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	wire "overcast/internal/packet/pim"
)

// Receive handles a PIM message that arrived on a PIM interface from src,
// addressed to dst. Registers and register-stops arrive by unicast and
// may come in on any interface.
func (r *Router) Receive(now time.Time, iface string, src, dst netip.Addr, m wire.Message) Result {
	if why, ok := r.admit(now, iface, src, dst, m); !ok {
		r.refuse(iface, why)
		if why == NotNeighbor {
			r.hold(now, iface, src, dst, m) // refused now; taken if its Hello follows soon after start
		}
		return Result{}
	}
	res := r.receive(now, iface, src, dst, m)
	if _, hello := m.(*wire.Hello); hello && r.ifaces[iface] != nil && r.ifaces[iface].Neighbor(src) != nil && len(r.held) > 0 {
		// A neighbour whose joins came before its Hello (this router just
		// started): they count now.
		for _, h := range r.takeHeld(now, iface, src) {
			res.merge(r.Receive(now, iface, src, h.dst, h.m))
		}
	}
	return res
}

func (r *Router) receive(now time.Time, iface string, src, dst netip.Addr, m wire.Message) Result {
	i := r.ifaces[iface]
	// What the message can change: whole groups, or single (S,G)s.
	groups := map[netip.Addr]bool{}
	var single []SG
	switch m := m.(type) {
	case *wire.Hello:
		if i == nil {
			break
		}
		out := i.ReceiveHello(now, src, m)
		r.absorb(iface, out)
		for _, e := range out.Events {
			if e.Kind == NeighborRestarted || e.Kind == NeighborDown {
				r.forgetWinner(iface, e.Addr)
			}
			if e.Kind == NeighborRestarted || e.Kind == NeighborUp {
				// It has none of our joins: send them now (4.5.6, 4.5.7).
				up := upKey{iface, e.Addr}
				if _, ok := r.nbrTimer[up]; ok {
					r.nbrTimer[up] = now
				}
			}
		}
		if len(out.Events) > 0 {
			r.refreshDue(now)
		}
	case *wire.JoinPrune:
		if i == nil {
			break
		}
		// A (*,G) entry or an (S,G,rpt) one touches the group; plain
		// (S,G) joins and prunes touch only their entries.
		for _, gs := range m.Groups {
			g := gs.Group.Prefix.Addr()
			for _, l := range [][]wire.Source{gs.Joins, gs.Prunes} {
				for _, s := range l {
					if s.WC || s.RPT {
						groups[g] = true
					} else {
						single = append(single, SG{S: s.Addr, G: g})
					}
				}
			}
		}
		if r.addrs[m.Upstream] && (i.Addr() == m.Upstream || slices.Contains(i.secondary, m.Upstream)) {
			r.receiveJoinPrune(now, iface, m)
		} else {
			r.seeJoinPrune(now, iface, m)
		}
	case *wire.Register:
		s, g := m.InnerSourceGroup()
		single = append(single, SG{S: s, G: g})
		r.receiveRegister(now, src, dst, m)
	case *wire.RegisterStop:
		if g := m.Group.Prefix.Addr(); m.Source.IsValid() && !m.Source.IsUnspecified() {
			single = append(single, SG{S: m.Source, G: g})
		} else {
			groups[g] = true
		}
		r.receiveRegisterStop(now, m)
	case *wire.Assert:
		if g := m.Group.Prefix.Addr(); !m.RPT && m.Source.IsValid() && !m.Source.IsUnspecified() {
			single = append(single, SG{S: m.Source, G: g})
		} else {
			groups[g] = true
		}
		r.receiveAssert(now, iface, src, m)
	default:
		groups = nil
	}
	if _, hello := m.(*wire.Hello); hello {
		groups = map[netip.Addr]bool{} // a refresh changes nothing
		if len(r.res.Events) > 0 {
			groups = nil // a neighbour came, went or restarted, or the DR moved
		}
	}
	r.reconcileScope(now, groups, single)
	return r.flush()
}

// receiveJoinPrune is the downstream side (4.5.2-4.5.4) for a message
// addressed to us.
func (r *Router) receiveJoinPrune(now time.Time, iface string, m *wire.JoinPrune) {
	hold := time.Duration(m.Holdtime) * time.Second
	multi := len(r.ifaces[iface].neighbors) > 1
	ppt := now.Add(r.ifaces[iface].JPOverrideInterval())
	for _, gs := range m.Groups {
		g := gs.Group.Prefix.Addr()
		if gs.Group.Prefix.Bits() != 32 || !g.IsMulticast() {
			continue
		}
		starJoined := false
		prunedRPT := map[netip.Addr]bool{}
		for _, s := range gs.Joins {
			switch {
			case s.WC && s.RPT:
				if rp, ok := r.RP(g); !ok || rp != s.Addr {
					continue // a (*,G) join for another RP: ignore (4.5.2)
				}
				if !r.mayCreate(SG{G: g}, byJoin, iface) {
					continue
				}
				starJoined = true
				r.downJoin(r.ensureBy(now, SG{G: g}, byJoin, iface), iface, now, hold)
			case s.RPT:
				if e := r.entries[SG{S: s.Addr, G: g}]; e != nil {
					e.rptDown.del(iface) // Join(S,G,rpt): NoInfo
				}
			default:
				k := SG{S: s.Addr, G: g}
				if !ValidInner(k.S, k.G) || !r.mayCreate(k, byJoin, iface) {
					continue
				}
				r.downJoin(r.ensureBy(now, k, byJoin, iface), iface, now, hold)
			}
		}
		for _, s := range gs.Prunes {
			switch {
			case s.WC && s.RPT:
				if e := r.entries[SG{G: g}]; e != nil {
					r.downPrune(&e.down, iface, multi, ppt)
				}
			case s.RPT:
				prunedRPT[s.Addr] = true
				k := SG{S: s.Addr, G: g}
				if !ValidInner(k.S, k.G) || !r.mayCreate(k, byJoin, iface) {
					continue
				}
				e := r.ensureBy(now, k, byJoin, iface)
				d := e.rptDown.add(iface, now)
				d.expiry = maxTime(d.expiry, now.Add(hold))
				if d.state != Pruned {
					if multi {
						d.state, d.ppt = PrunePending, ppt
					} else {
						d.state, d.ppt = Pruned, time.Time{}
					}
				}
			default:
				if e := r.entries[SG{S: s.Addr, G: g}]; e != nil {
					r.downPrune(&e.down, iface, multi, ppt)
				}
			}
		}
		if starJoined {
			// End of message (4.5.4): a Join(*,G) without Prune(S,G,rpt)
			// clears the (S,G,rpt) prunes for that interface.
			for _, e := range r.groupEntries(g) {
				if e.key.S.IsValid() && !prunedRPT[e.key.S] {
					e.rptDown.del(iface)
				}
			}
		}
	}
}

func (r *Router) downJoin(e *entry, iface string, now time.Time, hold time.Duration) {
	d := e.down.add(iface, now)
	d.state, d.ppt = Join, time.Time{}
	d.expiry = maxTime(d.expiry, now.Add(hold))
}

func (r *Router) downPrune(down *downs, iface string, multi bool, ppt time.Time) {
	d := down.get(iface)
	if d == nil || d.state != Join {
		return
	}
	if !multi {
		down.del(iface) // one neighbour: no one can override (4.5.2)
		return
	}
	d.state, d.ppt = PrunePending, ppt
}

// seeJoinPrune handles a join/prune for another router on a LAN we share
// (4.5.6-4.5.8): a prune for state we are joined to makes us override it;
// a join for it to the same upstream neighbour suppresses our own
// periodic join (unless every router on the LAN tracks joins, T bit).
func (r *Router) seeJoinPrune(now time.Time, iface string, m *wire.JoinPrune) {
	i := r.ifaces[iface]
	for _, gs := range m.Groups {
		g := gs.Group.Prefix.Addr()
		for _, s := range gs.Joins {
			k := SG{S: s.Addr, G: g}
			if s.WC {
				k = SG{G: g}
			}
			e := r.entries[k]
			if e == nil || !e.joined || e.upIface != iface || e.upNbr != m.Upstream || (s.RPT && !s.WC) || !i.SuppressionEnabled() {
				continue
			}
			// Increase Join Timer to t_joinsuppress: the smaller of
			// t_suppressed, rand(1.1, 1.4) x t_periodic, and the
			// message's holdtime (4.5.7, 4.11).
			p := r.cfg.JoinPruneInterval
			d := min(p*11/10+r.jitter(p*3/10), time.Duration(m.Holdtime)*time.Second)
			if l, t := e.lanTimers(), now.Add(d); t.After(l.suppressed) {
				l.suppressed = t
			}
		}
		for _, s := range gs.Prunes {
			k := SG{S: s.Addr, G: g}
			if s.WC {
				k = SG{G: g}
			}
			e := r.entries[k]
			if e == nil || !e.joined || e.upIface != iface || e.upNbr != m.Upstream || (s.RPT && !s.WC) {
				continue
			}
			t := now.Add(r.jitter(i.EffectiveOverrideInterval()))
			if l := e.lanTimers(); l.override.IsZero() || t.Before(l.override) {
				l.override = t
			}
		}
	}
}

// atOrAfter says whether the IPv4 packet's identification is the given
// one or later (modulo 2^16); true when the first ID is unknown (-1).
func atOrAfter(pkt []byte, first int) bool {
	if first < 0 || len(pkt) < 6 {
		return true
	}
	id := uint16(pkt[4])<<8 | uint16(pkt[5])
	return id-uint16(first) < 0x8000
}

// registersStopped says whether no more Registers of (S,G) are on their
// way to this RP: none came lately, or it sent the DR a Register-Stop
// lately (within half the suppression time, before the DR's probe).
func (r *Router) registersStopped(e *entry, now time.Time) bool {
	last := e.lastRegisterAt()
	if last.IsZero() || now.Sub(last) > registersFlowing {
		return true
	}
	return !e.regs.stopAt.IsZero() && now.Sub(e.regs.stopAt) < r.cfg.RegisterSuppression/2
}

// registersFlowing is how recent the last Register must be for the RP to
// treat Registers as still arriving when native packets begin.
const registersFlowing = 50 * time.Millisecond

// registerSwitchTimeout bounds how long the RP waits for a Register after
// native packets of the same flow began to arrive before it switches anyway.
const registerSwitchTimeout = 20 * time.Millisecond

// receiveRegister is the RP side (4.4.2).
func (r *Router) receiveRegister(now time.Time, src, dst netip.Addr, m *wire.Register) {
	s, g := m.InnerSourceGroup()
	if !s.IsValid() || !g.IsMulticast() {
		return
	}
	stop := func() {
		// From the address the Register came to (the RP address): the DR
		// takes Register-Stops only from its RP.
		r.res.Sends = append(r.res.Sends, Send{Dst: src, Src: dst, Msg: &wire.RegisterStop{Group: wire.GroupPrefix(g), Source: s}})
	}
	rp, ok := r.RP(g)
	// A Register another anycast RP forwarded comes to this RP's own
	// member address, from the other's (RFC 4610 section 4).
	set := r.cfg.AnycastRP[rp]
	fromMember := ok && r.addrs[dst] && slices.Contains(set, dst) && slices.Contains(set, src)
	if !ok || !r.addrs[rp] || (dst != rp && !fromMember) {
		stop()
		return
	}
	k := SG{S: s, G: g}
	if !r.mayCreate(k, byRegister, "") {
		return // counted; no Register-Stop either: the DR keeps trying, and gets through once state frees
	}
	e := r.ensureBy(now, k, byRegister, "")
	r.forwardAnycast(rp, src, m)
	if len(m.Packet) >= 6 && !m.Null {
		g := e.registers()
		g.lastID, g.lastAt = int(m.Packet[4])<<8|int(m.Packet[5]), now
	}
	if !e.sptPending.IsZero() && !e.sptBit && e.regs != nil && atOrAfter(m.Packet, e.regs.firstNativeID) {
		// Native packets already arrive (DataArrived) and the kernel has
		// forwarded this Register's copy of the first of them: switch.
		e.sptBit, e.sptPending = true, time.Time{}
		r.markChanged(e)
	}
	sent := false
	// An anycast RP that copies the source's Registers to the other RPs
	// of its set holds its Register-Stop for a while when it has no
	// receivers of its own: the others may, and until their joins toward
	// the source are built the copies are all they get.
	hold := r.cfg.RegisterStopHold
	if len(r.cfg.AnycastRP[rp]) > 0 && !slices.Contains(r.cfg.AnycastRP[rp], src) {
		hold = max(hold, AnycastRegisterHold)
	}
	holding := !e.sptBit && now.Sub(e.created) < hold
	if !holding && (e.sptBit || (r.rpJoinsSource(g) && len(r.inheritedOlist(k)) == 0)) {
		stop()
		sent = true
		e.registers().stopAt = now
	}
	if e.sptBit || r.rpJoinsSource(g) {
		if sent {
			e.kat = now.Add(3*r.cfg.RegisterSuppression + r.cfg.RegisterProbe) // RP_Keepalive_Period
		} else {
			e.kat = now.Add(r.cfg.KeepalivePeriod)
		}
	}
}

// forwardAnycast is RFC 4610 section 4: a Register from a DR (not from
// another member of rp's anycast set) is copied to every other member,
// sent from this router's own member address; one from a member is not
// forwarded again.
func (r *Router) forwardAnycast(rp, src netip.Addr, m *wire.Register) {
	set := r.cfg.AnycastRP[rp]
	if len(set) == 0 || slices.Contains(set, src) {
		return
	}
	var me netip.Addr
	for _, a := range set {
		if r.addrs[a] {
			me = a
		}
	}
	if !me.IsValid() {
		return // this router is not in the set it serves: nothing to say from
	}
	for _, a := range set {
		if a != me {
			r.res.Sends = append(r.res.Sends, Send{Dst: a, Src: me, Msg: m})
		}
	}
	r.anycastForwarded++
}

// AnycastRegisterHold is how long an anycast RP keeps taking a new
// source's Registers (no Register-Stop) while it copies them to the other
// RPs of its set, so their receivers lose nothing while they join.
const AnycastRegisterHold = 2 * time.Second

// AnycastForwarded counts Registers copied to the other anycast RPs.
func (r *Router) AnycastForwarded() uint64 { return r.anycastForwarded }

// receiveRegisterStop is the DR side (4.4.1).
func (r *Router) receiveRegisterStop(now time.Time, m *wire.RegisterStop) {
	g := m.Group.Prefix.Addr()
	for _, e := range r.groupEntries(g) {
		k := e.key
		if !k.S.IsValid() || (m.Source.IsValid() && !m.Source.IsUnspecified() && k.S != m.Source) {
			continue
		}
		if e.reg == RegJoin || e.reg == RegJoinPending {
			e.reg = RegPrune
			// Register_Suppression_Time x (0.5..1.5) - Register_Probe_Time.
			sup := r.cfg.RegisterSuppression/2 + r.jitter(r.cfg.RegisterSuppression)
			e.rst = now.Add(sup - r.cfg.RegisterProbe)
			r.markChanged(e)
		}
	}
}

// DataKind says why the data plane reports a packet.
type DataKind int

const (
	DataNoCache DataKind = iota // first packet of a flow: no forwarding entry
	DataWrongIf                 // arrived on an interface other than the entry's input
	DataActive                  // the flow's counters moved (keepalive)
)

// DataArrived runs the data-driven parts of RFC 7761 section 4.2 for a
// packet of (S,G) that came in on iif (RegisterVIF for decapsulated
// registers at the RP): keepalive, Update_SPTbit, CheckSwitchToSpt.
func (r *Router) DataArrived(now time.Time, s, g netip.Addr, iif string, kind DataKind) Result {
	return r.DataArrivedID(now, s, g, iif, kind, -1)
}

// DataArrivedID is DataArrived with the packet's IP identification when the
// data plane knows it (-1 otherwise). At the RP it marks the first native
// packet, so the switch from Registers to native forwarding happens on the
// Register that carries that packet or a later one.
func (r *Router) DataArrivedID(now time.Time, s, g netip.Addr, iif string, kind DataKind, ipid int) Result {
	if !g.IsMulticast() || netip.MustParsePrefix("224.0.0.0/24").Contains(g) {
		return Result{}
	}
	k := SG{S: s, G: g}
	how, at := byData, iif
	if iif == RegisterVIF {
		how, at = byRegister, "" // decapsulated Register data: counts against the register state
	}
	if !r.mayCreate(k, how, at) {
		return Result{}
	}
	e := r.ensureBy(now, k, how, "")
	if t := r.sptThreshold(g); !t.immediate() && !t.Never && (e.traffic == nil || e.traffic.at.IsZero()) {
		e.measure().at = now // keep the flow while it is measured against the threshold (Traffic)
	}
	if iif == RegisterVIF {
		e.registers().lastAt = now // decapsulated Register data: Registers are flowing
	}
	rpfS, okS := r.rpf(s)
	onSPT := okS && iif == rpfS.Iface
	if onSPT && (r.directlyConnected(s) || e.sptBit) {
		e.kat = now.Add(r.cfg.KeepalivePeriod)
	}
	if onSPT && !e.sptBit && r.joinDesired(e, now) {
		rpIf := ""
		if rp, ok := r.RP(g); ok {
			if x, ok := r.rpf(rp); ok {
				rpIf = x.Iface
			}
		}
		up, _ := r.upstream(k)
		star, okStar := r.upstream(SG{G: g})
		if r.directlyConnected(s) || rpfS.Iface != rpIf || len(r.inheritedOlistRPT(k)) == 0 || (okStar && up == star) || !okStar {
			// Update_SPTbit (4.2.2), after the guard when another tree
			// may still be carrying this packet.
			e.kat = now.Add(r.cfg.KeepalivePeriod)
			switch {
			case r.directlyConnected(s) || r.cfg.SPTSwitchGuard < 0:
				e.sptBit, e.sptPending = true, time.Time{}
			case r.IAmRP(g) && ipid >= 0 && e.regs != nil && e.regs.lastID >= 0 && uint16(e.regs.lastID)-uint16(ipid) < 0x8000:
				// The Register carrying this packet was already read (the
				// two sockets race): its copy is forwarded; switch now.
				e.sptBit, e.sptPending = true, time.Time{}
			case r.IAmRP(g) && r.registersStopped(e, now):
				// No Registers are arriving (stopped, never sent, or this
				// RP sent the DR a Register-Stop lately: it registers no
				// more): no copy to wait for.
				e.sptBit, e.sptPending = true, time.Time{}
			case e.sptPending.IsZero() && r.IAmRP(g):
				// The RP switches from Registers to native packets when
				// the Register carrying this packet (or a later one)
				// arrives (receiveRegister): its copy has been forwarded
				// by then, and later packets come natively. The timeout
				// covers registers that never come.
				e.sptPending = now.Add(registerSwitchTimeout)
				e.registers().firstNativeID = ipid
			case e.sptPending.IsZero():
				e.sptPending = now.Add(r.cfg.SPTSwitchGuard)
			}
		}
	}
	if !onSPT || !e.sptBit {
		// CheckSwitchToSpt (4.2): a last-hop router with local receivers
		// joins toward the source.
		if _, ok := r.RP(g); ok && (r.switchToSPT(e) || r.IAmRP(g) && iif == RegisterVIF && r.rpJoinsSource(g)) {
			local := len(r.pimInclude(k)) > 0
			ex := r.pimExclude(k)
			for _, n := range r.pimInclude(SG{G: g}) {
				if !ex[n] {
					local = true
				}
			}
			if local || (r.IAmRP(g) && iif == RegisterVIF) {
				e.kat = now.Add(r.cfg.KeepalivePeriod)
			}
		}
	}
	if r.IAmRP(g) && iif == RegisterVIF && e.kat.IsZero() {
		e.kat = now.Add(r.cfg.KeepalivePeriod)
	}
	if kind != DataActive && !onSPT {
		if rIIF, _, ok := r.Route(s, g); ok && rIIF != iif {
			// Another router forwards this flow onto a LAN we forward onto.
			r.dataOnOutgoing(e, iif, now)
			r.reconcileGroups(now, map[netip.Addr]bool{g: true}) // may be a (*,G) assert
			return r.flush()
		}
	}
	r.reconcileKey(now, k)
	return r.flush()
}

// Traffic feeds the kernel's cumulative packet and byte counters of the
// (S,G) forwarding entry, read about once a second. A last-hop router with
// a packet or rate threshold moves the source to the SPT when it is
// crossed; the next DataArrived acts on it.
func (r *Router) Traffic(now time.Time, s, g netip.Addr, packets, bytes uint64) {
	t := r.sptThreshold(g)
	if t.immediate() || t.Never || !g.IsMulticast() || linkLocal.Contains(g) {
		return
	}
	if !r.mayCreate(SG{S: s, G: g}, byData, "") {
		return
	}
	m := r.ensure(now, SG{S: s, G: g}).measure()
	if packets != m.winPkts || m.at.IsZero() {
		m.at = now
	}
	if m.winAt.IsZero() || packets < m.winPkts {
		m.winPkts, m.winBytes, m.winAt = packets, bytes, now
	}
	if dt := now.Sub(m.winAt); dt >= time.Second {
		m.rateKbps = (bytes - m.winBytes) * 8 * uint64(time.Millisecond) / uint64(dt)
		m.winPkts, m.winBytes, m.winAt = packets, bytes, now
		if t.Kbps > 0 && m.rateKbps > t.Kbps {
			m.sptWanted = true
		}
	}
	if t.Packets > 0 && packets >= t.Packets {
		m.sptWanted = true
	}
}

// NativeDroppedThrough tells the RP, waiting to switch (S,G) from
// Registers to native packets, that the data plane has dropped the native
// copies of every packet up to IP identification id (its wrong-interface
// counter moved past the first one). The switch then waits for the
// Register carrying that packet, so no packet is dropped on both paths.
func (r *Router) NativeDroppedThrough(s, g netip.Addr, id int) {
	e := r.entries[SG{S: s, G: g}]
	if e == nil || e.regs == nil || e.sptPending.IsZero() || e.sptBit || e.regs.firstNativeID < 0 {
		return
	}
	if uint16(id)-uint16(e.regs.firstNativeID) < 0x8000 {
		e.regs.firstNativeID = id & 0xffff
	}
}

// SPTPending says whether (S,G) waits to move its input to the SPT.
func (r *Router) SPTPending(s, g netip.Addr) bool {
	e := r.entries[SG{S: s, G: g}]
	return e != nil && !e.sptPending.IsZero() && !e.sptBit
}

// CompleteSPTSwitch sets the SPT bit of a pending (S,G) now: the data plane
// saw the shared tree's copy of the packet that first came by the SPT go
// through, so switching cannot lose it.
func (r *Router) CompleteSPTSwitch(now time.Time, s, g netip.Addr) Result {
	e := r.entries[SG{S: s, G: g}]
	if e == nil || e.sptPending.IsZero() || e.sptBit || r.IAmRP(g) {
		return Result{}
	}
	e.sptPending = time.Time{}
	if r.joinDesired(e, now) {
		e.sptBit = true
		e.kat = now.Add(r.cfg.KeepalivePeriod)
		r.markChanged(e)
	}
	r.reconcileKey(now, e.key)
	return r.flush()
}

// RegisterPacket wraps a data packet the kernel handed up from the
// register VIF into a Register for the RP, if (S,G) is in Join state.
func (r *Router) RegisterPacket(pkt []byte) (Send, bool) {
	reg := &wire.Register{Packet: pkt}
	s, g := reg.InnerSourceGroup()
	e := r.entries[SG{S: s, G: g}]
	rp, ok := r.RP(g)
	if e == nil || e.reg != RegJoin || !ok {
		return Send{}, false
	}
	return Send{Dst: rp, Msg: reg}, true
}

// RPFChanged re-reads routing for every entry: joins move to the new RPF
// neighbour and prunes go to the old one at once (4.5.6, 4.5.7).
func (r *Router) RPFChanged(now time.Time) Result {
	r.reconcile(now)
	return r.flush()
}

// Advance runs every timer due at now.
func (r *Router) Advance(now time.Time) Result {
	// Only groups whose timers fired are re-evaluated, unless a neighbour
	// or DR changed (that can move anything): a hello timer must not walk
	// 10,000 flows.
	all := false
	for _, name := range r.InterfaceNames() {
		var out Output
		r.ifaces[name].Advance(now, &out)
		r.absorb(name, out)
		for _, ev := range out.Events {
			if ev.Kind == NeighborDown || ev.Kind == NeighborRestarted {
				r.forgetWinner(name, ev.Addr)
			}
		}
		all = all || len(out.Events) > 0
	}
	fired := r.dueKeys(now)
	groups := map[netip.Addr]bool{}
	for _, k := range fired {
		e := r.entries[k]
		if e == nil || !e.due(now) {
			continue
		}
		if !k.S.IsValid() {
			groups[k.G] = true // (*,G) timers move what its (S,G)s inherit
		}
		// PrunePending -> NoInfo when the prune-pending timer fires (a
		// prune echo is optional; not sent), any state -> NoInfo at expiry.
		e.down.deleteIf(func(d *downstream) bool {
			return (!d.ppt.IsZero() && !now.Before(d.ppt)) || !now.Before(d.expiry)
		})
		for _, d := range e.rptDown {
			if d.state == PrunePending && !now.Before(d.ppt) {
				d.state, d.ppt = Pruned, time.Time{}
			}
		}
		e.rptDown.deleteIf(func(d *downstream) bool { return !now.Before(d.expiry) })
		if !e.sptPending.IsZero() && !now.Before(e.sptPending) {
			e.sptPending = time.Time{}
			if r.joinDesired(e, now) {
				e.sptBit = true
				e.kat = now.Add(r.cfg.KeepalivePeriod)
				r.markChanged(e)
			}
		}
		if !e.kat.IsZero() && !now.Before(e.kat) {
			// Keepalive expiry: the flow is idle. The SPT bit goes with it
			// (section 4.1.3), so the next packet starts on the shared tree.
			e.kat, e.sptBit, e.sptPending = time.Time{}, false, time.Time{}
			r.markChanged(e)
		}
		if e.lan != nil && !e.lan.override.IsZero() && !now.Before(e.lan.override) {
			e.lan.override = time.Time{}
			if e.joined {
				r.queue(upKey{e.upIface, e.upNbr}, e.key, true, false, now)
			}
		}
		if e.asserts != nil {
			r.assertTimers(e, now)
		}
		if !e.rst.IsZero() && !now.Before(e.rst) {
			switch e.reg {
			case RegPrune:
				e.reg, e.rst = RegJoinPending, now.Add(r.cfg.RegisterProbe)
				if rp, ok := r.RP(e.key.G); ok {
					r.res.Sends = append(r.res.Sends, Send{Dst: rp, Msg: &wire.Register{Null: true, Packet: wire.NullRegisterPacket(e.key.S, e.key.G)}})
				}
			case RegJoinPending:
				e.reg, e.rst = RegJoin, time.Time{}
				r.markChanged(e)
			default:
				e.rst = time.Time{}
			}
		}
	}
	r.refreshDue(now)
	if all {
		r.reconcile(now)
	} else {
		r.reconcileScope(now, groups, fired)
	}
	return r.flush()
}

// due says whether any of the entry's timers has expired.
func (e *entry) due(now time.Time) bool {
	t := entryNext(e)
	return !t.IsZero() && !now.Before(t)
}

// refreshDue sends the periodic joins of every upstream neighbour whose
// timer is due: all entries joined toward it, in as few messages as fit,
// with the (S,G,rpt) prunes that ride on (*,G) joins.
func (r *Router) refreshDue(now time.Time) {
	for up, t := range r.nbrTimer {
		if now.Before(t) {
			continue
		}
		any := false
		for _, e := range r.entries {
			if e.joined && e.upIface == up.iface && e.upNbr == up.nbr {
				// Another router's join to the same neighbour stands
				// for ours while it suppresses it.
				if e.lan == nil || !now.Before(e.lan.suppressed) {
					r.queue(up, e.key, true, false, now)
				}
				any = true
			}
			if e.rptPruned {
				if star := r.entries[SG{G: e.key.G}]; star != nil && star.joined && star.upIface == up.iface && star.upNbr == up.nbr {
					r.queue(up, e.key, false, true, now)
				}
			}
		}
		if any {
			r.nbrTimer[up] = now.Add(r.cfg.JoinPruneInterval)
		} else {
			delete(r.nbrTimer, up)
		}
	}
}

// NextDeadline is the earliest time Advance has work to do (zero if none).
func (r *Router) NextDeadline() time.Time {
	if !r.nextOK {
		r.next, r.nextOK = r.nextDeadline(), true
	}
	if r.cfg.CheckTimers {
		var scan time.Time
		for _, e := range r.entries {
			if x := entryNext(e); !x.IsZero() && (scan.IsZero() || x.Before(scan)) {
				scan = x
			}
		}
		if !scan.IsZero() && (r.next.IsZero() || scan.Before(r.next)) {
			panic(fmt.Sprintf("pim: NextDeadline %v is later than a running timer at %v", r.next, scan))
		}
	}
	return r.next
}

func (r *Router) nextDeadline() time.Time {
	t := r.entriesDeadline()
	min := func(x time.Time) {
		if !x.IsZero() && (t.IsZero() || x.Before(t)) {
			t = x
		}
	}
	for _, i := range r.ifaces {
		min(i.NextDeadline())
	}
	for _, x := range r.nbrTimer {
		min(x)
	}
	return t
}

// Route is how the kernel should forward a flow (S,G): its input interface
// and outgoing interfaces (RFC 7761 section 4.2). ok is false when no
// state wants the flow forwarded anywhere.
func (r *Router) Route(s, g netip.Addr) (iif string, oifs []string, ok bool) {
	k := SG{S: s, G: g}
	e := r.entries[k]
	rpfS, okS := r.rpf(s)
	var olist map[string]bool
	switch {
	case okS && rpfS.Iface != "" && (r.directlyConnected(s) || (e != nil && e.sptBit) || r.cfg.RPs.IsSSM(g)):
		iif = rpfS.Iface
		olist = r.inheritedOlist(k)
		if e != nil && e.reg == RegJoin {
			olist[RegisterVIF] = true
		}
	case r.IAmRP(g):
		// Decapsulated Registers go down the shared tree (RFC 7761
		// 4.4.2: inherited_olist(S,G,rpt)) and also to routers that joined
		// (S,G) itself here, such as another domain's RP after an MSDP
		// SA: until the source's native packets come, the Registers are
		// their only copy.
		iif = RegisterVIF
		olist = r.inheritedOlist(k)
	default:
		rp, okRP := r.RP(g)
		if !okRP {
			return "", nil, false
		}
		x, okX := r.rpf(rp)
		if !okX {
			return "", nil, false
		}
		iif = x.Iface
		olist = r.inheritedOlistRPT(k)
	}
	delete(olist, iif)
	for n := range olist {
		oifs = append(oifs, n)
	}
	slices.Sort(oifs)
	return iif, oifs, iif != ""
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
