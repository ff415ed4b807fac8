package daemon

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	"overcast/internal/api"
	"overcast/internal/dataplane"
	"overcast/internal/igmp"
	"overcast/internal/mrib"
	"overcast/internal/pim"
)

// viewFuncs collects the views of the daemon and its components, by API
// path. A view a component would serve while that component is off
// answers with an error saying so.
func (d *Daemon) viewFuncs() map[string]viewFunc {
	m := map[string]viewFunc{}
	add := func(path string, h viewFunc) { m[path] = h }
	add(api.PathMRoute, d.mrouteView)
	add(api.PathStatus, d.statusView)
	add(api.PathRPF, d.rpfView)
	add(api.PathClearMRoute, d.clearMRoute)
	for _, c := range d.components() {
		c.views(add)
	}
	for _, v := range api.Views {
		if m[v.Path] == nil && strings.HasPrefix(v.Path, "/v1/pim/") {
			m[v.Path] = func(time.Time, string) (any, error) {
				return nil, api.BadRequest{Err: errors.New("PIM is not running on this daemon: add a pim: section (or pim: true on an interface) to the config and restart")}
			}
		}
		if m[v.Path] == nil && strings.HasPrefix(v.Path, "/v1/bgp/") {
			m[v.Path] = func(time.Time, string) (any, error) {
				return nil, api.BadRequest{Err: errors.New("BGP is not running on this daemon: add a bgp: section (as, router-id, neighbors) to the config and restart")}
			}
		}
		if m[v.Path] == nil && strings.HasPrefix(v.Path, "/v1/overlay") {
			m[v.Path] = func(time.Time, string) (any, error) {
				return nil, api.BadRequest{Err: errors.New("the overlay is not running on this daemon: add an overlay: section (address, key, peers) to the config and restart")}
			}
		}
		if m[v.Path] == nil && strings.HasPrefix(v.Path, "/v1/msdp/") {
			m[v.Path] = func(time.Time, string) (any, error) {
				return nil, api.BadRequest{Err: errors.New("MSDP is not running on this daemon: add an msdp: section with peers to the config and restart")}
			}
		}
	}
	for _, p := range api.Actions {
		if m[p] == nil {
			msg := "the overlay is not running on this daemon: add an overlay: section (address, key, peers) to the config and restart"
			if strings.HasPrefix(p, "/v1/mirror") {
				msg = "this daemon has no mirroring data path"
			}
			m[p] = func(time.Time, string) (any, error) { return nil, api.BadRequest{Err: errors.New(msg)} }
		}
	}
	return m
}

// View answers one API path on the caller's goroutine: for synchronous
// tests (Run serves the same functions through the loop).
func (d *Daemon) View(now time.Time, path, arg string) (any, error) {
	h := d.viewFuncs()[path]
	if h == nil {
		return nil, fmt.Errorf("no view at %s", path)
	}
	return h(now, arg)
}

