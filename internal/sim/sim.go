// Package sim runs many PIM routers in one process: virtual LANs, virtual
// time, shortest-path unicast routing computed from the topology, and a
// data plane that forwards test packets by asking each router's Route, as
// the kernel's forwarding cache would. Every control message goes through
// the wire codec, so a simulation also exercises encoding and decoding.
package sim

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

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
	Trace   func(from *Node, iface string, m wire.Message, size int) // every control message sent
	Sent    int                                                      // control messages sent
	Dropped int                                                      // control messages lost on down LANs

	members       map[memberKey]map[netip.Addr]bool
	pendingCopies Copies
	spfCache      map[*Node]map[*Node]firstHop // cleared when the topology changes
}

// Node is a router.
type Node struct {
	Name     string
	R        *pim.Router
	Ports    map[string]*Port // by interface name
	Loopback netip.Addr
	net      *Net
	flows    map[pim.SG]route  // the "kernel" forwarding cache
	counts   map[pim.SG]uint64 // packets forwarded per cache entry (the kernel's counters)
	static   []staticRoute
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

type route struct {
	iif  string
	oifs []string
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
	src     netip.Addr
	dst     netip.Addr
	payload []byte
}

// New makes an empty network starting at t0.
func New(t0 time.Time, seed uint64) *Net {
	return &Net{Now: t0, Nodes: map[string]*Node{}, LANs: map[string]*LAN{}, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
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

// AddRouter adds a router with a loopback address and a PIM config.
func (n *Net) AddRouter(name string, loopback string, cfg pim.Config) *Node {
	nd := &Node{Name: name, Ports: map[string]*Port{}, net: n, flows: map[pim.SG]route{}, counts: map[pim.SG]uint64{}}
	if loopback != "" {
		nd.Loopback = netip.MustParseAddr(loopback)
	}
	cfg.CheckTimers = true // every NextDeadline is checked against a full scan
	nd.R = pim.NewRouter(cfg, nodeRouting{nd}, func(max time.Duration) time.Duration {
		if max <= 0 {
			return 0
		}
		return time.Duration(n.rng.Int64N(int64(max)))
	})
	if nd.Loopback.IsValid() {
		nd.R.AddLocalAddress(nd.Loopback)
	}
	n.Nodes[name] = nd
	return nd
}

// Connect attaches a router to a LAN as interface iface and starts PIM on it.
func (n *Net) Connect(nd *Node, iface string, l *LAN, ifc pim.IfConfig) *Port {
	n.spfCache = nil
	p := &Port{Node: nd, Iface: iface, Addr: l.addr(), LAN: l}
	nd.Ports[iface] = p
	l.Ports = append(l.Ports, p)
	n.apply(nd, nd.R.AddInterface(n.Now, iface, ifc, p.Addr, nil, n.rng.Uint32()))
	return p
}

// AddHost puts a host on a LAN and returns its address.
func (n *Net) AddHost(l *LAN) netip.Addr {
	a := l.addr()
	l.Hosts = append(l.Hosts, a)
	return a
}

// Join makes local receivers on a LAN want group g (ASM, or the include
// sources for SSM): every router on the LAN hears it, as from IGMP.
func (n *Net) Join(l *LAN, g netip.Addr, asm bool, include ...netip.Addr) {
	for _, p := range l.Ports {
		n.apply(p.Node, p.Node.R.SetMembership(n.Now, p.Iface, g, asm, include, nil))
	}
	n.settle()
}

// Leave clears membership for g on a LAN.
func (n *Net) Leave(l *LAN, g netip.Addr) {
	for _, p := range l.Ports {
		n.apply(p.Node, p.Node.R.SetMembership(n.Now, p.Iface, g, false, nil, nil))
	}
	n.settle()
}

// SetLAN brings a LAN up or down; every router re-reads routing at once,
// as netlink route notifications make the daemon do.
func (n *Net) SetLAN(l *LAN, up bool) {
	l.Up = up
	n.spfCache = nil
	for _, name := range n.nodeNames() {
		nd := n.Nodes[name]
		n.apply(nd, nd.R.RPFChanged(n.Now))
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

// apply queues a router's sends and refreshes its forwarding cache.
func (n *Net) apply(nd *Node, res pim.Result) {
	for _, s := range res.Sends {
		b := s.Msg.Marshal()
		n.Sent++
		if n.Trace != nil {
			n.Trace(nd, s.Iface, s.Msg, len(b))
		}
		if s.Iface != "" {
			p := nd.Ports[s.Iface]
			if p == nil {
				continue
			}
			if !p.LAN.Up {
				n.Dropped++
				continue
			}
			for _, q := range p.LAN.Ports {
				if q != p {
					n.inbox = append(n.inbox, delivery{from: nd, to: q, src: p.Addr, dst: s.Dst, payload: b})
				}
			}
			continue
		}
		n.inbox = append(n.inbox, delivery{from: nd, src: nd.sourceToward(s.Dst), dst: s.Dst, payload: b})
	}
	for k := range nd.flows {
		nd.refresh(k)
	}
}

func (nd *Node) refresh(k pim.SG) {
	iif, oifs, ok := nd.R.Route(k.S, k.G)
	if !ok {
		delete(nd.flows, k)
		return
	}
	nd.flows[k] = route{iif, oifs}
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

// settle delivers control messages until none are left (zero link delay).
func (n *Net) settle() {
	for rounds := 0; len(n.inbox) > 0; rounds++ {
		if rounds > 100000 {
			panic("sim: control plane does not settle")
		}
		d := n.inbox[0]
		n.inbox = n.inbox[1:]
		m, err := wire.Parse(d.payload)
		if err != nil {
			panic(fmt.Sprintf("sim: %s sent a message that does not parse: %v", d.from.Name, err))
		}
		if d.to != nil {
			if !d.to.LAN.Up {
				n.Dropped++
				continue
			}
			n.apply(d.to.Node, d.to.Node.R.Receive(n.Now, d.to.Iface, d.src, d.dst, m))
			continue
		}
		owner := n.owner(d.dst)
		if owner == nil || !n.reachable(d.from, owner) {
			n.Dropped++
			continue
		}
		if reg, ok := m.(*wire.Register); ok && !reg.Null {
			// The kernel at the RP decapsulates and forwards the inner
			// packet before the daemon reads its copy of the Register.
			s, g := reg.InnerSourceGroup()
			n.forward(owner, pim.RegisterVIF, s, g, 0)
		}
		n.apply(owner, owner.R.Receive(n.Now, "", d.src, d.dst, m))
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

// Run advances virtual time by d, firing router timers in order.
func (n *Net) Run(d time.Duration) {
	end := n.Now.Add(d)
	for {
		n.settle()
		var next time.Time
		for _, nd := range n.Nodes {
			t := nd.R.NextDeadline()
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		if next.IsZero() || next.After(end) {
			break
		}
		if next.After(n.Now) {
			n.Now = next
		}
		for _, name := range n.nodeNames() {
			nd := n.Nodes[name]
			if t := nd.R.NextDeadline(); !t.IsZero() && !t.After(n.Now) {
				n.apply(nd, nd.R.Advance(n.Now))
			}
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

// forward is one router's data plane for a packet that arrived on iif.
func (n *Net) forward(nd *Node, iif string, s, g netip.Addr, hops int) {
	if hops > 64 {
		panic("sim: forwarding loop")
	}
	k := pim.SG{S: s, G: g}
	rt, ok := nd.flows[k]
	if !ok {
		n.apply(nd, nd.R.DataArrived(n.Now, s, g, iif, pim.DataNoCache))
		nd.refresh(k)
		if rt, ok = nd.flows[k]; !ok {
			return
		}
	}
	if rt.iif != iif {
		n.apply(nd, nd.R.DataArrived(n.Now, s, g, iif, pim.DataWrongIf))
		nd.refresh(k)
		return // the kernel drops a packet that came in the wrong interface
	}
	nd.counts[k]++
	nd.R.Traffic(n.Now, s, g, nd.counts[k], nd.counts[k]*PacketSize)
	n.apply(nd, nd.R.DataArrived(n.Now, s, g, iif, pim.DataActive))
	nd.refresh(k)
	rt = nd.flows[k]
	if rt.iif != iif {
		return
	}
	for _, o := range rt.oifs {
		if o == pim.RegisterVIF {
			pkt := wire.NullRegisterPacket(s, g) // the payload does not matter here
			pkt[9] = 17
			if send, ok := nd.R.RegisterPacket(pkt); ok {
				n.apply(nd, pim.Result{Sends: []pim.Send{send}})
			}
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

// HostJoin makes one host on a LAN a receiver of g (ASM or with sources).
func (n *Net) HostJoin(l *LAN, h, g netip.Addr, include ...netip.Addr) {
	if n.members == nil {
		n.members = map[memberKey]map[netip.Addr]bool{}
	}
	k := memberKey{l.Name, g}
	if n.members[k] == nil {
		n.members[k] = map[netip.Addr]bool{}
	}
	n.members[k][h] = true
	n.Join(l, g, len(include) == 0, include...)
}

// HostLeave removes a host's membership; the LAN's routers hear a leave
// when it was the last.
func (n *Net) HostLeave(l *LAN, h, g netip.Addr) {
	k := memberKey{l.Name, g}
	delete(n.members[k], h)
	if len(n.members[k]) == 0 {
		n.Leave(l, g)
	}
}

// --- unicast routing -----------------------------------------------------

type nodeRouting struct{ nd *Node }

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
				return pim.RPF{Iface: p.Iface, Neighbor: dst, Metric: uint32(p.LAN.Cost)}, true
			}
			return pim.RPF{Iface: p.Iface, Metric: uint32(p.LAN.Cost)}, true
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
	return pim.RPF{Iface: best.out.Iface, Neighbor: best.via.Addr, Metric: uint32(bestCost)}, true
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
