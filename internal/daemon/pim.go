package daemon

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"overcast/internal/config"
	"overcast/internal/dataplane"
	"overcast/internal/igmp"
	"overcast/internal/mrib"
	"overcast/internal/msdp"
	"overcast/internal/packet/ip4"
	ovlwire "overcast/internal/packet/overlay"
	wire "overcast/internal/packet/pim"
	"overcast/internal/pim"
)

// pimComp is the PIM-SM component: the pure router, fed by PIM packets,
// upcalls, IGMP membership and routing changes; its routes go to the MRIB.
type pimComp struct {
	d       *Daemon
	r       *pim.Router
	active  map[string]bool // interfaces that speak PIM; the others are passive (receivers only)
	started time.Time
	// rpSwitch: flows the RP takes Registers for, with the forwarder's
	// wrong-interface count at the first Register (no native packet can be
	// dropped before the RP joins toward the source) and, once native
	// packets come, the first one's IP ID.
	rpSwitch map[dataplane.SG]rpSwitch
	// hellos: each neighbour's last Hello (whole packet), handed to a
	// successor at a planned restart.
	hellos map[string]map[netip.Addr][]byte

	rxPackets, txPackets, malformed, sendErrors, asmInSSM uint64

	loggedDrops pim.Drops // refusals as last logged (logRefusals)
	loggedAt    time.Time
}

// refusalLogEvery is how often refusals are logged, at most: a flood of
// spoofed messages costs one line per period, not one per message.
const refusalLogEvery = 10 * time.Second

// logRefusals logs what admission refused since the last time, by reason.
func (p *pimComp) logRefusals(now time.Time) {
	if now.Sub(p.loggedAt) < refusalLogEvery {
		return
	}
	tot := p.r.TotalDrops()
	if tot == p.loggedDrops {
		return
	}
	args := []any{}
	for _, r := range pim.Reasons() {
		if n := tot[r] - p.loggedDrops[r]; n > 0 {
			args = append(args, r.String(), n)
		}
	}
	p.d.log.Warn("pim refused messages (see show pim statistics; limits and filters are under pim: in the config)", args...)
	p.loggedDrops, p.loggedAt = tot, now
}

func (p *pimComp) name() string { return "pim" }

// pimRouterConfig builds the router configuration from the file.
// msdpRegisterHold is how long an RP with MSDP peers keeps taking a new
// source's Registers: long enough for the SA to reach the other domains
// and their joins to come back (milliseconds to tens of them), after
// which its Register-Stop goes as usual.
const msdpRegisterHold = 2 * time.Second

func pimRouterConfig(c *config.Config) (pim.Config, error) {
	pc := pim.Config{KeepalivePeriod: c.Keepalive}
	var ssm []netip.Prefix
	var maps []pim.RPMapping
	type rule struct {
		p netip.Prefix
		t pim.SPTThreshold
	}
	var rules []rule
	if p := c.PIM; p != nil {
		for _, rp := range p.RP {
			maps = append(maps, pim.RPMapping{Range: netip.MustParsePrefix(rp.Groups), RP: netip.MustParseAddr(rp.Address)})
		}
		for _, s := range p.SSMRange {
			ssm = append(ssm, netip.MustParsePrefix(s))
		}
		for _, t := range p.SPTThreshold {
			never, packets, kbps, err := t.Parse()
			if err != nil {
				return pc, err
			}
			rules = append(rules, rule{netip.MustParsePrefix(t.Groups), pim.SPTThreshold{Never: never, Packets: packets, Kbps: kbps}})
		}
		// The longest matching range decides.
		slices.SortStableFunc(rules, func(a, b rule) int { return b.p.Bits() - a.p.Bits() })
		pc.JoinPruneInterval = p.JoinPruneInterval
		for _, f := range p.RegisterFrom {
			pf, _ := config.UnicastPrefix(f)
			pc.RegisterFrom = append(pc.RegisterFrom, pf)
		}
		for _, f := range p.RegisterSources {
			pf, _ := config.UnicastPrefix(f)
			pc.RegisterSources = append(pc.RegisterSources, pf)
		}
		pc.Limits = pim.Limits{Entries: p.Limits.Routes, InterfaceEntries: p.Limits.InterfaceRoutes,
			RegisterSources: p.Limits.RegisterSources, Neighbors: p.Limits.Neighbors, RegisterRate: p.RegisterRate}
		pc.SPTSwitchGuard = p.SPTSwitchGuard
		if c.MSDP != nil && len(c.MSDP.Peers) > 0 {
			pc.RegisterStopHold = msdpRegisterHold
		}
		for _, a := range p.AnycastRP {
			if pc.AnycastRP == nil {
				pc.AnycastRP = map[netip.Addr][]netip.Addr{}
			}
			var ms []netip.Addr
			for _, m := range a.Members {
				ms = append(ms, netip.MustParseAddr(m))
			}
			pc.AnycastRP[netip.MustParseAddr(a.Address)] = ms
		}
	}
	if len(ssm) == 0 {
		ssm = []netip.Prefix{pim.DefaultSSMRange}
	}
	rps, err := pim.NewRPSet(maps, ssm)
	if err != nil {
		return pc, err
	}
	pc.RPs = rps
	if len(rules) > 0 {
		pc.SwitchToSPT = func(g netip.Addr) pim.SPTThreshold {
			for _, r := range rules {
				if r.p.Contains(g) {
					return r.t
				}
			}
			return pim.SPTThreshold{}
		}
	}
	return pc, nil
}

