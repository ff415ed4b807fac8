package sim

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"overcast/internal/api"
	"overcast/internal/config"
	"overcast/internal/daemon"
	"overcast/internal/dataplane"
	"overcast/internal/dataplane/fake"
	igmpwire "overcast/internal/packet/igmp"
	"overcast/internal/packet/ip4"
	"overcast/internal/pim"
)

// OverlayNet is many overlay nodes in one process: each the real daemon
// (IGMP and overlay components) on an in-memory forwarder, with one LAN
// (lan0) of hosts and the overlay device (ovl0); an in-memory underlay
// (fake.OverlayHub) carries the signed control datagrams; data is
// forwarded by each node's forwarder table and replication list.
type OverlayNet struct {
	Now   time.Time
	Hub   *fake.OverlayHub
	Nodes []*OverlayNode
	Step  time.Duration // timer resolution of Run (10 ms)
	tick  time.Time
}

// OverlayNode is one node.
type OverlayNode struct {
	Index    int
	Under    netip.AddrPort // underlay address and port
	LANAddr  netip.Addr     // the node's lan0 address
	Host     netip.Addr     // a receiver on lan0
	Source   netip.Addr     // a sender on lan0
	D        *daemon.Daemon
	FW       *fake.Forwarder
	IO       *fake.PacketIO
	Received map[dataplane.SG]int // packets delivered onto lan0 to a joined host
	joined   map[netip.Addr]bool
}

// NewOverlayNet makes n nodes, each listing every other as a peer.
func NewOverlayNet(t0 time.Time, n int) (*OverlayNet, error) {
	o := &OverlayNet{Now: t0, Hub: fake.NewOverlayHub(), Step: 10 * time.Millisecond, tick: t0.Add(time.Second)}
	for i := range n {
		nd := &OverlayNode{Index: i, Under: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 100, byte(i / 200), byte(i%200 + 1)}), 6790),
			LANAddr: netip.AddrFrom4([4]byte{10, byte(1 + i/200), byte(i % 200), 1}),
			Host:    netip.AddrFrom4([4]byte{10, byte(1 + i/200), byte(i % 200), 10}),
			Source:  netip.AddrFrom4([4]byte{10, byte(1 + i/200), byte(i % 200), 20}),
			FW:      fake.New(), IO: fake.NewPacketIO(), Received: map[dataplane.SG]int{}, joined: map[netip.Addr]bool{}}
		o.Nodes = append(o.Nodes, nd)
	}
	for _, nd := range o.Nodes {
		var peers []string
		for _, p := range o.Nodes {
			peers = append(peers, p.Under.Addr().String())
		}
		yaml := fmt.Sprintf("api-socket: /nonexistent/overcast-ovl-%d.sock\ninterfaces:\n  - name: lan0\n    igmp: {version: 3, explicit-tracking: true}\n"+
			"overlay:\n  address: %s\n  key: simulated-overlay-key\n  peers: [%s]\n", nd.Index, nd.Under.Addr(), strings.Join(peers, ", "))
		cfg, err := config.Parse(fmt.Sprintf("node%d.yaml", nd.Index), []byte(yaml), func(name string) bool { return name == "lan0" })
		if err != nil {
			return nil, err
		}
		nd := nd
		env := daemon.Env{Forwarder: nd.FW, IO: nd.IO, Links: overlayLinks{nd}, Routing: noRoutes{},
			Overlay: o.Hub.Open, Now: func() time.Time { return o.Now }}
		nd.D = daemon.NewFromConfig(cfg.APISocket, cfg, env, slog.New(slog.DiscardHandler))
		if err := nd.D.Start(o.Now); err != nil {
			return nil, err
		}
	}
	return o, nil
}

type overlayLinks struct{ nd *OverlayNode }

func (l overlayLinks) Link(name string) (dataplane.Link, error) {
	switch name {
	case "lan0":
		return dataplane.Link{Index: 1, Addr: l.nd.LANAddr, Multicast: true}, nil
	case "ovl0":
		return dataplane.Link{Index: 2, Addr: l.nd.Under.Addr(), Multicast: true}, nil
	}
	return dataplane.Link{}, fmt.Errorf("no interface %s", name)
}

func (l overlayLinks) LocalAddrs() []netip.Addr { return []netip.Addr{l.nd.LANAddr, l.nd.Under.Addr()} }

type noRoutes struct{}

