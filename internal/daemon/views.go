package daemon

import (
	"os"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	"overcast/internal/api"
	"overcast/internal/dataplane"
)

// backend answers API calls by running them on the daemon's loop.
type backend struct{ d *Daemon }

func until(t, now time.Time) api.Duration {
	if t.IsZero() {
		return 0
	}
	return api.Duration(t.Sub(now))
}

func (b backend) IGMPGroups() (out []api.IGMPGroup) {
	b.d.call(func() {
		now := time.Now()
		for _, x := range b.d.sortedIfs() {
			for _, g := range x.igmp.Groups(now) {
				row := api.IGMPGroup{
					Interface: x.name, Group: g.Group.String(), Mode: g.Mode.String(), Version: g.Version,
					Static: g.Static, Expires: until(g.Expires, now),
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
	})
	return out
}

func (b backend) IGMPInterfaces() (out []api.IGMPInterface) {
	b.d.call(func() {
		now := time.Now()
		for _, x := range b.d.sortedIfs() {
			c := x.igmp.Config()
			q, qa := x.igmp.IsQuerier()
			st := x.igmp.Stats()
			out = append(out, api.IGMPInterface{
				Name: x.name, Address: x.addr.String(), VIF: x.vif, Version: c.Version,
				Querier: q, QuerierAddress: qa.String(),
				NextQuery: until(x.igmp.NextGeneralQuery(), now), OtherQuerierExpires: until(x.igmp.OtherQuerierExpiry(), now),
				QueryInterval: api.Duration(c.QueryInterval), QueryResponseInterval: api.Duration(c.QueryResponseInterval),
				LastMemberQueryTime: api.Duration(c.LastMemberQueryTime()), Robustness: c.Robustness,
				ExplicitTracking: c.ExplicitTracking, Groups: len(x.igmp.Groups(now)),
				Stats: api.IGMPStats{
					RxQueries: st.RxQueries, RxV1Reports: st.RxV1Reports, RxV2Reports: st.RxV2Reports, RxV3Reports: st.RxV3Reports,
					RxLeaves: st.RxLeaves, TxQueries: st.TxQueries, Malformed: st.Malformed, BadChecksum: st.BadChecksum,
					Truncated: st.Truncated, Ignored: st.Ignored, FastLeaves: st.FastLeaves,
				},
			})
		}
	})
	return out
}

func (b backend) MRoutes() (out []api.MRoute) {
	b.d.call(func() {
		now := time.Now()
		fresh := map[dataplane.SG]dataplane.Counters{} // exact counts now; rates come from the counter poll
		b.d.sock.Counters(func(k dataplane.SG, c dataplane.Counters) { fresh[k] = c })
		for k, f := range b.d.flows {
			r := api.MRoute{
				Source: k.Source.String(), Group: k.Group.String(), IIF: b.d.flowIIF(f),
				Uptime: api.Duration(now.Sub(f.created)), Expires: api.Duration(f.lastActive.Add(b.d.cfg.Keepalive).Sub(now)),
				Packets: f.counters.Packets, Bytes: f.counters.Bytes, WrongIf: f.counters.WrongIf,
				PPS: f.pps, KBPS: f.bps / 1000,
			}
			if c, ok := fresh[k]; ok {
				r.Packets, r.Bytes, r.WrongIf = c.Packets, c.Bytes, c.WrongIf
			}
			rt, installed := b.d.rec.Lookup(k)
			r.Programs = installed
			if b.d.pim != nil {
				r.Flags, r.OIFs = b.d.pimFlags(f)
				if installed {
					r.IIF = b.d.vifName(rt.IIF)
				}
				out = append(out, r)
				continue
			}
			flags := "T" // forwarding on the source's own tree
			for _, x := range b.d.sortedIfs() {
				if x == f.iif || !x.igmp.Forwards(k.Group, k.Source) {
					continue
				}
				origin := "igmp"
				if slices.Contains(x.igmp.Config().StaticGroups, k.Group) {
					origin = "static"
				}
				r.OIFs = append(r.OIFs, api.OIF{Name: x.name, Origin: origin})
				if !strings.Contains(flags, "C") {
					flags += "C" // a directly connected member
				}
			}
			if len(r.OIFs) == 0 {
				flags += "P" // pruned: nobody wants it
			}
			r.Flags = flags
			out = append(out, r)
		}
		slices.SortFunc(out, func(a, b api.MRoute) int {
			if c := strings.Compare(a.Group, b.Group); c != 0 {
				return c
			}
			return strings.Compare(a.Source, b.Source)
		})
	})
	return out
}

func (b backend) Status() (s api.Status) {
	b.d.call(func() {
		s = api.Status{Version: Version, PID: os.Getpid(), Uptime: api.Duration(time.Since(b.d.start)), Config: b.d.path,
			Reloads: b.d.reloads, ReloadError: b.d.reloadError, Upcalls: b.d.upcalls, KernelErrs: b.d.rec.Errors,
			Flows: len(b.d.flows), Routes: b.d.rec.Len(), CounterPoll: api.Duration(counterPollInterval(len(b.d.flows)))}
		s.HeapBytes, s.GoMemoryBytes = goMemory()
		if p := b.d.pim; p != nil {
			s.PIM = api.PIMStats{Enabled: true, RxPackets: p.rxPackets, TxPackets: p.txPackets, Malformed: p.malformed,
				SendErrors: p.sendErrors, ASMInSSM: p.asmInSSM}
		}
	})
	return s
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

func (d *Daemon) sortedIfs() []*iface {
	out := mapValues(d.ifs)
	slices.SortFunc(out, func(a, b *iface) int { return a.vif - b.vif })
	return out
}
