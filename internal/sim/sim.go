// Package sim runs many Overcast daemons in one process: virtual LANs,
// virtual time, shortest-path unicast routing computed from the topology,
// hosts that speak IGMPv3, and a data plane per router (the daemon's
// in-memory forwarder) that forwards test packets as the kernel's
// forwarding cache would, upcalls included. Each router is the real
// daemon (internal/daemon: IGMP and PIM components, MRIB, reconciler) on
// fake seams and a manual clock; every control packet is encoded by the
// sender and parsed by the receiver.
package sim

import (
	"container/heap"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"overcast/internal/config"
	"overcast/internal/daemon"
	"overcast/internal/dataplane"
	"overcast/internal/dataplane/fake"
	igmpwire "overcast/internal/packet/igmp"
	"overcast/internal/packet/ip4"
	wire "overcast/internal/packet/pim"
	"overcast/internal/pim"
)

// Net is a simulated network.
type Net struct {
	Now     time.Time
	Nodes   map[string]*Node
	LANs    map[string]*LAN
	rng     *rand.Rand
	inbox   []delivery
	Trace   func(from *Node, iface string, m wire.Message, size int) // every PIM message sent
	Sent    int                                                      // PIM messages sent
	Dropped int                                                      // PIM messages lost on down LANs

	members       map[memberKey]map[netip.Addr]bool // hosts that receive data
	reports       map[memberKey]map[netip.Addr]sub  // what hosts report to IGMP queries
	pendingCopies Copies
	spfCache      map[*Node]map[*Node]firstHop // cleared when the topology changes
	nextTick      time.Time                    // the daemons' once-a-second tick
}

// sub is one host's IGMPv3 membership of a group.
type sub struct {
	asm     bool
	sources []netip.Addr
}

// Node is a router: a daemon on an in-memory forwarder and packet I/O.
type Node struct {
	Name     string
	D        *daemon.Daemon
	R        *pim.Router // the daemon's PIM core (after the first Connect)
	FW       *fake.Forwarder
	IO       *fake.PacketIO
	Ports    map[string]*Port // by interface name
	Loopback netip.Addr
	net      *Net
	cfg      pim.Config
	ifcs     map[string]pim.IfConfig
	order    []string // interfaces in the order they were connected
	static   []staticRoute
	// Extra is more of the config file (top-level keys: restart-grace: 0s).
	Extra string
}

type staticRoute struct {
	prefix netip.Prefix
	via    string
}

// Via pins this node's route to a prefix through a neighbouring router
// (a static route), overriding the shortest path while that neighbour is
// reachable on a LAN that is up.
func (nd *Node) Via(prefix, router string) {
	nd.static = append(nd.static, staticRoute{netip.MustParsePrefix(prefix), router})
	nd.net.spfCache = nil
}

// Port is a router interface on a LAN.
type Port struct {
	Node  *Node
	Iface string
	Addr  netip.Addr
	LAN   *LAN
}

// LAN is a multi-access link with routers and hosts.
type LAN struct {
	Name   string
	Prefix netip.Prefix
	Cost   int
	Up     bool
	Ports  []*Port
	Hosts  []netip.Addr
	next   byte
}

type delivery struct {
	from    *Node
	to      *Port // nil for unicast: routed to the owner of dst
	proto   dataplane.Proto
	src     netip.Addr
	dst     netip.Addr
	payload []byte // PIM: the message; IGMP: the whole IPv4 packet
}

// New makes an empty network starting at t0.
func New(t0 time.Time, seed uint64) *Net {
	return &Net{Now: t0, Nodes: map[string]*Node{}, LANs: map[string]*LAN{}, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		nextTick: t0.Add(time.Second)}
}

// AddLAN adds a LAN with a /24 prefix and a routing cost.
func (n *Net) AddLAN(name string, prefix string, cost int) *LAN {
	l := &LAN{Name: name, Prefix: netip.MustParsePrefix(prefix), Cost: cost, Up: true, next: 1}
	n.LANs[name] = l
	return l
}

func (l *LAN) addr() netip.Addr {
	a := l.Prefix.Addr().As4()
	a[3] = l.next
	l.next++
	return netip.AddrFrom4(a)
}

