package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"overcast/internal/api"
	"overcast/internal/config"
	"overcast/internal/dataplane"
	"overcast/internal/igmp"
	"overcast/internal/mrib"
	"overcast/internal/overlay"
	wire "overcast/internal/packet/overlay"
)

// overlayComp runs the overlay (docs/OVERLAY.md): the core's control
// datagrams go over Env.Overlay; this node's interest is the union of its
// interfaces' IGMP membership, flooded to every peer; a flow that entered
// here (from a local interface, or from this host itself through the
// overlay device) is replicated to the peers whose interest admits it
// (mrib.Entry.Peers, output the overlay device). A flow that came from
// the overlay is never sent into it again.
type overlayComp struct {
	d     *Daemon
	n     *overlay.Node
	io    dataplane.Overlay
	dev   string
	mtu   int
	dirty map[netip.Addr]bool // groups whose local membership changed
	store *peerStore          // nil: no store
	cfg   *config.Overlay     // the running settings (reload compares with them)

	remote map[netip.Addr]bool // sources seen arriving from peers (PIM's RPF to them is the device)
}

func newOverlay(d *Daemon, now time.Time) (*overlayComp, error) {
	o := d.cfg.Overlay
	if d.env.Overlay == nil {
		return nil, errors.New("overlay: this daemon has no overlay data path")
	}
	io, err := d.env.Overlay(dataplane.OverlayConfig{Interface: o.Interface, MTU: o.MTU, Local: o.Local, LocalRoute: o.OverlayLocalRoute()}, d.overlaySink())
	if err != nil {
		return nil, fmt.Errorf("overlay %s on %s: %w", o.Interface, o.Local, err)
	}
	c := &overlayComp{d: d, io: io, dev: o.Interface, mtu: o.MTU, dirty: map[netip.Addr]bool{}, cfg: o, remote: map[netip.Addr]bool{},
		n: overlay.New(overlay.Config{Local: o.Local, Key: o.KeyBytes, HelloInterval: o.HelloInterval, HoldTime: o.HoldTime}, now)}
	for _, p := range o.PeerAddr {
		c.apply(now, c.n.AddPeer(p, overlay.Static, now))
	}
	c.syncPeers()
	if o.Etcd != nil {
		if d.env.PeerStore == nil {
			return nil, errors.New("overlay etcd: this daemon has no store client")
		}
		c.store = newPeerStore(d, o)
	}
	return c, nil
}

func (c *overlayComp) name() string { return "overlay" }

// ifaceUp and ifaceDown: the overlay device is an interface like the
// others (IGMP runs on it for this host's own receivers).
func (c *overlayComp) ifaceUp(*iface, time.Time) error { return nil }
func (c *overlayComp) ifaceDown(*iface, time.Time)     {}

func (c *overlayComp) nextDeadline() time.Time { return c.n.NextDeadline() }

func (c *overlayComp) advance(now time.Time) { c.apply(now, c.n.Advance(now)) }

// membership notes that IGMP membership of g changed somewhere here.
func (c *overlayComp) membership(g netip.Addr) {
	if !g.IsLinkLocalMulticast() {
		c.dirty[g] = true
	}
}

// endBurst recomputes this node's interest in the groups whose membership
// changed and sends the changes to the peers, one delta for the burst.
func (c *overlayComp) endBurst(now time.Time) {
	if len(c.dirty) == 0 {
		return
	}
	for g := range c.dirty {
		c.n.SetInterest(g, c.localFilter(g, now))
	}
	clear(c.dirty)
	c.apply(now, c.n.Flush(now))
}

// localFilter is what this node wants of g from the overlay: the union
// of every interface's IGMP membership and, at a gateway to a PIM domain,
// of the joins PIM neighbours sent it (never the overlay's own interest,
// which PIM sees as membership on the overlay device).
func (c *overlayComp) localFilter(g netip.Addr, now time.Time) overlay.Filter {
	var f overlay.Filter
	if p := c.d.pim; p != nil {
		asm, srcs := p.r.Downstream(g, c.dev)
		if asm {
			f = overlay.Filter{Mode: wire.Exclude}
		} else if len(srcs) > 0 {
			f = overlay.Filter{Mode: wire.Include, Sources: srcs}
		}
	}
	for _, ii := range c.d.igmp.ifs {
		v, ok := ii.m.Group(g, now)
		if !ok {
			continue
		}
		x := overlay.Filter{Mode: wire.Include}
		if v.Mode == igmp.Exclude {
			x.Mode = wire.Exclude
		}
		for _, s := range v.Sources {
			if s.Forward == (x.Mode == wire.Include) {
				x.Sources = append(x.Sources, s.Source)
			}
		}
		f = overlay.Union(f, x)
	}
	return f
}

