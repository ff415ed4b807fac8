package daemon

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"overcast/internal/api"
	"overcast/internal/config"
	"overcast/internal/dataplane"
	"overcast/internal/igmp"
	"overcast/internal/mrib"
	"overcast/internal/packet/ip4"
)

// igmpComp is the IGMP component: the router side of IGMP on every
// interface (querier, membership), and, without PIM, the routes
// themselves (a flow goes where its members are).
type igmpComp struct {
	d   *Daemon
	ifs map[string]*igmpIface
}

type igmpIface struct {
	x *iface
	m *igmp.Interface
}

func (c *igmpComp) name() string { return "igmp" }

func igmpConfig(ic config.Interface) igmp.Config {
	g := ic.IGMP
	cfg := igmp.Config{
		Version: g.Version, Robustness: g.Robustness, QueryInterval: g.QueryInterval,
		QueryResponseInterval: g.QueryResponseInterval, LastMemberQueryInterval: g.LastMemberQueryInterval,
		LastMemberQueryCount: g.LastMemberQueryCount, ExplicitTracking: g.ExplicitTracking,
		NoQuerier: g.Querier != nil && !*g.Querier, MaxGroups: g.MaxGroups, MaxSources: g.MaxSources, MaxGroupsPerHost: g.MaxGroupsPerHost,
	}
	for _, s := range g.StaticGroups {
		cfg.StaticGroups = append(cfg.StaticGroups, netip.MustParseAddr(s))
	}
	return cfg
}

func (c *igmpComp) ifaceUp(x *iface, now time.Time) error {
	if err := c.d.env.IO.Listen(x.name, x.ifindex, dataplane.IGMP); err != nil {
		return err
	}
	m, out := igmp.NewInterface(igmpConfig(x.cfg), x.addr, now)
	ii := &igmpIface{x: x, m: m}
	c.ifs[x.name] = ii
	c.d.log.Info("igmp up", "interface", x.name, "igmp_version", m.Config().Version)
	c.handle(ii, out, now)
	return nil
}

func (c *igmpComp) ifaceDown(x *iface, now time.Time) {
	if c.ifs[x.name] == nil {
		return
	}
	delete(c.ifs, x.name)
	if err := c.d.env.IO.Unlisten(x.name, x.ifindex, dataplane.IGMP); err != nil {
		c.d.log.Debug("igmp unlisten", "interface", x.name, "err", err)
	}
}

// iface returns the IGMP state of an interface.
func (c *igmpComp) iface(name string) *igmp.Interface {
	if ii := c.ifs[name]; ii != nil {
		return ii.m
	}
	return nil
}

func (c *igmpComp) packet(now time.Time, ifname string, pkt []byte) {
	ii := c.ifs[ifname]
	if ii == nil {
		return // IGMP on an interface we do not run on
	}
	h, payload, err := ip4.Parse(pkt)
	if err != nil || h.Protocol != ip4.ProtoIGMP {
		ii.m.CountMalformed()
		return
	}
	c.handle(ii, ii.m.Receive(now, h, payload), now)
}

// handle sends an IGMP output's packets and passes membership changes on.
func (c *igmpComp) handle(ii *igmpIface, out igmp.Output, now time.Time) {
	x := ii.x
	for _, p := range out.Send {
		h := ip4.Header{TOS: 0xc0, TTL: 1, Protocol: ip4.ProtoIGMP, Src: x.addr, Dst: p.Dst, Options: ip4.OptRouterAlert}
		if err := c.d.env.IO.Send(x.name, dataplane.IGMP, p.Dst, h.Marshal(p.Msg.Marshal())); err != nil {
			c.d.log.Warn("send igmp", "interface", x.name, "err", err)
		}
	}
	for _, g := range out.Changed {
		c.d.log.Debug("membership changed", "interface", x.name, "group", g, "wanted", ii.m.Wants(g))
		if ii.m.Wants(g) {
			if !c.d.forwardsOut(g, x.name) {
				c.d.joins.joined(x.name, g, now)
			}
		} else {
			c.d.joins.left(x.name, g)
		}
		if c.d.pim != nil {
			c.d.pim.pushMembership(x, g, now)
		}
		if c.d.ovl != nil {
			c.d.ovl.membership(g)
		}
		c.d.touch(g)
	}
}