// AddRouter adds a router with a loopback address and PIM settings (those
// a config file cannot express, such as policies, reach the daemon
// through its TunePIM hook). Its daemon starts at its first Connect.
func (n *Net) AddRouter(name string, loopback string, cfg pim.Config) *Node {
	nd := &Node{Name: name, Ports: map[string]*Port{}, net: n, cfg: cfg, ifcs: map[string]pim.IfConfig{},
		FW: fake.New(), IO: fake.NewPacketIO()}
	if loopback != "" {
		nd.Loopback = netip.MustParseAddr(loopback)
	}
	nd.IO.OnSend = func(s fake.Sent) { n.send(nd, s) }
	n.Nodes[name] = nd
	return nd
}

// configYAML is the node's config file: every connected interface with
// PIM and IGMPv3 explicit tracking (a host's leave prunes at once).
func (nd *Node) configYAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "api-socket: /nonexistent/overcast-sim-%s.sock\npim: {}\n%sinterfaces:\n", nd.Name, nd.Extra)
	for _, name := range nd.order {
		fmt.Fprintf(&b, "  - name: %s\n    pim: true\n    igmp: {explicit-tracking: true}\n", name)
	}
	return b.String()
}

func (nd *Node) parseConfig() *config.Config {
	c, err := config.Parse(nd.Name+".yaml", []byte(nd.configYAML()), func(name string) bool { return nd.Ports[name] != nil })
	if err != nil {
		panic(fmt.Sprintf("sim: %s's config: %v", nd.Name, err))
	}
	return c
}

func (nd *Node) env() daemon.Env {
	n := nd.net
	return daemon.Env{
		Forwarder: nd.FW, IO: nd.IO, Links: nodeLinks{nd}, Routing: nodeRouting{nd},
		Jitter: func(max time.Duration) time.Duration {
			if max <= 0 {
				return 0
			}
			return time.Duration(n.rng.Int64N(int64(max)))
		},
		Rand32: n.rng.Uint32,
		TunePIM: func(c *pim.Config) {
			t := nd.cfg
			if t.RPs != nil {
				c.RPs = t.RPs
			}
			if t.SwitchToSPT != nil {
				c.SwitchToSPT = t.SwitchToSPT
			}
			override(&c.JoinPruneInterval, t.JoinPruneInterval)
			override(&c.SPTSwitchGuard, t.SPTSwitchGuard)
			override(&c.KeepalivePeriod, t.KeepalivePeriod)
			c.CheckTimers = true // every NextDeadline is checked against a full scan
		},
		TunePIMIf: func(iface string, c *pim.IfConfig) {
			t := nd.ifcs[iface]
			c.TrackingSupport = c.TrackingSupport || t.TrackingSupport
			override(&c.HelloPeriod, t.HelloPeriod)
			override(&c.DRPriority, t.DRPriority)
			override(&c.PropagationDelay, t.PropagationDelay)
			override(&c.OverrideInterval, t.OverrideInterval)
		},
	}
}