func (noRoutes) Lookup(netip.Addr) (pim.RPF, bool) { return pim.RPF{}, false }
func (noRoutes) Invalidate()                       {}

// Run advances time by d in steps: control datagrams are delivered,
// timers run, once a second the daemons tick.
func (o *OverlayNet) Run(d time.Duration) {
	end := o.Now.Add(d)
	for !o.Now.After(end) {
		for range 16 {
			if o.Hub.Queued() == 0 {
				break
			}
			o.Hub.Deliver()
			for _, nd := range o.Nodes {
				nd.D.EndBurst(o.Now)
			}
		}
		for _, nd := range o.Nodes {
			if t := nd.D.NextDeadline(); !t.IsZero() && !t.After(o.Now) {
				nd.D.Advance(o.Now)
				nd.D.EndBurst(o.Now)
			}
			nd.IO.Take() // queries and the like: nobody on lan0 needs them here
		}
		if !o.Now.Before(o.tick) {
			for _, nd := range o.Nodes {
				nd.D.Tick(o.Now)
			}
			o.tick = o.tick.Add(time.Second)
		}
		o.Now = o.Now.Add(o.Step)
	}
}

// Join makes the host on a node's lan0 report g (SSM with sources, or
// ASM without).
func (o *OverlayNet) Join(nd *OverlayNode, g netip.Addr, sources ...netip.Addr) {
	rec := igmpwire.GroupRecord{Type: igmpwire.ChangeToExclude, Group: g}
	if len(sources) > 0 {
		rec = igmpwire.GroupRecord{Type: igmpwire.AllowNewSources, Group: g, Sources: sources}
	}
	o.report(nd, rec)
	nd.joined[g] = true
}

// Leave makes the host leave g.
func (o *OverlayNet) Leave(nd *OverlayNode, g netip.Addr) {
	o.report(nd, igmpwire.GroupRecord{Type: igmpwire.ChangeToInclude, Group: g})
	delete(nd.joined, g)
}

func (o *OverlayNet) report(nd *OverlayNode, rec igmpwire.GroupRecord) {
	hd := ip4.Header{TOS: 0xc0, TTL: 1, Protocol: ip4.ProtoIGMP, Src: nd.Host, Dst: allReportsV3, Options: ip4.OptRouterAlert}
	nd.D.Packet(o.Now, "lan0", dataplane.IGMP, hd.Marshal((&igmpwire.V3Report{Records: []igmpwire.GroupRecord{rec}}).Marshal()))
	nd.D.EndBurst(o.Now)
}

// Send is one packet of (from's source, g) on from's lan0; it returns
// the nodes whose lan0 it was delivered onto (duplicates counted).
func (o *OverlayNet) Send(from *OverlayNode, g netip.Addr) map[int]int {
	got := map[int]int{}
	k := dataplane.SG{Source: from.Source, Group: g}
	_, peers := o.forward(from, k, "lan0", got)
	for _, p := range peers {
		to := o.byAddr(p)
		if to == nil || !o.Hub.Accepts(from.Under, p, PacketSize) {
			continue
		}
		// From the overlay: the receiving node's own route; it never
		// sends into the overlay again (checked).
		if _, again := o.forward(to, k, "ovl0", got); len(again) > 0 {
			panic(fmt.Sprintf("sim: node %d replicated %v from the overlay back into it", to.Index, k))
		}
	}
	return got
}

func (o *OverlayNet) forward(nd *OverlayNode, k dataplane.SG, iif string, got map[int]int) ([]string, []netip.AddrPort) {
	out, peers, up := nd.FW.Forward(k, iif, PacketSize)
	if up != nil {
		nd.D.Upcall(o.Now, *up)
		nd.D.EndBurst(o.Now)
		if out, peers, up = nd.FW.Forward(k, iif, PacketSize); up != nil {
			return nil, nil
		}
	}
	for _, x := range out {
		if x == "lan0" && nd.joined[k.Group] {
			nd.Received[k]++
			got[nd.Index]++
		}
	}
	return out, peers
}

func (o *OverlayNet) byAddr(a netip.AddrPort) *OverlayNode {
	for _, nd := range o.Nodes {
		if nd.Under == a {
			return nd
		}
	}
	return nil
}

// overlayUp reads the peers that are up from a `show overlay` answer.
func overlayUp(v any) int {
	if o, ok := v.(api.Overlay); ok {
		return o.PeersUp
	}
	return -1
}