// newPIM turns on register support in the forwarder and makes the router.
func newPIM(d *Daemon, now time.Time) (*pimComp, error) {
	pc, err := d.pimConfig(d.cfg)
	if err != nil {
		return nil, err
	}
	if reg, ok := d.env.Forwarder.(dataplane.Registerer); ok {
		if err := reg.EnableRegister(); err != nil {
			return nil, err
		}
	} else {
		d.log.Warn("the forwarder cannot carry PIM registers: first-hop registers and RP decapsulation are off")
	}
	p := &pimComp{d: d, active: map[string]bool{}, started: now, rpSwitch: map[dataplane.SG]rpSwitch{}}
	p.r = pim.NewRouter(pc, rpfTables{d}, d.env.Jitter)
	for _, a := range d.env.Links.LocalAddrs() {
		p.r.AddLocalAddress(a)
	}
	p.r.DeferJoinPrunes(true)
	d.log.Info("pim started", "rps", len(pc.RPs.Mappings()), "ssm", pc.RPs.SSMRanges())
	return p, nil
}

// pimConfig is the router configuration of a config file, tuned by the env.
func (d *Daemon) pimConfig(c *config.Config) (pim.Config, error) {
	pc, err := pimRouterConfig(c)
	if pc.SPTSwitchGuard == 0 && d.loop.live {
		// The real-time loop switches flows to the SPT when their counters
		// show it is safe (loop.watchSPTSwitch); the guard is the last resort.
		pc.SPTSwitchGuard = liveSwitchGuard
	}
	if err == nil && d.env.TunePIM != nil {
		d.env.TunePIM(&pc)
	}
	return pc, err
}

// liveSwitchGuard is PIM's SPT switch guard under the real-time loop.
const liveSwitchGuard = 20 * time.Millisecond

func (p *pimComp) ifConfig(ic config.Interface) pim.IfConfig {
	c := pim.IfConfig{HelloPeriod: ic.PIM.HelloInterval, DRPriority: ic.PIM.DRPriority}
	if x := p.d.ifs[ic.Name]; x != nil {
		c.Subnets = x.prefixes
	}
	for _, f := range ic.PIM.NeighborFilter {
		pf, _ := config.UnicastPrefix(f)
		c.NeighborFilter = append(c.NeighborFilter, pf)
	}
	if p.d.env.TunePIMIf != nil {
		p.d.env.TunePIMIf(ic.Name, &c)
	}
	return c
}