// mrouteView lists the multicast routing table as IOS does: each group's
// (*,G) (PIM's shared-tree state) then its (S,G)s (the flows, with the
// MRIB's input, outputs and flags and the kernel's counters). arg filters:
// "GROUP" or "GROUP,SOURCE".
func (d *Daemon) mrouteView(now time.Time, arg string) (any, error) {
	var fg, fs netip.Addr
	if arg != "" {
		gs, ss, two := strings.Cut(arg, ",")
		g, err := netip.ParseAddr(gs)
		if err != nil || !g.Is4() || !g.IsMulticast() {
			return nil, api.BadRequest{Err: fmt.Errorf("%q is not an IPv4 multicast group: show mroute takes a group and optionally a source, such as show mroute 239.1.1.1 10.0.1.10", gs)}
		}
		fg = g
		if two {
			sa, err := netip.ParseAddr(ss)
			if err != nil || !sa.Is4() || sa.IsMulticast() {
				return nil, api.BadRequest{Err: fmt.Errorf("%q is not an IPv4 unicast source: show mroute GROUP SOURCE, such as show mroute 239.1.1.1 10.0.1.10", ss)}
			}
			fs = sa
		}
	}
	want := func(s, g netip.Addr) bool {
		return (!fg.IsValid() || g == fg) && (!fs.IsValid() || s == fs || !s.IsValid())
	}
	out := []api.MRoute{}
	var keys []dataplane.SG // out[i]'s key, for the order
	var tree map[pim.SG]pim.EntryView
	if d.pim != nil {
		tree = map[pim.SG]pim.EntryView{}
		for _, e := range d.pim.r.Entries(now) {
			if !want(e.Key.S, e.Key.G) {
				continue
			}
			tree[e.Key] = e
			if !e.Key.S.IsValid() && !fs.IsValid() {
				out = append(out, d.pim.starRow(now, e))
				keys = append(keys, dataplane.SG{Group: e.Key.G})
			}
		}
	}
	for k, f := range d.flows {
		if !want(k.Source, k.Group) {
			continue
		}
		r := api.MRoute{
			Source: k.Source.String(), Group: k.Group.String(), IIF: f.iif, OIFs: []api.OIF{},
			Uptime: api.Duration(now.Sub(f.created)), Expires: api.Duration(f.lastActive.Add(d.cfg.Keepalive).Sub(now)),
			Packets: f.counters.Packets, Bytes: f.counters.Bytes, WrongIf: f.counters.WrongIf,
			PPS: math.Round(f.pps), KBPS: math.Round(f.bps/100) / 10,
		}
		// Exact counts now, one lookup per flow (the kernel's table dump
		// grows worse than linearly); rates come from the counter poll.
		if c, err := d.env.Forwarder.SGCount(k); err == nil {
			r.Packets, r.Bytes, r.WrongIf = c.Packets, c.Bytes, c.WrongIf
		}
		flags := ""
		r.Mode = "igmp"
		if d.pim != nil {
			r.Mode = "sparse"
			if d.pim.r.Config().RPs.IsSSM(k.Group) {
				r.Mode = "ssm"
			}
		}
		if e, ok := d.rib.Get(k); ok {
			r.IIF, r.RPF = e.IIF, e.IIFOrigin.String()
			flags = e.Flags.String()
			for _, o := range e.Outputs {
				if o.Name == dataplane.RegisterName {
					r.Registering = true
				}
				oif := api.OIF{Name: o.Name, Origin: o.Origin.String(), Uptime: api.Duration(now.Sub(o.Since()))}
				oif.Expires, oif.AssertWinner = d.oifTimers(now, k, o, tree)
				r.OIFs = append(r.OIFs, oif)
			}
			r.Programs = d.rec.Holds(e.Route())
			for _, p := range e.Peers {
				r.Peers = append(r.Peers, p.String())
			}
		}
		if d.pim != nil {
			// IOS marks sparse mode on (*,G) only, and SSM groups with s.
			flags = strings.ReplaceAll(flags, "S", "")
			if d.pim.r.Config().RPs.IsSSM(k.Group) {
				flags = "s" + flags
			}
			r.RPFNbr = rpfNeighbor(tree, k, r.IIF)
			// IOS's R: (S,G) state pointing to the RP (its input is the
			// shared tree's), pruned along the shared tree (an (S,G,rpt)
			// prune received here).
			flags = strings.ReplaceAll(flags, "R", "")
			if star, ok := tree[pim.SG{G: k.Group}]; ok && star.UpIface != "" && star.UpIface == r.IIF {
				for _, dv := range tree[pim.SG{S: k.Source, G: k.Group}].RPTDown {
					if dv.State == pim.Pruned && !strings.Contains(flags, "R") {
						flags += "R"
					}
				}
			}
		}
		// IOS's I: an IGMPv3 host asked for this source by name (INCLUDE).
		for _, o := range r.OIFs {
			if o.Origin != "igmp" || strings.Contains(flags, "I") {
				continue
			}
			if ii := d.igmp.ifs[o.Name]; ii != nil {
				if g, ok := ii.m.Group(k.Group, now); ok && g.Mode == igmp.Include {
					for _, src := range g.Sources {
						if src.Source == k.Source && src.Forward {
							flags += "I"
						}
					}
				}
			}
		}
		r.Flags = flags
		out = append(out, r)
		keys = append(keys, k)
	}
	// By group, its (*,G) (the zero source) first, then its sources.
	order := make([]int, len(out))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := keys[a].Group.Compare(keys[b].Group); c != 0 {
			return c
		}
		return keys[a].Source.Compare(keys[b].Source)
	})
	sorted := make([]api.MRoute, len(out))
	for i, j := range order {
		sorted[i] = out[j]
	}
	return sorted, nil
}

// rpfNeighbor is the neighbour an (S,G) flow's input leads to: the
// (S,G)'s upstream when the input is its RPF interface, else the
// shared tree's (the flow follows the (*,G)); "" directly connected.
func rpfNeighbor(tree map[pim.SG]pim.EntryView, k dataplane.SG, iif string) string {
	for _, key := range []pim.SG{{S: k.Source, G: k.Group}, {G: k.Group}} {
		if e, ok := tree[key]; ok && e.UpIface == iif && e.UpNeighbor.IsValid() {
			return e.UpNeighbor.String()
		}
	}
	return ""
}

