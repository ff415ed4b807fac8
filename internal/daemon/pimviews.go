package daemon

import (
	"slices"
	"strings"
	"time"

	"overcast/internal/api"
	"overcast/internal/pim"
)

func (p *pimComp) views(add func(string, viewFunc)) {
	add(api.PathPIMNeighbors, p.neighborsView)
	add(api.PathPIMInterfaces, p.interfacesView)
	add(api.PathPIMRP, p.rpView)
	add(api.PathPIMJoin, p.joinView)
	add(api.PathPIMAssert, p.assertView)
	add(api.PathPIMStatistics, p.statisticsView)
}

// starRow is a (*,G) entry as show mroute lists it: its RP, input toward
// the RP (none at the RP itself), the downstream joins and local members
// it forwards to, and IOS's flags (S, C for a connected member, J once a
// threshold asks for the SPT, P with no output).
func (p *pimComp) starRow(now time.Time, e pim.EntryView) api.MRoute {
	g := e.Key.G
	r := api.MRoute{Source: "*", Group: g.String(), Mode: "sparse", IIF: e.UpIface, RPF: "pim", OIFs: []api.OIF{},
		Uptime: api.Duration(now.Sub(e.Created)), Programs: true}
	if rp, ok := p.r.RP(g); ok {
		r.RP = rp.String()
	}
	if e.UpNeighbor.IsValid() {
		r.RPFNbr = e.UpNeighbor.String()
	}
	flags := "S"
	var last time.Time
	for _, dv := range e.Down {
		if dv.State != pim.Join && dv.State != pim.PrunePending {
			continue
		}
		o := api.OIF{Name: dv.Iface, Origin: "pim", Uptime: api.Duration(now.Sub(dv.Since)), Expires: until(dv.Expires, now)}
		r.OIFs = append(r.OIFs, o)
		if dv.Expires.After(last) {
			last = dv.Expires
		}
	}
	for _, name := range e.LocalIn {
		if slices.ContainsFunc(r.OIFs, func(o api.OIF) bool { return o.Name == name }) {
			continue
		}
		o := api.OIF{Name: name, Origin: "igmp"}
		if ii := p.d.igmp.ifs[name]; ii != nil {
			if m, ok := ii.m.Group(g, now); ok {
				if m.Static {
					o.Origin = "static"
				}
				if !m.Created.IsZero() {
					o.Uptime = api.Duration(now.Sub(m.Created))
				}
				o.Expires = until(m.Expires, now)
			}
		}
		r.OIFs = append(r.OIFs, o)
	}
	for _, a := range e.Asserts {
		for i := range r.OIFs {
			if r.OIFs[i].Name == a.Iface && a.State == pim.AssertWinner {
				r.OIFs[i].AssertWinner = true
			}
		}
	}
	slices.SortFunc(r.OIFs, func(a, b api.OIF) int { return strings.Compare(a.Name, b.Name) })
	if len(e.LocalIn) > 0 {
		flags += "C"
	} else if !last.IsZero() {
		r.Expires = until(last, now) // joins alone keep it; a member keeps it stopped
	}
	if e.SPTWanted || len(e.LocalIn) > 0 && e.SPTThreshold.String() == "immediate" {
		flags += "J" // IOS: the next packet down the shared tree moves this last hop to the SPT
	}
	if len(r.OIFs) == 0 {
		flags += "P"
	}
	r.Flags = flags
	return r
}

// rejected is a refusal count by reason name, every reason present.
func rejected(d pim.Drops) map[string]uint64 {
	out := make(map[string]uint64, len(d))
	for _, r := range pim.Reasons() {
		out[r.String()] = d[r]
	}
	return out
}

func (p *pimComp) statisticsView(time.Time, string) (any, error) {
	tot := p.r.TotalDrops()
	st := api.PIMStatistics{RxPackets: p.rxPackets, TxPackets: p.txPackets, Malformed: p.malformed, SendErrors: p.sendErrors,
		RejectedTotal: tot.Total(), Rejected: rejected(tot), Interfaces: []api.PIMInterfaceRejects{}}
	for _, name := range p.r.InterfaceNames() {
		st.Interfaces = append(st.Interfaces, api.PIMInterfaceRejects{Name: name, Rejected: rejected(p.r.Drops(name))})
	}
	st.Interfaces = append(st.Interfaces, api.PIMInterfaceRejects{Name: "(unicast)", Rejected: rejected(p.r.Drops(""))})
	return st, nil
}

func (p *pimComp) neighborsView(now time.Time, _ string) (any, error) {
	out := []api.PIMNeighbor{}
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
	return out, nil
}

func (p *pimComp) interfacesView(now time.Time, _ string) (any, error) {
	out := []api.PIMInterface{}
	for _, name := range p.r.InterfaceNames() {
		i := p.r.Interface(name)
		c := i.Config()
		out = append(out, api.PIMInterface{Name: name, Address: i.Addr().String(), Active: p.active[name], DR: i.DR().String(),
			IAmDR: i.IsDR(), DRPriority: c.DRPriority, HelloPeriod: api.Duration(c.HelloPeriod), NextHello: until(i.NextHello(), now),
			Holdtime: api.Duration(c.Holdtime), Neighbors: len(i.Neighbors()), GenerationID: i.GenerationID(),
			PropagationDelay: api.Duration(i.EffectivePropagationDelay()), OverrideInterval: api.Duration(i.EffectiveOverrideInterval()),
			JoinSuppression: i.SuppressionEnabled(), Rejected: rejected(p.r.Drops(name))})
	}
	return out, nil
}

// rpView lists the RP of each range; Local marks the ranges whose RP is
// an address of this router (whatever the range: 224.0.0.0/4 included,
// whose first address is link-local and has no RP of its own).
func (p *pimComp) rpView(time.Time, string) (any, error) {
	out := []api.PIMRP{}
	rps := p.r.Config().RPs
	for _, m := range rps.Mappings() {
		row := api.PIMRP{Groups: m.Range.String(), RP: m.RP.String(), Local: p.r.IsLocal(m.RP)}
		for _, a := range p.r.Config().AnycastRP[m.RP] {
			row.Anycast = append(row.Anycast, a.String())
			row.Forwarded = p.r.AnycastForwarded()
		}
		if x, ok := p.r.LookupRPF(m.RP); ok {
			row.RPFIf = x.Iface
		}
		out = append(out, row)
	}
	for _, s := range rps.SSMRanges() {
		out = append(out, api.PIMRP{Groups: s.String(), SSM: true})
	}
	return out, nil
}

func (p *pimComp) joinView(now time.Time, _ string) (any, error) {
	out := []api.PIMJoin{}
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
	return out, nil
}

func (p *pimComp) assertView(now time.Time, _ string) (any, error) {
	out := []api.PIMAssert{}
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
	return out, nil
}