func (p *pimComp) ifaceUp(x *iface, now time.Time) error {
	active := x.cfg.PIM.Enabled
	p.active[x.name] = active
	if active {
		if err := p.d.env.IO.Listen(x.name, x.ifindex, dataplane.PIM); err != nil {
			return err
		}
	}
	genID := p.d.env.Rand32()
	if h := p.d.env.Handover; h != nil {
		if g, ok := h.GenIDs[x.name]; ok {
			genID = g // a planned restart: the same router to its neighbours
		}
	}
	p.apply(now, p.r.AddInterface(now, x.name, p.ifConfig(x.cfg), x.addr, nil, genID))
	p.pushAllMembership(x, now)
	return nil
}

func (p *pimComp) ifaceDown(x *iface, now time.Time) {
	if _, ok := p.active[x.name]; !ok {
		return
	}
	p.apply(now, p.r.RemoveInterface(now, x.name)) // the goodbye goes out while the interface is still active
	if p.active[x.name] {
		if err := p.d.env.IO.Unlisten(x.name, x.ifindex, dataplane.PIM); err != nil {
			p.d.log.Debug("pim unlisten", "interface", x.name, "err", err)
		}
	}
	delete(p.active, x.name)
}

// pushAllMembership tells PIM about every group IGMP has on x.
func (p *pimComp) pushAllMembership(x *iface, now time.Time) {
	m := p.d.igmp.iface(x.name)
	if m == nil {
		return
	}
	for _, g := range m.Groups(now) {
		p.pushMembership(x, g.Group, now)
	}
}

// pushMembership tells PIM what IGMP says receivers on x want for g.
func (p *pimComp) pushMembership(x *iface, g netip.Addr, now time.Time) {
	var asm bool
	var include, exclude []netip.Addr
	if m := p.d.igmp.iface(x.name); m != nil {
		if v, ok := m.Group(g, now); ok {
			if v.Mode == igmp.Exclude {
				asm = true
				for _, s := range v.Sources {
					if !s.Forward {
						exclude = append(exclude, s.Source)
					}
				}
			} else {
				for _, s := range v.Sources {
					include = append(include, s.Source)
				}
			}
		}
	}
	if o := p.d.ovl; o != nil && x.name == o.dev {
		// On the overlay device, the peers' interest is membership too.
		f := o.n.Remote(g)
		switch {
		case f.Mode == ovlwire.Exclude && asm:
			exclude = intersect(exclude, f.Sources)
		case f.Mode == ovlwire.Exclude:
			asm, exclude = true, without(f.Sources, include)
			include = nil
		case asm:
			exclude = without(exclude, f.Sources)
		default:
			include = append(include, f.Sources...)
		}
	}
	p.apply(now, p.r.SetMembership(now, x.name, g, asm, include, exclude))
}