// apply carries out a core result: datagrams out, routes of changed
// groups re-derived, peer changes logged.
func (c *overlayComp) apply(now time.Time, r overlay.Result) {
	for _, dg := range r.Send {
		if err := c.io.SendControl(dg.To, dg.B); err != nil {
			c.d.log.Debug("overlay send", "peer", dg.To, "err", err)
		}
	}
	for _, g := range r.Groups {
		c.d.touch(g)
		if p := c.d.pim; p != nil {
			if x := c.d.ifs[c.dev]; x != nil {
				p.pushMembership(x, g, now)
			}
		}
	}
	if len(r.Events) > 0 {
		c.syncPeers()
	}
	for _, e := range r.Events {
		if e.Up {
			c.d.log.Info("overlay peer up", "peer", e.Peer)
		} else {
			c.d.log.Warn("overlay peer down", "peer", e.Peer, "reason", e.Reason)
		}
	}
}

// syncPeers tells the data path which peers are, and which are up.
func (c *overlayComp) syncPeers() { c.io.SetPeers(c.n.PeerAddrs(), c.n.UpPeers()) }

// control handles a control datagram from the underlay.
func (c *overlayComp) control(now time.Time, from netip.AddrPort, b []byte) {
	c.apply(now, c.n.Receive(from, b, now))
}

// addPeer and delPeer change the peer set at run time.
func (c *overlayComp) addPeer(now time.Time, p netip.AddrPort, o overlay.Origin) {
	had := c.n.HasPeer(p)
	c.apply(now, c.n.AddPeer(p, o, now))
	if !had && c.n.HasPeer(p) {
		c.syncPeers()
		c.d.log.Info("overlay peer added", "peer", p, "origin", o)
	}
}

func (c *overlayComp) delPeer(now time.Time, p netip.AddrPort, o overlay.Origin) {
	if !c.n.HasPeer(p) {
		return
	}
	c.apply(now, c.n.DelPeer(p, o))
	if !c.n.HasPeer(p) {
		c.syncPeers()
		c.d.log.Info("overlay peer removed", "peer", p, "origin", o)
	}
}

// noteSource remembers a source whose packets came from a peer: PIM's
// RPF toward it is the overlay device (rpfTables).
func (c *overlayComp) noteSource(up dataplane.Upcall) {
	if up.Iface != c.dev || c.d.isLocal(up.Source) || !up.Source.IsValid() {
		return
	}
	if _, ok := c.remote[up.Source]; !ok && len(c.remote) >= maxRemoteSources {
		return
	}
	c.remote[up.Source] = true
}

// remoteSource says whether a came from the overlay recently.
func (c *overlayComp) remoteSource(a netip.Addr) bool {
	return c.remote[a]
}

// expireSources forgets sources with no flow left.
func (c *overlayComp) expireSources() {
	live := map[netip.Addr]bool{}
	for k, f := range c.d.flows {
		if f.iif == c.dev {
			live[k.Source] = true
		}
	}
	for a := range c.remote {
		if !live[a] {
			delete(c.remote, a)
		}
	}
}

// maxRemoteSources bounds the sources remembered from the overlay.
const maxRemoteSources = 100_000

// route adds the overlay to a flow's route: the peers that want it, and
// the overlay device as an output when the flow entered elsewhere. A flow
// that came in from the overlay (its source is not this host) stays out.
func (c *overlayComp) route(f *flow, e *mrib.Entry) {
	if f.iif == c.dev && !c.d.isLocal(f.key.Source) {
		return
	}
	peers := c.n.Receivers(f.key.Source, f.key.Group)
	if len(peers) == 0 {
		return
	}
	e.Peers = peers
	if f.iif != c.dev {
		e.Add(c.dev, mrib.Overlay)
	}
	e.Flags &^= mrib.Pruned
}

func (c *overlayComp) checkReload(next *config.Config) error {
	o, n := c.cfg, next.Overlay
	if n == nil {
		return next.Errorf(next.Line(), "the overlay runs: removing the overlay section needs a restart (systemctl restart overcast)")
	}
	if o.Local != n.Local || o.Interface != n.Interface || o.MTU != n.MTU || string(o.KeyBytes) != string(n.KeyBytes) ||
		o.OverlayLocalRoute() != n.OverlayLocalRoute() || (o.Etcd == nil) != (n.Etcd == nil) {
		return next.Errorf(next.Line("overlay"), "overlay address, port, interface, mtu, key, local-route and etcd are set at start: restart to change them (peers and timers reload)")
	}
	return nil
}

// reload applies the static peer list as a diff, and the timers.
func (c *overlayComp) reload(next *config.Config, now time.Time) {
	o, n := c.cfg, next.Overlay
	if n == nil {
		return
	}
	c.cfg = n
	c.n.SetTimers(n.HelloInterval, n.HoldTime)
	for _, p := range o.PeerAddr {
		if !slices.Contains(n.PeerAddr, p) {
			c.delPeer(now, p, overlay.Static)
		}
	}
	for _, p := range n.PeerAddr {
		c.addPeer(now, p, overlay.Static)
	}
}

func (c *overlayComp) stop() {
	if c.store != nil {
		c.store.stop()
	}
	c.io.Close()
}

