package daemon

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"overcast/internal/api"
	"overcast/internal/config"
	"overcast/internal/dataplane"
	"overcast/internal/dataplane/linuxmr"
	"overcast/internal/igmp"
	"overcast/internal/packet/ip4"
	wire "overcast/internal/packet/pim"
	"overcast/internal/pim"
	"overcast/internal/rpf"
)

// pimState is the daemon's PIM side: the pure router, its socket, the
// kernel route source and the register VIF.
type pimState struct {
	r       *pim.Router
	sock    *linuxmr.PIMSocket
	rt      *rpf.Kernel
	regVIF  int
	active  map[string]bool // interfaces that speak PIM; the others are passive (receivers only)
	started time.Time

	rxPackets, txPackets, malformed, sendErrors, asmInSSM uint64
}

// pimRouterConfig builds the router configuration from the file.
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
		pc.SPTSwitchGuard = p.SPTSwitchGuard
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

// startPIM turns on the kernel's PIM support, opens the PIM socket and
// starts PIM on the configured interfaces.
func (d *Daemon) startPIM(ctx context.Context, now time.Time) error {
	pc, err := pimRouterConfig(d.cfg)
	if err != nil {
		return err
	}
	if err := d.sock.EnablePIM(); err != nil {
		return err
	}
	reg := 0
	for slices.ContainsFunc(mapValues(d.ifs), func(x *iface) bool { return x.vif == reg }) {
		reg++
	}
	if err := d.sock.AddRegisterVIF(reg); err != nil {
		return err
	}
	ps, err := linuxmr.OpenPIM()
	if err != nil {
		return err
	}
	p := &pimState{sock: ps, rt: rpf.New(), regVIF: reg, active: map[string]bool{}, started: now}
	p.r = pim.NewRouter(pc, p.rt, func(max time.Duration) time.Duration {
		if max <= 0 {
			return 0
		}
		return time.Duration(rand.Int64N(int64(max)))
	})
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if pn, ok := a.(*net.IPNet); ok && pn.IP.To4() != nil {
				ip, _ := netip.AddrFromSlice(pn.IP.To4())
				p.r.AddLocalAddress(ip)
			}
		}
	}
	p.r.DeferJoinPrunes(true)
	d.pim = p
	for _, x := range d.sortedIfs() {
		if err := d.pimAddInterface(x, now); err != nil {
			return err
		}
	}
	if err := rpf.Subscribe(ctx, func() { d.post(func() { d.onRouteChange(time.Now()) }) }); err != nil {
		d.log.Warn("route notifications unavailable; RPF changes are seen on the periodic refresh only", "err", err)
	}
	go d.pimReadLoop(ctx)
	d.log.Info("pim started", "register_vif", reg, "rps", len(pc.RPs.Mappings()), "ssm", pc.RPs.SSMRanges())
	return nil
}

func (d *Daemon) pimAddInterface(x *iface, now time.Time) error {
	p := d.pim
	active := x.cfg.PIM.Enabled
	p.active[x.name] = active
	if active {
		if err := p.sock.JoinAllPIMRouters(x.ifindex); err != nil {
			return err
		}
	}
	ic := pim.IfConfig{HelloPeriod: x.cfg.PIM.HelloInterval, DRPriority: x.cfg.PIM.DRPriority}
	d.applyPIM(p.r.AddInterface(now, x.name, ic, x.addr, nil, rand.Uint32()))
	// Tell PIM about the membership IGMP already has.
	for _, g := range x.igmp.Groups(now) {
		d.pushMembership(x, g.Group, now)
	}
	return nil
}

// pimReadLoop turns PIM socket reads into loop events.
func (d *Daemon) pimReadLoop(ctx context.Context) {
	buf := make([]byte, 65536)
	oob := make([]byte, 256)
	for ctx.Err() == nil {
		m, err := d.pim.sock.Read(buf, oob)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return
			}
			d.log.Warn("pim socket read", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		m.Packet = slices.Clone(m.Packet)
		d.post(func() { d.onPIMPacket(m, time.Now()) })
	}
}

func (d *Daemon) onPIMPacket(m linuxmr.PIMPacket, now time.Time) {
	p := d.pim
	h, payload, err := ip4.Parse(m.Packet)
	if err != nil || h.Protocol != ip4.ProtoPIM {
		p.malformed++
		return
	}
	msg, err := wire.Parse(payload)
	if err != nil {
		p.malformed++
		d.log.Debug("malformed pim", "from", h.Src, "err", err)
		return
	}
	p.rxPackets++
	name := ""
	if x := d.byIdx[m.IfIndex]; x != nil {
		name = x.name
	}
	switch msg.(type) {
	case *wire.Register, *wire.RegisterStop:
		// Unicast: any interface.
	default:
		if name == "" || !p.active[name] {
			return
		}
	}
	if d.isLocal(h.Src) {
		return // our own packet looped back
	}
	if reg, ok := msg.(*wire.Register); ok && len(reg.Packet) >= 6 {
		d.log.Debug("register", "from", h.Src, "null", reg.Null, "ipid", int(reg.Packet[4])<<8|int(reg.Packet[5]))
	}
	d.applyPIM(p.r.Receive(now, name, h.Src, h.Dst, msg))
}

