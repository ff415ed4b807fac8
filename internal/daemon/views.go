package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	"overcast/internal/api"
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

// mrouteView lists the MRIB with the flows' counters: input, outputs,
// who wants each output and for how long, and the flags.
func (d *Daemon) mrouteView(now time.Time, _ string) (any, error) {
	out := []api.MRoute{}
	for k, f := range d.flows {
		r := api.MRoute{
			Source: k.Source.String(), Group: k.Group.String(), IIF: f.iif,
			Uptime: api.Duration(now.Sub(f.created)), Expires: api.Duration(f.lastActive.Add(d.cfg.Keepalive).Sub(now)),
			Packets: f.counters.Packets, Bytes: f.counters.Bytes, WrongIf: f.counters.WrongIf,
			PPS: f.pps, KBPS: f.bps / 1000,
		}
		// Exact counts now, one lookup per flow (the kernel's table dump
		// grows worse than linearly); rates come from the counter poll.
		if c, err := d.env.Forwarder.SGCount(k); err == nil {
			r.Packets, r.Bytes, r.WrongIf = c.Packets, c.Bytes, c.WrongIf
		}
		if e, ok := d.rib.Get(k); ok {
			r.IIF, r.RPF, r.Flags = e.IIF, e.IIFOrigin.String(), e.Flags.String()
			for _, o := range e.Outputs {
				r.OIFs = append(r.OIFs, api.OIF{Name: o.Name, Origin: o.Origin.String(), Uptime: api.Duration(now.Sub(o.Since()))})
			}
			r.Programs = d.rec.Holds(e.Route())
			for _, p := range e.Peers {
				r.Peers = append(r.Peers, p.String())
			}
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b api.MRoute) int {
		if c := strings.Compare(a.Group, b.Group); c != 0 {
			return c
		}
		return strings.Compare(a.Source, b.Source)
	})
	return out, nil
}

func (d *Daemon) statusView(now time.Time, _ string) (any, error) {
	s := api.Status{Version: Version, PID: d.env.PID, Uptime: api.Duration(now.Sub(d.start)), Config: d.path,
		Reloads: d.reloads, ReloadError: d.reloadError, Upcalls: d.upcalls, KernelErrs: d.rec.Errors,
		Flows: len(d.flows), Routes: d.rec.Len(), CounterPoll: api.Duration(counterPollInterval(len(d.flows)))}
	s.HeapBytes, s.GoMemoryBytes = goMemory()
	for _, c := range d.components() {
		s.Components = append(s.Components, c.name())
	}
	if p := d.pim; p != nil {
		s.PIM = api.PIMStats{Enabled: true, RxPackets: p.rxPackets, TxPackets: p.txPackets, Malformed: p.malformed,
			SendErrors: p.sendErrors, ASMInSSM: p.asmInSSM, Rejected: p.r.TotalDrops().Total()}
	}
	return s, nil
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