// override sets *dst to v unless v is the zero value (not set in the test).
func override[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// nodeLinks is the node's interfaces as the daemon sees the host's.
type nodeLinks struct{ nd *Node }

func (l nodeLinks) Link(name string) (dataplane.Link, error) {
	p := l.nd.Ports[name]
	if p == nil {
		return dataplane.Link{}, fmt.Errorf("sim: %s has no interface %s", l.nd.Name, name)
	}
	return dataplane.Link{Index: slices.Index(l.nd.order, name) + 1, Addr: p.Addr, Prefixes: []netip.Prefix{p.LAN.Prefix.Masked()}, Multicast: true}, nil
}

func (l nodeLinks) LocalAddrs() []netip.Addr {
	var out []netip.Addr
	if l.nd.Loopback.IsValid() {
		out = append(out, l.nd.Loopback)
	}
	for _, name := range l.nd.order {
		out = append(out, l.nd.Ports[name].Addr)
	}
	return out
}

// Connect attaches a router to a LAN as interface iface: the daemon
// starts with it, or reloads its config with the interface added.
func (n *Net) Connect(nd *Node, iface string, l *LAN, ifc pim.IfConfig) *Port {
	n.spfCache = nil
	p := &Port{Node: nd, Iface: iface, Addr: l.addr(), LAN: l}
	nd.Ports[iface] = p
	nd.ifcs[iface] = ifc
	nd.order = append(nd.order, iface)
	l.Ports = append(l.Ports, p)
	cfg := nd.parseConfig()
	if nd.D == nil {
		nd.D = daemon.NewFromConfig(nd.Name+".yaml", cfg, nd.env(), slog.New(slog.DiscardHandler))
		if err := nd.D.Start(n.Now); err != nil {
			panic(fmt.Sprintf("sim: %s: %v", nd.Name, err))
		}
		nd.R = nd.D.PIM()
	} else if err := nd.D.Reload(cfg, n.Now); err != nil {
		panic(fmt.Sprintf("sim: %s: reload: %v", nd.Name, err))
	}
	return p
}

// SetPIM changes a router's PIM settings the way an operator does: the
// daemon reloads its config (RP set, thresholds, timers apply at once).
func (n *Net) SetPIM(nd *Node, cfg pim.Config) {
	nd.cfg = cfg
	if err := nd.D.Reload(nd.parseConfig(), n.Now); err != nil {
		panic(fmt.Sprintf("sim: %s: reload: %v", nd.Name, err))
	}
	nd.D.EndBurst(n.Now)
	n.settle()
}

// AddHost puts a host on a LAN and returns its address.
func (n *Net) AddHost(l *LAN) netip.Addr {
	a := l.addr()
	l.Hosts = append(l.Hosts, a)
	return a
}

// lanHost is the address LAN-wide joins report from.
func lanHost(l *LAN) netip.Addr {
	a := l.Prefix.Addr().As4()
	a[3] = 254
	return netip.AddrFrom4(a)
}

// Join makes a receiver on a LAN report group g (ASM, or the include
// sources for SSM) to the LAN's routers with IGMPv3, and keep reporting it
// to their queries. It does not make any host receive data (HostJoin).
func (n *Net) Join(l *LAN, g netip.Addr, asm bool, include ...netip.Addr) {
	n.report(l, lanHost(l), g, sub{asm: asm, sources: include})
	n.settle()
}

// Leave makes every receiver of g on a LAN leave it.
func (n *Net) Leave(l *LAN, g netip.Addr) {
	for h := range n.reports[memberKey{l.Name, g}] {
		n.leave(l, h, g)
	}
	n.settle()
}

func (n *Net) report(l *LAN, h, g netip.Addr, s sub) {
	if n.reports == nil {
		n.reports = map[memberKey]map[netip.Addr]sub{}
	}
	k := memberKey{l.Name, g}
	if n.reports[k] == nil {
		n.reports[k] = map[netip.Addr]sub{}
	}
	n.reports[k][h] = s
	rec := igmpwire.GroupRecord{Type: igmpwire.ChangeToExclude, Group: g}
	if !s.asm {
		rec = igmpwire.GroupRecord{Type: igmpwire.AllowNewSources, Group: g, Sources: s.sources}
	}
	n.hostReport(l, h, rec)
}

func (n *Net) leave(l *LAN, h, g netip.Addr) {
	k := memberKey{l.Name, g}
	if _, ok := n.reports[k][h]; !ok {
		return
	}
	delete(n.reports[k], h)
	n.hostReport(l, h, igmpwire.GroupRecord{Type: igmpwire.ChangeToInclude, Group: g})
}

// hostReport sends an IGMPv3 report from host h to the LAN's routers.
func (n *Net) hostReport(l *LAN, h netip.Addr, recs ...igmpwire.GroupRecord) {
	if !l.Up || len(recs) == 0 {
		return
	}
	hd := ip4.Header{TOS: 0xc0, TTL: 1, Protocol: ip4.ProtoIGMP, Src: h, Dst: allReportsV3, Options: ip4.OptRouterAlert}
	pkt := hd.Marshal((&igmpwire.V3Report{Records: recs}).Marshal())
	for _, p := range l.Ports {
		n.inbox = append(n.inbox, delivery{to: p, proto: dataplane.IGMP, src: h, dst: allReportsV3, payload: pkt})
	}
}

// answerQuery is the hosts of a LAN answering an IGMP query with their
// current state (RFC 3376 section 5.2), at once.
func (n *Net) answerQuery(l *LAN, pkt []byte) {
	_, payload, err := ip4.Parse(pkt)
	if err != nil {
		return
	}
	m, err := igmpwire.Parse(payload)
	q, ok := m.(*igmpwire.Query)
	if err != nil || !ok {
		return
	}
	byHost := map[netip.Addr][]igmpwire.GroupRecord{}
	for k, hs := range n.reports {
		if k.lan != l.Name || (!q.IsGeneral() && k.g != q.Group) {
			continue
		}
		for h, s := range hs {
			rec := igmpwire.GroupRecord{Type: igmpwire.ModeIsExclude, Group: k.g}
			if !s.asm {
				rec = igmpwire.GroupRecord{Type: igmpwire.ModeIsInclude, Group: k.g, Sources: s.sources}
			}
			byHost[h] = append(byHost[h], rec)
		}
	}
	hosts := make([]netip.Addr, 0, len(byHost))
	for h := range byHost {
		hosts = append(hosts, h)
	}
	slices.SortFunc(hosts, netip.Addr.Compare)
	for _, h := range hosts {
		recs := byHost[h]
		slices.SortFunc(recs, func(a, b igmpwire.GroupRecord) int { return a.Group.Compare(b.Group) })
		for len(recs) > 0 { // several reports when the records do not fit one
			k := min(len(recs), 60)
			n.hostReport(l, h, recs[:k]...)
			recs = recs[k:]
		}
	}
}

// SetLAN brings a LAN up or down; every router re-reads routing at once,
// as netlink route notifications make the daemon do.
func (n *Net) SetLAN(l *LAN, up bool) {
	l.Up = up
	n.spfCache = nil
	for _, name := range n.nodeNames() {
		nd := n.Nodes[name]
		if nd.D != nil {
			nd.D.RoutingChanged(n.Now)
			nd.D.EndBurst(n.Now)
		}
	}
	n.settle()
}

func (n *Net) nodeNames() []string {
	var out []string
	for k := range n.Nodes {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// send takes what a daemon sent and queues it for the LAN or the
// unicast destination.
func (n *Net) send(nd *Node, s fake.Sent) {
	switch s.Proto {
	case dataplane.PIM:
		m, err := wire.Parse(s.Pkt)
		if err != nil {
			panic(fmt.Sprintf("sim: %s sent a message that does not parse: %v", nd.Name, err))
		}
		n.Sent++
		if n.Trace != nil {
			n.Trace(nd, s.Iface, m, len(s.Pkt))
		}
		if s.Iface == "" {
			src := nd.sourceToward(s.Dst)
			if s.Src.IsValid() {
				src = s.Src // SendFrom
			}
			n.inbox = append(n.inbox, delivery{from: nd, proto: dataplane.PIM, src: src, dst: s.Dst, payload: s.Pkt})
			return
		}
		p := nd.Ports[s.Iface]
		if p == nil {
			return
		}
		if !p.LAN.Up {
			n.Dropped++
			return
		}
		for _, q := range p.LAN.Ports {
			if q != p {
				n.inbox = append(n.inbox, delivery{from: nd, to: q, proto: dataplane.PIM, src: p.Addr, dst: s.Dst, payload: s.Pkt})
			}
		}
	case dataplane.IGMP:
		p := nd.Ports[s.Iface]
		if p == nil || !p.LAN.Up {
			return
		}
		for _, q := range p.LAN.Ports {
			if q != p {
				n.inbox = append(n.inbox, delivery{from: nd, to: q, proto: dataplane.IGMP, dst: s.Dst, payload: s.Pkt})
			}
		}
		n.answerQuery(p.LAN, s.Pkt)
	}
}

// sourceToward picks the address a router sends unicast from.
func (nd *Node) sourceToward(dst netip.Addr) netip.Addr {
	if x, ok := (nodeRouting{nd}).Lookup(dst); ok {
		if p := nd.Ports[x.Iface]; p != nil {
			return p.Addr
		}
	}
	return nd.Loopback
}

// settle delivers control packets until none are left (zero link delay).
// Each delivery is one burst for the daemon that receives it.
func (n *Net) settle() {
	for rounds := 0; len(n.inbox) > 0; rounds++ {
		if rounds > 1000000 {
			panic("sim: control plane does not settle")
		}
		d := n.inbox[0]
		n.inbox = n.inbox[1:]
		pkt := d.payload
		if d.proto == dataplane.PIM {
			ttl := uint8(1)
			if d.to == nil {
				ttl = 64
			}
			h := ip4.Header{TOS: 0xc0, TTL: ttl, Protocol: ip4.ProtoPIM, Src: d.src, Dst: d.dst}
			pkt = h.Marshal(d.payload)
		}
		if d.to != nil {
			if !d.to.LAN.Up {
				if d.proto == dataplane.PIM {
					n.Dropped++
				}
				continue
			}
			nd := d.to.Node
			nd.D.Packet(n.Now, d.to.Iface, d.proto, pkt)
			nd.D.EndBurst(n.Now)
			continue
		}
		owner := n.owner(d.dst)
		if owner == nil || !n.reachable(d.from, owner) {
			n.Dropped++
			continue
		}
		if m, err := wire.Parse(d.payload); err == nil {
			if reg, ok := m.(*wire.Register); ok && !reg.Null {
				// The kernel at the RP decapsulates and forwards the inner
				// packet before the daemon reads its copy of the Register.
				s, g := reg.InnerSourceGroup()
				n.forward(owner, dataplane.RegisterName, s, g, 0)
			}
		}
		owner.D.Packet(n.Now, "", dataplane.PIM, pkt)
		owner.D.EndBurst(n.Now)
	}
}

func (n *Net) owner(a netip.Addr) *Node {
	for _, nd := range n.Nodes {
		if nd.Loopback == a {
			return nd
		}
		for _, p := range nd.Ports {
			if p.Addr == a {
				return nd
			}
		}
	}
	return nil
}

func (n *Net) reachable(from, to *Node) bool {
	if from == to {
		return true
	}
	_, ok := n.spf(from)[to]
	return ok
}

// Run advances virtual time by d, firing daemon timers in order, and
// each daemon's once-a-second tick (counters, flow expiry).
func (n *Net) Run(d time.Duration) {
	end := n.Now.Add(d)
	for {
		n.settle()
		next := n.nextTick
		for _, nd := range n.Nodes {
			if nd.D == nil {
				continue
			}
			if t := nd.D.NextDeadline(); !t.IsZero() && t.Before(next) {
				next = t
			}
		}
		if next.After(end) {
			break
		}
		if next.After(n.Now) {
			n.Now = next
		}
		for _, name := range n.nodeNames() {
			nd := n.Nodes[name]
			if nd.D == nil {
				continue
			}
			if t := nd.D.NextDeadline(); !t.IsZero() && !t.After(n.Now) {
				nd.D.Advance(n.Now)
				nd.D.EndBurst(n.Now)
			}
		}
		if !n.nextTick.After(n.Now) {
			for _, name := range n.nodeNames() {
				if nd := n.Nodes[name]; nd.D != nil {
					nd.D.Tick(n.Now)
					nd.D.EndBurst(n.Now)
				}
			}
			n.nextTick = n.Now.Add(time.Second)
		}
	}
	n.Now = end
	n.settle()
}

// PacketSize is the size in bytes the data plane counts per test packet.
const PacketSize = 1000

// Copies counts what a test packet reached: host address -> copies.
type Copies map[netip.Addr]int

// SendData sends one packet from host src (on LAN l) to group g and
// returns the copies each host received, having let the control plane
// react to what the packet triggered.
func (n *Net) SendData(l *LAN, src, g netip.Addr) Copies {
	got := Copies{}
	n.dataLAN(l, nil, src, g, 0)
	n.settle()
	n.collect(got)
	return got
}

func (n *Net) collect(got Copies) {
	for k, v := range n.pendingCopies {
		got[k] += v
	}
	n.pendingCopies = nil
}

// dataLAN puts a packet on a LAN: hosts that joined get it, and every
// router port except the sender's receives it.
func (n *Net) dataLAN(l *LAN, from *Port, s, g netip.Addr, hops int) {
	if !l.Up {
		return
	}
	if from != nil {
		for _, h := range l.Hosts {
			if n.hostWants(l, h, g) {
				if n.pendingCopies == nil {
					n.pendingCopies = Copies{}
				}
				n.pendingCopies[h]++
			}
		}
	}
	for _, p := range l.Ports {
		if p != from {
			n.forward(p.Node, p.Iface, s, g, hops)
		}
	}
}

func (n *Net) hostWants(l *LAN, h netip.Addr, g netip.Addr) bool {
	return n.members[memberKey{l.Name, g}] != nil && n.members[memberKey{l.Name, g}][h]
}

// forward is one router's data plane for a packet that arrived on iif:
// its forwarder's table, with an upcall to the daemon when there is no
// route (the kernel holds the packet and forwards it once the route is
// in) or the packet came in the wrong way (the kernel drops it).
func (n *Net) forward(nd *Node, iif string, s, g netip.Addr, hops int) {
	if hops > 64 {
		panic("sim: forwarding loop")
	}
	if nd.D == nil {
		return
	}
	k := dataplane.SG{Source: s, Group: g}
	out, _, up := nd.FW.Forward(k, iif, PacketSize)
	if up != nil {
		nd.D.Upcall(n.Now, *up)
		nd.D.EndBurst(n.Now)
		if up.Kind == dataplane.WrongVIF {
			return
		}
		if out, _, up = nd.FW.Forward(k, iif, PacketSize); up != nil {
			return
		}
	}
	// The daemon reads the counters of flows measured against an SPT
	// threshold between its full polls; the simulation lets it after
	// every packet, so a crossing shows at the packet that made it.
	nd.D.Tick(n.Now)
	nd.D.EndBurst(n.Now)
	for _, o := range out {
		if o == dataplane.RegisterName {
			// The kernel hands the packet up whole; the daemon registers it.
			udp := []byte{0x04, 0x00, 0x04, 0x00, 0, 8, 0, 0}
			pkt := ip4.Header{TTL: 64, Protocol: ip4.ProtoUDP, Src: s, Dst: g}.Marshal(udp)
			nd.D.Upcall(n.Now, dataplane.Upcall{Kind: dataplane.WholePkt, Iface: dataplane.RegisterName, SG: k, Packet: pkt, IPID: -1})
			nd.D.EndBurst(n.Now)
			continue
		}
		if p := nd.Ports[o]; p != nil {
			n.dataLAN(p.LAN, p, s, g, hops+1)
		}
	}
}

// --- membership of hosts -------------------------------------------------

type memberKey struct {
	lan string
	g   netip.Addr
}

// HostJoin makes one host on a LAN a receiver of g (ASM, or SSM with
// sources): it reports with IGMPv3 and receives the group's data.
func (n *Net) HostJoin(l *LAN, h, g netip.Addr, include ...netip.Addr) {
	if n.members == nil {
		n.members = map[memberKey]map[netip.Addr]bool{}
	}
	k := memberKey{l.Name, g}
	if n.members[k] == nil {
		n.members[k] = map[netip.Addr]bool{}
	}
	n.members[k][h] = true
	n.report(l, h, g, sub{asm: len(include) == 0, sources: include})
	n.settle()
}

// HostLeave makes a host leave g (an IGMPv3 TO_IN{} report); with explicit
// tracking the routers prune when the last host has left.
func (n *Net) HostLeave(l *LAN, h, g netip.Addr) {
	k := memberKey{l.Name, g}
	delete(n.members[k], h)
	n.leave(l, h, g)
	n.settle()
}

// --- unicast routing -----------------------------------------------------

type nodeRouting struct{ nd *Node }

// Invalidate is a no-op: answers are computed from the topology, whose
// cache is cleared when it changes.
func (nodeRouting) Invalidate() {}

// Lookup is the node's unicast route to dst: shortest path by LAN cost
// over LANs that are up, ties broken by router name.
func (r nodeRouting) Lookup(dst netip.Addr) (pim.RPF, bool) {
	nd := r.nd
	n := nd.net
	// Directly connected?
	for _, name := range sortedPorts(nd) {
		p := nd.Ports[name]
		if p.LAN.Up && p.LAN.Prefix.Contains(dst) {
			if o := n.owner(dst); o != nil && o != nd {
				return pim.RPF{Iface: p.Iface, Neighbor: dst, Metric: uint32(p.LAN.Cost), Protocol: "connected", Prefix: p.LAN.Prefix}, true
			}
			return pim.RPF{Iface: p.Iface, Metric: uint32(p.LAN.Cost), Protocol: "connected", Prefix: p.LAN.Prefix}, true
		}
	}
	for _, st := range nd.static {
		if !st.prefix.Contains(dst) {
			continue
		}
		for _, name := range sortedPorts(nd) {
			p := nd.Ports[name]
			if !p.LAN.Up {
				continue
			}
			for _, q := range p.LAN.Ports {
				if q.Node.Name == st.via {
					return pim.RPF{Iface: p.Iface, Neighbor: q.Addr, Metric: uint32(p.LAN.Cost)}, true
				}
			}
		}
	}
	target := n.owner(dst)
	var targetLAN *LAN
	if target == nil {
		for _, l := range n.LANs {
			if l.Prefix.Contains(dst) {
				targetLAN = l
			}
		}
		if targetLAN == nil {
			return pim.RPF{}, false
		}
	}
	dist := n.spf(nd)
	best, bestCost := (*firstHop)(nil), -1
	consider := func(to *Node, extra int) {
		fh, ok := dist[to]
		if !ok {
			return
		}
		c := fh.cost + extra
		if bestCost < 0 || c < bestCost || (c == bestCost && fh.via.Node.Name < best.via.Node.Name) {
			f := fh
			best, bestCost = &f, c
		}
	}
	if target != nil {
		consider(target, 0)
	} else {
		for _, p := range targetLAN.Ports {
			if targetLAN.Up {
				consider(p.Node, targetLAN.Cost)
			}
		}
	}
	if best == nil {
		return pim.RPF{}, false
	}
	prefix := netip.PrefixFrom(dst, 32) // a router's loopback
	if targetLAN != nil {
		prefix = targetLAN.Prefix
	}
	return pim.RPF{Iface: best.out.Iface, Neighbor: best.via.Addr, Metric: uint32(bestCost), Protocol: "igp", Prefix: prefix}, true
}

type firstHop struct {
	cost int
	out  *Port // our port
	via  *Port // the neighbour's port on that LAN
}

// spf is Dijkstra from a node: for each reachable router, the cost and the
// first hop toward it.
func (n *Net) spf(from *Node) map[*Node]firstHop {
	if d, ok := n.spfCache[from]; ok {
		return d
	}
	if n.spfCache == nil {
		n.spfCache = map[*Node]map[*Node]firstHop{}
	}
	dist := map[*Node]firstHop{}
	defer func() { n.spfCache[from] = dist }()
	done := map[*Node]bool{}
	pq := &nodeHeap{}
	heap.Push(pq, hopItem{from, firstHop{}})
	start := true
	for pq.Len() > 0 {
		it := heap.Pop(pq).(hopItem)
		if done[it.nd] {
			continue
		}
		done[it.nd] = true
		if !start {
			dist[it.nd] = it.fh
		}
		start = false
		for _, name := range sortedPorts(it.nd) {
			p := it.nd.Ports[name]
			if !p.LAN.Up {
				continue
			}
			for _, q := range p.LAN.Ports {
				if q.Node == it.nd || done[q.Node] {
					continue
				}
				fh := firstHop{cost: it.fh.cost + p.LAN.Cost, out: it.fh.out, via: it.fh.via}
				if it.nd == from {
					fh.out, fh.via = p, q
				}
				heap.Push(pq, hopItem{q.Node, fh})
			}
		}
	}
	return dist
}

func sortedPorts(nd *Node) []string {
	var out []string
	for k := range nd.Ports {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

type hopItem struct {
	nd *Node
	fh firstHop
}

type nodeHeap []hopItem

func (h nodeHeap) Len() int { return len(h) }
func (h nodeHeap) Less(i, j int) bool {
	if h[i].fh.cost != h[j].fh.cost {
		return h[i].fh.cost < h[j].fh.cost
	}
	return h[i].nd.Name < h[j].nd.Name
}
func (h nodeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *nodeHeap) Push(x any)   { *h = append(*h, x.(hopItem)) }
func (h *nodeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

var allReportsV3 = netip.MustParseAddr("224.0.0.22")

// Restart replaces a router's daemon with a new one on the same forwarder
// and packet I/O, as a restart that hands the kernel's table over would:
// the routes stay in the forwarder, the old process says no goodbye, and
// the new one starts with a new generation ID and adopts what it finds.
func (n *Net) Restart(nd *Node) {
	nd.FW.ForgetInterfaces() // the new daemon adds them again
	nd.D = daemon.NewFromConfig(nd.Name+".yaml", nd.parseConfig(), nd.env(), slog.New(slog.DiscardHandler))
	if err := nd.D.Start(n.Now); err != nil {
		panic(fmt.Sprintf("sim: %s: restart: %v", nd.Name, err))
	}
	nd.R = nd.D.PIM()
	n.settle()
}