func (d *Daemon) isLocal(a netip.Addr) bool {
	for _, x := range d.ifs {
		if x.addr == a {
			return true
		}
	}
	return false
}

// applyPIM sends what PIM wants sent, logs its events and reprograms the
// kernel when forwarding may have changed.
func (d *Daemon) applyPIM(res pim.Result) {
	p := d.pim
	for _, s := range res.Sends {
		ifindex := 0
		if s.Iface != "" {
			x := d.ifs[s.Iface]
			if x == nil || !p.active[s.Iface] {
				continue
			}
			ifindex = x.ifindex
		}
		if err := p.sock.Send(ifindex, s.Dst, s.Msg.Marshal()); err != nil {
			p.sendErrors++
			d.log.Debug("pim send", "interface", s.Iface, "dst", s.Dst, "err", err)
			continue
		}
		p.txPackets++
	}
	for _, e := range res.Events {
		switch e.Kind {
		case pim.ASMJoinInSSMRange:
			p.asmInSSM++
			d.log.Warn("ASM (*,G) join for a group in the SSM range ignored: receivers must join (S,G) with IGMPv3", "interface", e.Iface, "group", e.Addr)
		default:
			d.log.Info("pim "+e.Kind.String(), "interface", e.Iface, "address", e.Addr)
		}
	}
	for _, k := range res.Changed {
		d.touch(k.G) // re-derived when the event queue runs dry
	}
}

