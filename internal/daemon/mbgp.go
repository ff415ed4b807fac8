package daemon

import (
	"errors"
	"net/netip"
	"slices"
	"time"

	"overcast/internal/api"
	"overcast/internal/config"
	"overcast/internal/mbgp"
	"overcast/internal/pim"
)

// mbgpComp runs the MBGP speaker (Env.MBGP): its best paths in the IPv4
// multicast family decide RPF ahead of the unicast table (rpfTables), and
// feed MSDP's peer-RPF rules ii to iv.
type mbgpComp struct {
	d *Daemon
	s mbgp.Speaker
}

func mbgpConfig(c *config.Config) mbgp.Config {
	b := c.BGP
	out := mbgp.Config{AS: b.AS, Port: b.Port}
	out.RouterID, _ = netip.ParseAddr(b.RouterID)
	for _, a := range b.Listen {
		x, _ := netip.ParseAddr(a)
		out.Listen = append(out.Listen, x)
	}
	for _, n := range b.Neighbors {
		x := mbgp.Neighbor{AS: n.RemoteAS, Password: n.Password, Multihop: n.Multihop}
		x.Address, _ = netip.ParseAddr(n.Address)
		if n.Source != "" {
			x.Local, _ = netip.ParseAddr(n.Source)
		}
		out.Neighbors = append(out.Neighbors, x)
	}
	for _, s := range b.MulticastNetworks {
		p, _ := config.ParsePrefixOrAddr(s)
		out.Networks = append(out.Networks, p)
	}
	return out
}

func newMBGP(d *Daemon) (*mbgpComp, error) {
	if d.env.MBGP == nil {
		return nil, errors.New("bgp: this daemon has no BGP speaker")
	}
	s := d.env.MBGP(func() { d.post(func() { d.RoutingChanged(time.Now()) }) })
	cfg := mbgpConfig(d.cfg)
	if err := s.Start(cfg); err != nil {
		return nil, d.cfg.Errorf(d.cfg.Line("bgp"), "%v (is another BGP speaker listening on port 179?)", err)
	}
	d.log.Info("bgp started", "as", cfg.AS, "router_id", cfg.RouterID, "neighbors", len(cfg.Neighbors), "networks", len(cfg.Networks))
	return &mbgpComp{d: d, s: s}, nil
}

func (m *mbgpComp) name() string                          { return "mbgp" }
func (m *mbgpComp) ifaceUp(x *iface, now time.Time) error { return nil }
func (m *mbgpComp) ifaceDown(x *iface, now time.Time)     {}
func (m *mbgpComp) nextDeadline() time.Time               { return time.Time{} }
func (m *mbgpComp) advance(now time.Time)                 {}
func (m *mbgpComp) endBurst(now time.Time)                {}

func (m *mbgpComp) checkReload(next *config.Config) error {
	if next.BGP == nil {
		return next.Errorf(next.Line("interfaces"), "BGP is on in the running configuration and off in this one: turning it off needs a restart, or keep the bgp: section")
	}
	cur := m.d.cfg.BGP
	if next.BGP.AS != cur.AS || next.BGP.RouterID != cur.RouterID || next.BGP.Port != cur.Port || !slices.Equal(next.BGP.Listen, cur.Listen) {
		return next.Errorf(next.Line("bgp"), "bgp as, router-id, port and listen are set at start: changing them needs a restart (neighbors and multicast-networks reload)")
	}
	return nil
}

func (m *mbgpComp) reload(next *config.Config, now time.Time) {
	if err := m.s.Reconfigure(mbgpConfig(next)); err != nil {
		m.d.log.Warn("bgp reload", "err", err)
	}
}

func (m *mbgpComp) stop() { m.s.Stop() }

// rpfTables is the daemon's RPF: the MBGP table's longest match when it
// has one (its next hop resolved through the unicast table), else the
// unicast route.
type rpfTables struct{ d *Daemon }

func (r rpfTables) Lookup(a netip.Addr) (pim.RPF, bool) {
	if o := r.d.ovl; o != nil && o.remoteSource(a) {
		// A source whose packets come from an overlay peer is reached
		// through the overlay device, as if directly connected there.
		return pim.RPF{Iface: o.dev, Protocol: "overlay", Table: "overlay"}, true
	}
	if m := r.d.mbgp; m != nil {
		if rt, ok := m.s.Lookup(a); ok && !rt.Local {
			if x, ok := r.resolve(rt); ok {
				return x, true
			}
		}
	}
	x, ok := r.d.env.Routing.Lookup(a)
	if ok && x.Table == "" {
		x.Table = "unicast"
	}
	return x, ok
}

// resolve finds the interface and neighbour of an MBGP next hop.
func (r rpfTables) resolve(rt mbgp.Route) (pim.RPF, bool) {
	if !rt.NextHop.IsValid() {
		return pim.RPF{}, false
	}
	u, ok := r.d.env.Routing.Lookup(rt.NextHop)
	if !ok || u.Iface == "" {
		return pim.RPF{}, false
	}
	nbr := u.Neighbor
	if !nbr.IsValid() {
		nbr = rt.NextHop // on a connected subnet: the next hop is the neighbour
	}
	pref := uint32(200) // iBGP
	if rt.External {
		pref = 20
	}
	return pim.RPF{Iface: u.Iface, Neighbor: nbr, Preference: pref, Metric: rt.MED, Protocol: "bgp", Table: "mbgp", Prefix: rt.Prefix}, true
}

func (r rpfTables) Invalidate() { r.d.env.Routing.Invalidate() }

// --- Views -----------------------------------------------------------------

func (m *mbgpComp) views(add func(string, viewFunc)) {
	add(api.PathBGPMulticast, m.routesView)
	add(api.PathBGPSummary, m.summaryView)
}

func (m *mbgpComp) routesView(now time.Time, _ string) (any, error) {
	out := []api.BGPRoute{}
	for _, r := range m.s.Routes() {
		row := api.BGPRoute{Prefix: r.Prefix.String(), PeerAS: r.PeerAS, External: r.External, Local: r.Local, MED: r.MED, ASPath: r.ASPath}
		if r.NextHop.IsValid() {
			row.NextHop = r.NextHop.String()
		}
		if r.Peer.IsValid() {
			row.Peer = r.Peer.String()
		}
		out = append(out, row)
	}
	return out, nil
}

func (m *mbgpComp) summaryView(now time.Time, _ string) (any, error) {
	out := api.BGPSummary{AS: m.d.cfg.BGP.AS, RouterID: m.d.cfg.BGP.RouterID, Neighbors: []api.BGPNeighbor{}}
	for _, n := range m.s.Neighbors() {
		row := api.BGPNeighbor{Address: n.Address.String(), AS: n.AS, State: n.State, Received: n.Received, Accepted: n.Accepted, MD5: n.Password != ""}
		if !n.Since.IsZero() {
			row.Uptime = api.Duration(now.Sub(n.Since))
		}
		out.Neighbors = append(out.Neighbors, row)
	}
	out.Routes = len(m.s.Routes())
	return out, nil
}