func (c *igmpComp) nextDeadline() time.Time {
	var next time.Time
	for _, ii := range c.ifs {
		if t := ii.m.NextDeadline(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

func (c *igmpComp) advance(now time.Time) {
	for _, x := range c.d.sortedIfs() {
		if ii := c.ifs[x.name]; ii != nil {
			var out igmp.Output
			ii.m.Advance(now, &out)
			c.handle(ii, out, now)
		}
	}
}

func (c *igmpComp) endBurst(time.Time) {}

// origin says why IGMP forwards (S,G) on an interface: a static group
// or a reported member (ok false: it does not).
func (c *igmpComp) origin(name string, k dataplane.SG) (mrib.Origin, bool) {
	ii := c.ifs[name]
	if ii == nil || !ii.m.Forwards(k.Group, k.Source) {
		return 0, false
	}
	if slices.Contains(ii.m.Config().StaticGroups, k.Group) {
		return mrib.Static, true
	}
	return mrib.IGMP, true
}

// route is a flow's route without PIM: in where it arrived, out of every
// other interface with members (RFC 3376 section 6.3).
func (c *igmpComp) route(f *flow, e *mrib.Entry) {
	e.IIF, e.IIFOrigin = f.iif, mrib.Flow
	e.Flags = mrib.SPT // forwarding on the source's own tree
	for name := range c.ifs {
		if name == f.iif {
			continue
		}
		if o, ok := c.origin(name, f.key); ok {
			e.Add(name, o)
			e.Flags |= mrib.Connected
		}
	}
	if len(e.Outputs) == 0 {
		e.Flags |= mrib.Pruned
	}
}

func (c *igmpComp) checkReload(*config.Config) error { return nil }

// reload applies changed IGMP settings per interface: static groups at
// once; a timer or version change restarts IGMP on the interface (its
// startup queries relearn membership within one response interval).
func (c *igmpComp) reload(next *config.Config, now time.Time) {
	for _, ic := range next.Interfaces {
		ii := c.ifs[ic.Name]
		if ii == nil {
			continue
		}
		old, neu := igmpConfig(ii.x.cfg), igmpConfig(ic)
		statics := neu.StaticGroups
		old.StaticGroups, neu.StaticGroups = nil, nil
		if fmt.Sprint(old) != fmt.Sprint(neu) {
			neu.StaticGroups = statics
			var out igmp.Output
			ii.m, out = igmp.NewInterface(neu, ii.x.addr, now)
			c.d.log.Info("igmp restarted with new settings", "interface", ic.Name)
			c.handle(ii, out, now)
			// Membership learned under the old settings is gone: PIM hears so.
			if c.d.pim != nil {
				c.d.pim.pushAllMembership(ii.x, now)
			}
			continue
		}
		c.handle(ii, ii.m.SetStaticGroups(statics), now)
	}
}

func (c *igmpComp) views(add func(string, viewFunc)) {
	// clear ip igmp group: membership forgotten on every interface (static
	// groups stay), a general query asks the members still there again.
	add(api.PathClearIGMP, func(now time.Time, arg string) (any, error) {
		g, err := clearGroup(arg, "clear ip igmp group")
		if err != nil {
			return nil, err
		}
		n := 0
		for _, x := range c.d.sortedIfs() {
			if ii := c.ifs[x.name]; ii != nil {
				var out igmp.Output
				n += ii.m.Clear(now, g, &out)
				c.handle(ii, out, now)
			}
		}
		c.d.EndBurst(now)
		c.d.log.Info("clear ip igmp group", "group", arg, "groups", n)
		return api.Cleared{What: "igmp group", Group: cmp.Or(arg, "*"), Cleared: n}, nil
	})
	add(api.PathIGMPGroups, func(now time.Time, _ string) (any, error) {
		out := []api.IGMPGroup{}
		for _, x := range c.d.sortedIfs() {
			ii := c.ifs[x.name]
			if ii == nil {
				continue
			}
			for _, g := range ii.m.Groups(now) {
				row := api.IGMPGroup{
					Interface: x.name, Group: g.Group.String(), Mode: g.Mode.String(), Version: g.Version,
					Static: g.Static, Expires: until(g.Expires, now),
				}
				if g.Version < 3 && !g.Static {
					row.Mode = "" // IGMPv1/v2 have no filter mode (RFC 3376's EXCLUDE({}) is internal)
				}
				if !g.Created.IsZero() {
					row.Uptime = api.Duration(now.Sub(g.Created))
				}
				if g.Reporter.IsValid() {
					row.Reporter = g.Reporter.String()
				}
				for _, s := range g.Sources {
					row.Sources = append(row.Sources, api.IGMPSource{Source: s.Source.String(), Expires: until(s.Expires, now), Forward: s.Forward})
				}
				for _, h := range g.Hosts {
					row.Hosts = append(row.Hosts, h.String())
				}
				out = append(out, row)
			}
		}
		return out, nil
	})
	add(api.PathIGMPInterfaces, func(now time.Time, _ string) (any, error) {
		out := []api.IGMPInterface{}
		for _, x := range c.d.sortedIfs() {
			ii := c.ifs[x.name]
			if ii == nil {
				continue
			}
			m := ii.m
			cfg := m.Config()
			q, qa := m.IsQuerier()
			st := m.Stats()
			vif := -1
			if c.d.env.VIF != nil {
				if v, ok := c.d.env.VIF(x.name); ok {
					vif = v
				}
			}
			out = append(out, api.IGMPInterface{
				Name: x.name, Address: x.addr.String(), VIF: vif, Version: cfg.Version,
				Querier: q, QuerierAddress: qa.String(),
				NextQuery: until(m.NextGeneralQuery(), now), OtherQuerierExpires: until(m.OtherQuerierExpiry(), now),
				QueryInterval: api.Duration(cfg.QueryInterval), QueryResponseInterval: api.Duration(cfg.QueryResponseInterval),
				LastMemberQueryTime: api.Duration(cfg.LastMemberQueryTime()), Robustness: cfg.Robustness,
				ExplicitTracking: cfg.ExplicitTracking, Groups: len(m.Groups(now)),
				Stats: api.IGMPStats{
					RxQueries: st.RxQueries, RxV1Reports: st.RxV1Reports, RxV2Reports: st.RxV2Reports, RxV3Reports: st.RxV3Reports,
					RxLeaves: st.RxLeaves, TxQueries: st.TxQueries, Malformed: st.Malformed, BadChecksum: st.BadChecksum,
					Truncated: st.Truncated, Ignored: st.Ignored, FastLeaves: st.FastLeaves,
					GroupLimit: st.GroupLimit, SourceLimit: st.SourceLimit, HostLimit: st.HostLimit,
				},
			})
		}
		return out, nil
	})
}

func until(t, now time.Time) api.Duration {
	if t.IsZero() {
		return 0
	}
	return api.Duration(t.Sub(now))
}