// pushMembership tells PIM what IGMP says receivers on x want for g.
func (d *Daemon) pushMembership(x *iface, g netip.Addr, now time.Time) {
	if d.pim == nil {
		return
	}
	var asm bool
	var include, exclude []netip.Addr
	if v, ok := x.igmp.Group(g, now); ok {
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
	d.applyPIM(d.pim.r.SetMembership(now, x.name, g, asm, include, exclude))
}

func (d *Daemon) onRouteChange(now time.Time) {
	if d.pim == nil {
		return
	}
	d.pim.rt.Invalidate()
	d.applyPIM(d.pim.r.RPFChanged(now))
	d.reconcile()
}

// vifName is the interface name PIM uses for a VIF.
func (d *Daemon) vifName(vif int) string {
	if d.pim != nil && vif == d.pim.regVIF {
		return pim.RegisterVIF
	}
	for _, x := range d.ifs {
		if x.vif == vif {
			return x.name
		}
	}
	return ""
}

func (d *Daemon) nameVIF(name string) (int, bool) {
	if d.pim != nil && name == pim.RegisterVIF {
		return d.pim.regVIF, true
	}
	if x := d.ifs[name]; x != nil {
		return x.vif, true
	}
	return 0, false
}

// pimUpcall handles kernel upcalls when PIM runs.
func (d *Daemon) pimUpcall(up dataplane.Upcall, now time.Time) {
	p := d.pim
	switch up.Kind {
	case dataplane.WholePkt:
		// A source on this host or behind a veth may have left its UDP
		// checksum to offload; the kernel forwards such packets natively,
		// but a Register carries the bytes as they are.
		ip4.FixPartialUDPChecksum(up.Packet)
		if s, ok := p.r.RegisterPacket(up.Packet); ok {
			d.applyPIM(pim.Result{Sends: []pim.Send{s}})
		}
		return
	case dataplane.NoCache, dataplane.WrongVIF:
	default:
		return
	}
	name := d.vifName(up.VIF)
	if name == "" || !up.Group.IsMulticast() || up.Group.IsLinkLocalMulticast() {
		return
	}
	kind := pim.DataNoCache
	if up.Kind == dataplane.WrongVIF {
		kind = pim.DataWrongIf
	}
	d.log.Debug("upcall", "kind", up.Kind, "sg", up.SG, "iif", name, "ipid", up.IPID)
	if f, ok := d.flows[up.SG]; ok {
		f.lastActive = now
	} else {
		d.flows[up.SG] = &flow{key: up.SG, iif: d.ifs[name], created: now, lastActive: now}
		d.log.Debug("new flow", "sg", up.SG, "iif", name)
	}
	d.applyPIM(p.r.DataArrivedID(now, up.Source, up.Group, name, kind, up.IPID))
	d.touch(up.Group)
	d.flushRoutes() // now: the kernel holds the flow's packets until then
	if kind == pim.DataWrongIf && p.r.SPTPending(up.Source, up.Group) && !p.r.IAmRP(up.Group) {
		go d.watchSPTSwitch(up.SG, p.r.Config().SPTSwitchGuard)
	}
}

// adoptPIMFlows makes a flow of each (S,G) in ks that PIM has state for
// and somewhere to forward, before any packet: joins from downstream or
// local (S,G) receivers. Its kernel route is then installed at once, so
// the first packet is forwarded in the kernel, and a burst of new flows
// does not wait on the kernel's ten-entry queue of unresolved packets.
func (d *Daemon) adoptPIMFlows(now time.Time, ks []pim.SG) {
	for _, k := range ks {
		dk := dataplane.SG{Source: k.S, Group: k.G}
		if _, ok := d.flows[dk]; ok {
			continue
		}
		iif, oifs, ok := d.pim.r.Route(k.S, k.G)
		if !ok || len(oifs) == 0 {
			continue
		}
		if _, ok := d.nameVIF(iif); !ok {
			continue
		}
		d.flows[dk] = &flow{key: dk, iif: d.ifs[iif], created: now, lastActive: now}
	}
}

// pimRoute is a flow's kernel route when PIM runs: PIM's Route. A flow
// PIM does not forward is installed with no outgoing interfaces, so the
// kernel stops asking about it.
func (d *Daemon) pimRoute(f *flow) dataplane.Route {
	k := f.key
	iif, oifs, ok := d.pim.r.Route(k.Source, k.Group)
	r := dataplane.Route{SG: k}
	v, okV := d.nameVIF(iif)
	switch {
	case ok && okV:
		r.IIF = v
		for _, o := range oifs {
			if ov, ok := d.nameVIF(o); ok {
				r.OIFs = append(r.OIFs, ov)
			}
		}
	case f.iif != nil:
		r.IIF = f.iif.vif
	default:
		r.IIF = d.pim.regVIF
	}
	slices.Sort(r.OIFs)
	return r
}

func (d *Daemon) flowIIF(f *flow) string {
	if f.iif == nil {
		return pim.RegisterVIF
	}
	return f.iif.name
}

// pimFlags describes a flow in the Cisco style (S sparse, C connected
// member, P pruned, F register, T on the SPT) with its outgoing interfaces
// and why each is there.
func (d *Daemon) pimFlags(f *flow) (string, []api.OIF) {
	k := f.key
	iif, oifs, _ := d.pim.r.Route(k.Source, k.Group)
	flags := "S"
	var out []api.OIF
	for _, o := range oifs {
		origin := "pim"
		if x := d.ifs[o]; x != nil && x.igmp.Forwards(k.Group, k.Source) {
			origin = "igmp"
			if !strings.Contains(flags, "C") {
				flags += "C"
			}
		}
		if o == pim.RegisterVIF {
			origin = "register"
			flags += "F"
		}
		out = append(out, api.OIF{Name: o, Origin: origin})
	}
	if x, ok := d.pim.rt.Lookup(k.Source); ok && x.Iface == iif && iif != "" {
		flags += "T"
	}
	rpt, crossed := d.pim.r.FlowFlags(k.Source, k.Group)
	if rpt {
		flags += "R"
	}
	if crossed {
		flags += "J"
	}
	if len(oifs) == 0 {
		flags += "P"
	}
	return flags, out
}

// watchSPTSwitch watches a flow waiting to move to the SPT: the first
// packet came by the SPT and was dropped (wrong interface). When the
// shared tree's copy of it is forwarded the route's packet count moves,
// and that is the moment to switch: the next packet is a whole interval
// away. If nothing moves within the guard, PIM's own timer switches.
// It runs on its own goroutine: it touches only the socket (safe to share)
// and posts its result to the loop.
func (d *Daemon) watchSPTSwitch(k dataplane.SG, guard time.Duration) {
	base, err := d.sock.SGCount(k)
	if err != nil {
		return
	}
	deadline := time.Now().Add(guard)
	for time.Now().Before(deadline) {
		c, err := d.sock.SGCount(k)
		if err != nil {
			return
		}
		if c.Packets != base.Packets {
			d.post(func() {
				d.applyPIM(d.pim.r.CompleteSPTSwitch(time.Now(), k.Source, k.Group))
				d.flushRoutes()
			})
			return
		}
		time.Sleep(5 * time.Microsecond)
	}
}

// rpfKernel is a route source for `show rpf` when PIM is off.
func rpfKernel() pim.Routing { return rpf.New() }