// oifTimers is when the join or membership behind an output runs out (0:
// it does not: static, register, the RP's own) and whether this router
// won an assert there.
func (d *Daemon) oifTimers(now time.Time, k dataplane.SG, o mrib.Output, tree map[pim.SG]pim.EntryView) (api.Duration, bool) {
	var exp time.Time
	won := false
	switch o.Origin {
	case mrib.IGMP:
		if ii := d.igmp.ifs[o.Name]; ii != nil {
			if g, ok := ii.m.Group(k.Group, now); ok {
				exp = g.Expires
				for _, s := range g.Sources {
					if s.Source == k.Source && s.Forward {
						exp = s.Expires
					}
				}
			}
		}
	case mrib.PIM:
		for _, key := range []pim.SG{{S: k.Source, G: k.Group}, {G: k.Group}} {
			e, ok := tree[key]
			if !ok {
				continue
			}
			for _, dv := range e.Down {
				if dv.Iface == o.Name && dv.Expires.After(exp) {
					exp = dv.Expires
				}
			}
		}
	}
	for _, key := range []pim.SG{{S: k.Source, G: k.Group}, {G: k.Group}} {
		for _, a := range tree[key].Asserts {
			if a.Iface == o.Name && a.State == pim.AssertWinner {
				won = true
			}
		}
	}
	return until(exp, now), won
}

func (d *Daemon) statusView(now time.Time, _ string) (any, error) {
	s := api.Status{Version: Version, PID: d.env.PID, Uptime: api.Duration(now.Sub(d.start)), Config: d.path,
		Reloads: d.reloads, Handovers: d.handovers(), AdoptedRoutes: d.adopted, ReloadError: d.reloadError, Upcalls: d.upcalls, KernelErrs: d.rec.Errors,
		Flows: len(d.flows), Routes: d.rec.Len(), CounterPoll: api.Duration(counterPollInterval(len(d.flows)))}
	s.HeapBytes, s.GoMemoryBytes = goMemory()
	s.JoinLatency = d.joins.view()
	for _, c := range d.components() {
		s.Components = append(s.Components, c.name())
	}
	if p := d.pim; p != nil {
		s.PIM = api.PIMStats{Enabled: true, RxPackets: p.rxPackets, TxPackets: p.txPackets, Malformed: p.malformed,
			SendErrors: p.sendErrors, ASMInSSM: p.asmInSSM, Rejected: p.r.TotalDrops().Total()}
	}
	return s, nil
}

// clearGroup parses clear's argument: a group, or * (the zero Addr).
func clearGroup(arg, cmd string) (netip.Addr, error) {
	if arg == "*" || arg == "" {
		return netip.Addr{}, nil
	}
	g, err := netip.ParseAddr(arg)
	if err != nil || !g.Is4() || !g.IsMulticast() {
		return g, api.BadRequest{Err: fmt.Errorf("%q is not an IPv4 multicast group: %s takes a group or * (all), such as %s 239.1.1.1", arg, cmd, cmd)}
	}
	return g, nil
}

// clearMRoute is clear ip mroute: the group's flows (every flow for *)
// are forgotten and their kernel routes removed; the next packet of each
// rebuilds it from PIM's and IGMP's state, as on IOS.
func (d *Daemon) clearMRoute(now time.Time, arg string) (any, error) {
	g, err := clearGroup(arg, "clear ip mroute")
	if err != nil {
		return nil, err
	}
	n := 0
	for k := range d.flows {
		if !g.IsValid() || k.Group == g {
			d.forgetFlow(k)
			n++
		}
	}
	d.reconcile(now)
	d.log.Info("clear ip mroute", "group", arg, "flows", n)
	return api.Cleared{What: "mroute", Group: cmp.Or(arg, "*"), Cleared: n}, nil
}

// rpfView answers `show rpf ADDR` as PIM sees it (the unicast routes, with
// the protocol, preference and metric of the route used).
func (d *Daemon) rpfView(_ time.Time, arg string) (any, error) {
	a, err := netip.ParseAddr(arg)
	if err != nil || !a.Is4() {
		return nil, api.BadRequest{Err: fmt.Errorf("%q is not an IPv4 address: show rpf takes a source or RP address such as 10.0.1.10", arg)}
	}
	out := api.RPF{Address: a.String()}
	var x pim.RPF
	var ok bool
	if d.pim != nil {
		x, ok = d.pim.r.LookupRPF(a)
	} else {
		x, ok = rpfTables{d}.Lookup(a)
	}
	out.Found, out.Iface, out.Metric, out.Preference, out.Protocol = ok, x.Iface, x.Metric, x.Preference, x.Protocol
	out.Local = ok && x.Iface == ""
	out.Table = x.Table
	if x.Prefix.IsValid() {
		out.Route = x.Prefix.String()
	}
	if x.Neighbor.IsValid() {
		out.Neighbor = x.Neighbor.String()
	}
	return out, nil
}

// goMemory reads the Go heap in live objects and the memory the runtime
// holds from the OS (runtime/metrics: no stop-the-world).
func goMemory() (heap, held uint64) {
	ms := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(ms)
	for _, m := range ms {
		if m.Value.Kind() != metrics.KindUint64 {
			return 0, 0
		}
	}
	return ms[0].Value.Uint64(), ms[1].Value.Uint64() - ms[2].Value.Uint64()
}