func (c *overlayComp) views(add func(string, viewFunc)) {
	add(api.PathOverlay, func(now time.Time, _ string) (any, error) {
		st := c.io.Stats()
		out := api.Overlay{Local: c.n.Config().Local.String(), Interface: c.dev, MTU: c.mtu, Version: c.n.Version(),
			LocalGroups: []string{},
			Stats: api.OverlayStats{NotPeer: st.NotPeer, ControlNoPeer: c.n.UnknownPeer, Malformed: st.Malformed,
				Looped: st.Looped, NoRoute: st.NoRoute, TooBig: st.TooBig}}
		for _, p := range c.n.Peers() {
			out.Peers++
			if p.Up {
				out.PeersUp++
			}
		}
		for _, g := range c.n.LocalGroups() {
			out.LocalGroups = append(out.LocalGroups, g.String())
		}
		for e := range c.d.rib.All() {
			if len(e.Peers) > 0 {
				out.Routes++
			}
		}
		if c.store != nil {
			out.Store, out.StoreState = c.store.describe()
		}
		return out, nil
	})
	add(api.PathOverlayPeers, func(now time.Time, _ string) (any, error) {
		counters := map[netip.AddrPort]dataplane.PeerCounters{}
		c.io.Counters(func(a netip.AddrPort, pc dataplane.PeerCounters) { counters[a] = pc })
		out := []api.OverlayPeer{}
		for _, p := range c.n.Peers() {
			pc := counters[p.Addr]
			row := api.OverlayPeer{Peer: p.Addr.String(), State: "down", Origin: p.Origins.String(), RTTms: api.Millis(float64(p.RTT.Microseconds()) / 1000),
				Groups: p.Groups, Synced: p.Synced, PacketsIn: pc.PacketsIn, BytesIn: pc.BytesIn, PacketsOut: pc.PacketsOut,
				BytesOut: pc.BytesOut, Drops: pc.SendErrors, AuthFailed: p.Stats.AuthFailed, Replayed: p.Stats.Replayed,
				Malformed: p.Stats.Malformed, OverLimit: p.Stats.OverLimit, HellosIn: p.Stats.HellosIn, HellosOut: p.Stats.HellosOut,
				DumpsIn: p.Stats.DumpsIn, DumpsOut: p.Stats.DumpsOut}
			if p.Up {
				row.State, row.Uptime = "up", api.Duration(now.Sub(p.UpSince))
			}
			if !p.Heard.IsZero() {
				row.LastHeard = api.Duration(now.Sub(p.Heard))
			}
			out = append(out, row)
		}
		return out, nil
	})
	add(api.PathOverlayRoutes, func(now time.Time, _ string) (any, error) {
		out := []api.OverlayRoute{}
		for e := range c.d.rib.All() {
			if len(e.Peers) == 0 {
				continue
			}
			row := api.OverlayRoute{Source: e.Source.String(), Group: e.Group.String(), IIF: e.IIF}
			for _, p := range e.Peers {
				f, _ := c.n.Why(p, e.Group)
				rp := api.OverlayRoutePeer{Peer: p.String(), Mode: f.Mode.String(), Sources: []string{}}
				for _, s := range f.Sources {
					rp.Sources = append(rp.Sources, s.String())
				}
				row.Peers = append(row.Peers, rp)
			}
			out = append(out, row)
		}
		slices.SortFunc(out, func(a, b api.OverlayRoute) int {
			if x := netip.MustParseAddr(a.Group).Compare(netip.MustParseAddr(b.Group)); x != 0 {
				return x
			}
			return netip.MustParseAddr(a.Source).Compare(netip.MustParseAddr(b.Source))
		})
		return out, nil
	})
	peerArg := func(arg string) (netip.AddrPort, error) {
		p, err := config.ParsePeer(arg, int(c.n.Config().Local.Port()))
		if err != nil {
			return p, api.BadRequest{Err: fmt.Errorf("overlay peer %v", err)}
		}
		if p == c.n.Config().Local {
			return p, api.BadRequest{Err: fmt.Errorf("overlay peer %s is this node itself", p)}
		}
		return p, nil
	}
	add(api.PathOverlayPeerAdd, func(now time.Time, arg string) (any, error) {
		p, err := peerArg(arg)
		if err != nil {
			return nil, err
		}
		c.addPeer(now, p, overlay.API)
		return api.OverlayPeerChange{Peer: p.String(), Action: "added", Peers: len(c.n.PeerAddrs())}, nil
	})
	add(api.PathOverlayPeerDel, func(now time.Time, arg string) (any, error) {
		p, err := peerArg(arg)
		if err != nil {
			return nil, err
		}
		if !c.n.HasPeer(p) {
			return nil, api.BadRequest{Err: fmt.Errorf("%s is not an overlay peer (overcast show overlay peers lists them)", p)}
		}
		c.delPeer(now, p, overlay.API)
		what := "removed"
		if c.n.HasPeer(p) {
			what = "kept: it is also in the config or the store"
		}
		return api.OverlayPeerChange{Peer: p.String(), Action: what, Peers: len(c.n.PeerAddrs())}, nil
	})
}
