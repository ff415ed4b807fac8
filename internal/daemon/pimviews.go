package daemon

import (
	"fmt"
	"net/netip"
	"time"

	"overcast/internal/api"
	"overcast/internal/pim"
)

// withPIM runs f on the daemon's loop when PIM is on.
func (b backend) withPIM(f func(p *pimState)) {
	b.d.call(func() {
		if b.d.pim != nil {
			f(b.d.pim)
		}
	})
}

func (b backend) PIMNeighbors() (out []api.PIMNeighbor) {
	b.withPIM(func(p *pimState) {
		now := time.Now()
		for _, name := range p.r.InterfaceNames() {
			i := p.r.Interface(name)
			for _, n := range i.Neighbors() {
				row := api.PIMNeighbor{Interface: name, Address: n.Addr.String(), Uptime: api.Duration(now.Sub(n.Since)),
					Expires: until(n.Expires, now), DRPriority: n.DRPriority, GenerationID: n.GenerationID, DR: i.DR() == n.Addr}
				for _, s := range n.Secondary {
					row.Secondary = append(row.Secondary, s.String())
				}
				out = append(out, row)
			}
		}
	})
	return out
}

func (b backend) PIMInterfaces() (out []api.PIMInterface) {
	b.withPIM(func(p *pimState) {
		now := time.Now()
		for _, name := range p.r.InterfaceNames() {
			i := p.r.Interface(name)
			c := i.Config()
			out = append(out, api.PIMInterface{Name: name, Address: i.Addr().String(), Active: p.active[name], DR: i.DR().String(),
				IAmDR: i.IsDR(), DRPriority: c.DRPriority, HelloPeriod: api.Duration(c.HelloPeriod), NextHello: until(i.NextHello(), now),
				Holdtime: api.Duration(c.Holdtime), Neighbors: len(i.Neighbors()), GenerationID: i.GenerationID(),
				PropagationDelay: api.Duration(i.EffectivePropagationDelay()), OverrideInterval: api.Duration(i.EffectiveOverrideInterval()),
				JoinSuppression: i.SuppressionEnabled()})
		}
	})
	return out
}

func (b backend) PIMRPs() (out []api.PIMRP) {
	b.withPIM(func(p *pimState) {
		rps := p.r.Config().RPs
		for _, m := range rps.Mappings() {
			row := api.PIMRP{Groups: m.Range.String(), RP: m.RP.String(), Local: p.r.IAmRP(m.Range.Addr())}
			if x, ok := p.r.LookupRPF(m.RP); ok {
				row.RPFIf = x.Iface
			}
			out = append(out, row)
		}
		for _, s := range rps.SSMRanges() {
			out = append(out, api.PIMRP{Groups: s.String(), SSM: true})
		}
	})
	return out
}

func (b backend) PIMJoins() (out []api.PIMJoin) {
	b.withPIM(func(p *pimState) {
		now := time.Now()
		for _, e := range p.r.Entries(now) {
			row := api.PIMJoin{Source: "*", Group: e.Key.G.String(), Upstream: "NotJoined", RPFIf: e.UpIface,
				SPT: e.SPT, RPTPruned: e.RPTPruned, Register: e.Register.String(), Keepalive: until(e.Keepalive, now),
				JoinSuppressed: until(e.JoinSuppressed, now), Uptime: api.Duration(now.Sub(e.Created)), Local: e.LocalIn,
				SPTThreshold: e.SPTThreshold.String(), RateKbps: e.RateKbps, SPTWanted: e.SPTWanted}
			if e.Key.S.IsValid() {
				row.Source = e.Key.S.String()
			}
			if e.Joined {
				row.Upstream = "Joined"
			}
			if e.UpNeighbor.IsValid() {
				row.RPFNbr = e.UpNeighbor.String()
			}
			for _, d := range e.Down {
				row.Downstream = append(row.Downstream, api.PIMDownItem{Interface: d.Iface, State: d.State.String(), Expires: until(d.Expires, now)})
			}
			for _, d := range e.RPTDown {
				row.RPTPrunes = append(row.RPTPrunes, api.PIMDownItem{Interface: d.Iface, State: d.State.String(), Expires: until(d.Expires, now)})
			}
			out = append(out, row)
		}
	})
	return out
}

func (b backend) PIMAsserts() (out []api.PIMAssert) {
	out = []api.PIMAssert{}
	b.withPIM(func(p *pimState) {
		now := time.Now()
		for _, e := range p.r.Entries(now) {
			for _, a := range e.Asserts {
				row := api.PIMAssert{Source: "*", Group: e.Key.G.String(), Interface: a.Iface, State: a.State.String(),
					Winner: a.Winner.Addr.String(), RPT: a.Winner.RPT, Preference: a.Winner.Preference, Metric: a.Winner.Metric,
					Expires: until(a.Expires, now)}
				if e.Key.S.IsValid() {
					row.Source = e.Key.S.String()
				}
				out = append(out, row)
			}
		}
	})
	return out
}

func (b backend) RPF(addr string) (api.RPF, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is4() {
		return api.RPF{}, fmt.Errorf("%q is not an IPv4 address", addr)
	}
	out := api.RPF{Address: a.String()}
	b.d.call(func() {
		var x pim.RPF
		var ok bool
		if b.d.pim != nil {
			x, ok = b.d.pim.r.LookupRPF(a)
		} else {
			x, ok = rpfKernel().Lookup(a)
		}
		out.Found, out.Iface, out.Metric = ok, x.Iface, x.Metric
		out.Local = ok && x.Iface == ""
		if x.Neighbor.IsValid() {
			out.Neighbor = x.Neighbor.String()
		}
	})
	return out, nil
}