func intersect(a, b []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func without(a, b []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func (p *pimComp) packet(now time.Time, ifname string, pkt []byte) {
	h, payload, err := ip4.Parse(pkt)
	if err != nil || h.Protocol != ip4.ProtoPIM {
		p.malformed++
		return
	}
	msg, err := wire.Parse(payload)
	if err != nil {
		p.malformed++
		p.d.log.Debug("malformed pim", "from", h.Src, "err", err)
		return
	}
	p.rxPackets++
	if p.d.ifs[ifname] == nil {
		ifname = ""
	}
	switch msg.(type) {
	case *wire.Register, *wire.RegisterStop:
		// Unicast: any interface.
	default:
		if ifname == "" || !p.active[ifname] {
			return
		}
	}
	if p.d.isLocal(h.Src) {
		return // our own packet looped back
	}
	if reg, ok := msg.(*wire.Register); ok && len(reg.Packet) >= 6 {
		p.d.log.Debug("register", "from", h.Src, "null", reg.Null, "ipid", int(reg.Packet[4])<<8|int(reg.Packet[5]))
		p.nativeDropped(reg)
	}
	p.apply(now, p.r.Receive(now, ifname, h.Src, h.Dst, msg))
	if _, ok := msg.(*wire.Hello); ok {
		p.keepHello(ifname, h.Src, pkt)
	}
	if reg, ok := msg.(*wire.Register); ok && !reg.Null && p.d.msdp != nil {
		// A new source at this RP: its first packet rides in the first SA.
		if s, g := reg.InnerSourceGroup(); p.r.IAmRP(g) {
			p.d.msdp.originateData(now, s, g, reg.Packet)
		}
	}
}

// keepHello keeps a neighbour's last Hello for a successor; only
// neighbours PIM holds (admission and its limits bound them), and those
// gone are dropped as they go.
func (p *pimComp) keepHello(ifname string, src netip.Addr, pkt []byte) {
	i := p.r.Interface(ifname)
	if i == nil {
		return
	}
	if p.hellos == nil {
		p.hellos = map[string]map[netip.Addr][]byte{}
	}
	m := p.hellos[ifname]
	if m == nil {
		m = map[netip.Addr][]byte{}
		p.hellos[ifname] = m
	}
	if i.Neighbor(src) == nil {
		delete(m, src) // a goodbye, or refused
		return
	}
	m[src] = slices.Clone(pkt)
}

// forgetFlow drops what the component keeps about a flow that went away.
func (p *pimComp) forgetFlow(k dataplane.SG) { delete(p.rpSwitch, k) }

type rpSwitch struct {
	firstID int    // IP ID of the first native packet; -1 none yet
	base    uint64 // wrong-interface count before any native packet
}

// nativeDropped tells PIM, before a Register is processed at the RP,
// how many native packets the forwarder dropped since the first one: the
// RP switches to native packets on the Register of the last of them, not
// of the first (the Registers lag the native path). The count is taken
// against the baseline of the first Register, not read when the first
// native packet's upcall is handled: by then more may have been dropped,
// and the switch would come one packet early and lose it.
func (p *pimComp) nativeDropped(reg *wire.Register) {
	s, g := reg.InnerSourceGroup()
	if !p.r.IAmRP(g) {
		return
	}
	k := dataplane.SG{Source: s, Group: g}
	w, ok := p.rpSwitch[k]
	if !ok {
		var base uint64
		if c, err := p.d.env.Forwarder.SGCount(k); err == nil {
			base = c.WrongIf
		}
		p.rpSwitch[k] = rpSwitch{firstID: -1, base: base}
		return
	}
	if !p.r.SPTPending(s, g) {
		if w.firstID >= 0 {
			delete(p.rpSwitch, k) // switched: the next Registers start afresh
		}
		return
	}
	if c, err := p.d.env.Forwarder.SGCount(k); err == nil && w.firstID >= 0 && c.WrongIf > w.base+1 {
		p.r.NativeDroppedThrough(s, g, w.firstID+int(c.WrongIf-w.base-1))
	}
}

// apply sends what PIM wants sent, logs its events and marks the groups
// whose forwarding may have changed. A Register-Stop goes out only once
// the routes are in the forwarder: the RP must be taking the source's
// native packets before the first hop stops registering them, or the
// packets in between are dropped on both paths.
func (p *pimComp) apply(now time.Time, res pim.Result) {
	for _, k := range res.Changed {
		// Re-derived at the end of the burst: a (*,G) change moves every
		// flow of the group, an (S,G) change only its own.
		if k.S.IsValid() {
			p.d.touchSG(dataplane.SG{Source: k.S, Group: k.G})
		} else {
			p.d.touch(k.G)
		}
	}
	if p.d.msdp != nil {
		p.d.msdp.pimChanged(res.Changed)
	}
	for _, s := range res.Sends {
		if _, ok := s.Msg.(*wire.RegisterStop); ok && len(res.Changed) > 0 {
			p.d.flushRoutes(now)
			break
		}
	}
	for _, s := range res.Sends {
		if s.Iface != "" && (p.d.ifs[s.Iface] == nil || !p.active[s.Iface]) {
			continue
		}
		var err error
		if ss, ok := p.d.env.IO.(dataplane.SourceSender); ok && s.Src.IsValid() && s.Iface == "" {
			err = ss.SendFrom(s.Src, s.Dst, dataplane.PIM, s.Msg.Marshal())
		} else {
			err = p.d.env.IO.Send(s.Iface, dataplane.PIM, s.Dst, s.Msg.Marshal())
		}
		if err != nil {
			p.sendErrors++
			p.d.log.Debug("pim send", "interface", s.Iface, "dst", s.Dst, "err", err)
			continue
		}
		p.txPackets++
	}
	for _, e := range res.Events {
		switch e.Kind {
		case pim.ASMJoinInSSMRange:
			p.asmInSSM++
			p.d.log.Warn("ASM (*,G) join for a group in the SSM range ignored: receivers must join (S,G) with IGMPv3", "interface", e.Iface, "group", e.Addr)
		default:
			p.d.log.Info("pim "+e.Kind.String(), "interface", e.Iface, "address", e.Addr)
		}
	}
}

func (p *pimComp) nextDeadline() time.Time { return p.r.NextDeadline() }

func (p *pimComp) advance(now time.Time) { p.apply(now, p.r.Advance(now)) }

func (p *pimComp) endBurst(now time.Time) { p.apply(now, p.r.FlushJoinPrunes()) }

// upcall handles forwarding-plane upcalls when PIM runs.
func (p *pimComp) upcall(now time.Time, up dataplane.Upcall) {
	d := p.d
	switch up.Kind {
	case dataplane.WholePkt:
		// A source on this host or behind a veth may have left its UDP
		// checksum to offload; the kernel forwards such packets natively,
		// but a Register carries the bytes as they are.
		ip4.FixPartialUDPChecksum(up.Packet)
		if s, ok := p.r.RegisterPacket(up.Packet); ok {
			p.apply(now, pim.Result{Sends: []pim.Send{s}})
		}
		return
	case dataplane.NoCache, dataplane.WrongVIF:
	default:
		return
	}
	name := up.Iface
	if (name != dataplane.RegisterName && d.ifs[name] == nil) || !pim.ValidInner(up.Source, up.Group) {
		return // no flow from a martian source or to a link-local group
	}
	if name == dataplane.RegisterName && !p.r.MayTakeRegister(up.Source, up.Group) {
		// The kernel decapsulates every Register itself, admitted or not:
		// one PIM could never take (SSM group, filtered source, register
		// state full) makes no flow.
		return
	}
	kind := pim.DataNoCache
	if up.Kind == dataplane.WrongVIF {
		kind = pim.DataWrongIf
	}
	d.log.Debug("upcall", "kind", up.Kind, "sg", up.SG, "iif", name, "ipid", up.IPID)
	// The RP's first native packet: read the wrong-interface count now,
	// before anything else, should no Register have set a baseline.
	var wrongNow uint64
	if kind == pim.DataWrongIf && p.r.IAmRP(up.Group) {
		if _, ok := p.rpSwitch[up.SG]; !ok {
			if c, err := d.env.Forwarder.SGCount(up.SG); err == nil {
				wrongNow = c.WrongIf
			}
		}
	}
	iif := name
	if name == dataplane.RegisterName {
		iif = ""
	}
	d.seeFlow(up.SG, iif, now)
	p.apply(now, p.r.DataArrivedID(now, up.Source, up.Group, name, kind, up.IPID))
	d.touchSG(up.SG)
	d.flushRoutes(now) // now: the kernel holds the flow's packets until then
	if kind == pim.DataWrongIf && p.r.SPTPending(up.Source, up.Group) {
		if !p.r.IAmRP(up.Group) {
			d.loop.watchSPTSwitch(d, up.SG, p.r.Config().SPTSwitchGuard)
		} else if w, ok := p.rpSwitch[up.SG]; ok && up.IPID >= 0 {
			if w.firstID < 0 {
				w.firstID = up.IPID
				p.rpSwitch[up.SG] = w
			}
		} else if up.IPID >= 0 && wrongNow > 0 {
			p.rpSwitch[up.SG] = rpSwitch{firstID: up.IPID, base: wrongNow - 1}
		}
	}
}

// completeSPTSwitch runs when the SPT watcher saw the shared tree's copy
// forwarded (seen: the counters then). If another SPT copy was dropped
// since, its shared copy is still on the way: watch again.
func (p *pimComp) completeSPTSwitch(now time.Time, k dataplane.SG, seen dataplane.Counters) {
	if c, err := p.d.env.Forwarder.SGCount(k); err == nil && c.WrongIf != seen.WrongIf {
		if p.r.SPTPending(k.Source, k.Group) {
			p.d.loop.watchSPTSwitch(p.d, k, p.r.Config().SPTSwitchGuard)
		}
		return
	}
	p.d.log.Debug("spt switch: the shared tree's copies were forwarded", "sg", k)
	p.apply(now, p.r.CompleteSPTSwitch(now, k.Source, k.Group))
	p.d.flushRoutes(now)
}

// traffic feeds PIM a flow's counters when they moved (keepalive,
// thresholds).
func (p *pimComp) traffic(now time.Time, k dataplane.SG, c dataplane.Counters) {
	p.r.Traffic(now, k.Source, k.Group, c.Packets, c.Bytes)
	iif, _, ok := p.r.Route(k.Source, k.Group)
	if ok {
		p.apply(now, p.r.DataArrived(now, k.Source, k.Group, iif, pim.DataActive))
	} else if f := p.d.flows[k]; f != nil && f.iif != "" {
		// PIM forgot the (S,G) (its keepalive ran out) while the kernel
		// kept the flow's route, and the source sends again: no upcall
		// will come, so this is its first packet again.
		p.apply(now, p.r.DataArrived(now, k.Source, k.Group, f.iif, pim.DataNoCache))
		p.d.touchSG(k)
	}
	if e, okE := p.d.rib.Get(k); okE && e.IIFOrigin == mrib.Restart && e.IIF != iif {
		// In the restart grace the kernel takes the flow where the
		// predecessor's route did: PIM hears that its packets arrive
		// there (on the SPT, its bit set once PIM joins that way).
		p.apply(now, p.r.DataArrived(now, k.Source, k.Group, e.IIF, pim.DataActive))
	}
}

// readMeasured reads, between full polls, the counters of the flows PIM
// measures against an SPT threshold (one read each; there are few), so
// a source that crosses its threshold moves to the SPT within a second
// even when thousands of routes slow the full poll down.
func (p *pimComp) readMeasured(now time.Time) {
	for _, k := range p.r.Measuring(now) {
		c, err := p.d.env.Forwarder.SGCount(dataplane.SG{Source: k.S, Group: k.G})
		if err != nil {
			continue
		}
		p.r.Traffic(now, k.S, k.G, c.Packets, c.Bytes)
		if _, crossed := p.r.FlowFlags(k.S, k.G); crossed {
			if iif, _, ok := p.r.Route(k.S, k.G); ok {
				p.apply(now, p.r.DataArrived(now, k.S, k.G, iif, pim.DataActive))
			}
		}
	}
}

// known says whether a name from PIM's routes is an output the forwarder has.
func (p *pimComp) known(name string) bool {
	return name == pim.RegisterVIF || p.d.ifs[name] != nil
}

// adoptFlows makes a flow of each (S,G) in ks that PIM has state for
// and somewhere to forward, before any packet: joins from downstream or
// local (S,G) receivers. Its route is then installed at once, so the
// first packet is forwarded in the kernel, and a burst of new flows does
// not wait on the kernel's ten-entry queue of unresolved packets.
func (p *pimComp) adoptFlows(now time.Time, ks []pim.SG) {
	d := p.d
	for _, k := range ks {
		dk := dataplane.SG{Source: k.S, Group: k.G}
		if _, ok := d.flows[dk]; ok {
			continue
		}
		iif, oifs, ok := p.r.Route(k.S, k.G)
		if !ok || len(oifs) == 0 || !p.known(iif) {
			continue
		}
		if iif == pim.RegisterVIF {
			iif = ""
		}
		d.addFlow(&flow{key: dk, iif: iif, created: now, lastActive: now})
	}
}

// route is a flow's route when PIM runs: PIM's Route, each output tagged
// with why it is there, and the Cisco flags (S sparse, C connected member,
// F register, T on the SPT, R (S,G,rpt) pruned, J threshold crossed, P
// pruned). A flow PIM does not forward is installed with no outputs, so
// the kernel stops asking about it.
func (p *pimComp) route(f *flow, e *mrib.Entry, now time.Time) {
	k := f.key
	iif, oifs, ok := p.r.Route(k.Source, k.Group)
	e.Flags = mrib.Sparse
	switch {
	case ok && p.known(iif):
		e.IIF, e.IIFOrigin = iif, mrib.PIM
		for _, o := range oifs {
			if !p.known(o) {
				continue
			}
			origin := mrib.PIM
			if o == pim.RegisterVIF {
				origin = mrib.Register
				e.Flags |= mrib.RegisterOut
			} else if io, ok := p.d.igmp.origin(o, k); ok {
				origin = io
				e.Flags |= mrib.Connected
			}
			e.Add(o, origin)
		}
	case f.iif != "":
		e.IIF, e.IIFOrigin = f.iif, mrib.Flow
	default:
		e.IIF, e.IIFOrigin = pim.RegisterVIF, mrib.Flow
	}
	if x, okR := p.r.LookupRPF(k.Source); okR && x.Iface == e.IIF && e.IIF != "" {
		e.Flags |= mrib.SPT
	}
	rpt, crossed := p.r.FlowFlags(k.Source, k.Group)
	if rpt {
		e.Flags |= mrib.RPTPruned
	}
	if crossed {
		e.Flags |= mrib.Threshold
	}
	if m := p.d.msdp; m != nil {
		if m.s.Cached(msdp.SG{S: k.Source, G: k.Group}) {
			e.Flags |= mrib.MSDPCreated
		}
		if p.r.MSDPCandidate(now, k.Source, k.Group) {
			e.Flags |= mrib.Advertised
		}
	}
	if len(e.Outputs) == 0 {
		e.Flags |= mrib.Pruned
	}
}

// checkReload: PIM as a whole cannot be turned on or off by a reload
// (the register VIF and the kernel's PIM mode belong to a start).
func (p *pimComp) checkReload(next *config.Config) error {
	if !next.PIMEnabled() {
		line := next.Line("interfaces")
		return next.Errorf(line, "PIM is on in the running configuration and off in this one: turning PIM off needs a restart (systemctl restart overcast), or keep a pim: section")
	}
	if _, err := pimRouterConfig(next); err != nil {
		return next.Errorf(next.Line("pim"), "%v", err)
	}
	return nil
}

// reload applies the router-wide settings (RP set, SSM ranges, SPT
// thresholds, timers) and per-interface PIM changes (on/off, DR priority,
// hello interval). Joins move at once, in the same burst.
func (p *pimComp) reload(next *config.Config, now time.Time) {
	pc, _ := p.d.pimConfig(next)
	old := p.r.Config()
	p.apply(now, p.r.Reconfigure(now, pc))
	if fmt.Sprint(old.RPs.Mappings()) != fmt.Sprint(pc.RPs.Mappings()) || fmt.Sprint(old.RPs.SSMRanges()) != fmt.Sprint(pc.RPs.SSMRanges()) {
		p.d.log.Info("pim rp set changed", "rps", pc.RPs.Mappings(), "ssm", pc.RPs.SSMRanges())
	}
	for _, ic := range next.Interfaces {
		x := p.d.ifs[ic.Name]
		if x == nil {
			continue // added by the daemon after the reload, with the new config
		}
		was, is := p.active[ic.Name], ic.PIM.Enabled
		switch {
		case was != is:
			// Passive <-> active: start PIM afresh on the interface (a
			// goodbye first when it was active).
			p.ifaceDown(x, now)
			y := *x
			y.cfg = ic
			if err := p.ifaceUp(&y, now); err != nil {
				p.d.log.Error("reload: pim on interface", "interface", ic.Name, "err", err)
			}
			p.d.log.Info("pim interface mode changed", "interface", ic.Name, "active", is)
		case !reflect.DeepEqual(p.ifConfig(x.cfg), p.ifConfig(ic)):
			p.apply(now, p.r.ReconfigureInterface(now, ic.Name, p.ifConfig(ic)))
			p.d.log.Info("pim interface settings changed", "interface", ic.Name, "dr_priority", ic.PIM.DRPriority, "hello_interval", ic.PIM.HelloInterval)
		}
	}
}
