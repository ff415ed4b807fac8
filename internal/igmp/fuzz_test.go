package igmp

import (
	"net/netip"
	"testing"
	"time"

	"overcast/internal/packet/igmp"
	"overcast/internal/packet/ip4"
	"overcast/internal/testkit"
)

// FuzzInterface drives router-side IGMP with a script of events: the
// fuzzer's bytes through the real parser, and v1/v2/v3 reports, leaves
// and queries from other routers built from a few addresses so they meet
// state, static groups and time. Whatever arrives, it must not panic, its
// cached NextDeadline must never be later than a full scan of its timers
// (earlier is only a spurious wake-up) nor in the past after timers
// fired, and every query it sends must encode to a packet that parses.
func FuzzInterface(f *testing.F) {
	f.Add([]byte{0x13, 1, 0, 1, 3, 0, 1, 4, 20, 2, 1, 1, 2, 3, 2, 0, 0, 0, 1, 4, 200, 1, 1, 1, 5, 2, 0, 2, 4, 255})
	f.Add([]byte{0x02, 2, 1, 2, 0, 3, 1, 1, 1, 4, 100, 2, 0, 2, 4, 30, 5, 1})
	f.Add(append([]byte{0x11, 0, 0, 16}, (&igmp.V3Report{Records: []igmp.GroupRecord{{Type: igmp.ChangeToExclude, Group: grp, Sources: []netip.Addr{s1}}}}).Marshal()...))
	f.Fuzz(func(t *testing.T, raw []byte) {
		script := testkit.Script(raw)
		next := script.Next
		hosts := []netip.Addr{h1, h2, netip.MustParseAddr("10.0.1.12")}
		groups := []netip.Addr{grp, ssmGrp, netip.MustParseAddr("239.1.1.2"), netip.MustParseAddr("224.0.0.1")}
		sources := []netip.Addr{s1, s2, netip.MustParseAddr("10.0.0.12")}
		routers := []netip.Addr{lower, netip.MustParseAddr("10.0.1.200")}
		mode := next()
		cfg := Config{Version: 2 + int(mode&1), ExplicitTracking: mode&2 != 0, NoQuerier: mode&4 != 0}
		if mode&8 != 0 {
			cfg.StaticGroups = []netip.Addr{groups[2]}
		}
		if mode&16 != 0 {
			cfg.MaxGroupsPerHost = 1
		}
		r := newRig(t, cfg)
		check := func(out Output) {
			for _, p := range out.Send {
				if _, err := igmp.Parse(p.Msg.Marshal()); err != nil {
					t.Fatalf("sent %+v does not parse: %v", p.Msg, err)
				}
			}
			cached := r.ifc.NextDeadline()
			shadow := *r.ifc // a full scan on a copy leaves the cache alone
			shadow.nextValid, shadow.touched = false, nil
			// Earlier is a spurious wake-up, harmless; later or missing
			// would fire a timer late.
			if full := shadow.NextDeadline(); !full.IsZero() && (cached.IsZero() || cached.After(full)) {
				t.Fatalf("cached deadline %v is later than the true one %v", cached, full)
			}
			// Each host's count of the groups it made is exactly that.
			made := map[netip.Addr]int{}
			for _, g := range r.ifc.groups {
				if g.creator.IsValid() {
					made[g.creator]++
				}
			}
			for _, h := range hosts {
				if made[h] != r.ifc.HostGroups(h) || (cfg.MaxGroupsPerHost > 0 && made[h] > cfg.MaxGroupsPerHost) {
					t.Fatalf("%s made %d groups, counted %d (limit %d)", h, made[h], r.ifc.HostGroups(h), cfg.MaxGroupsPerHost)
				}
			}
		}
		for len(script) > 0 {
			h := hosts[int(next())%len(hosts)]
			g := groups[int(next())%len(groups)]
			switch next() % 6 {
			case 0: // the fuzzer's own bytes, through the parser
				b := script.Take(int(next()))
				check(r.ifc.Receive(r.now, ip4.Header{Src: h, TTL: 1, Protocol: ip4.ProtoIGMP, RouterAlert: next()&1 == 1}, b))
			case 1:
				var srcs []netip.Addr
				for range int(next()) % 4 {
					srcs = append(srcs, sources[int(next())%len(sources)])
				}
				rec := igmp.GroupRecord{Type: igmp.RecordType(1 + int(next())%6), Group: g, Sources: srcs}
				check(r.rx(h, &igmp.V3Report{Records: []igmp.GroupRecord{rec}}))
			case 2:
				switch next() % 3 {
				case 0:
					check(r.rx(h, &igmp.Report{Version: 1, Group: g}))
				case 1:
					check(r.rx(h, &igmp.Report{Version: 2, Group: g}))
				case 2:
					check(r.rx(h, &igmp.Leave{Group: g}))
				}
			case 3:
				q := &igmp.Query{Version: 1 + int(next())%3, MaxResp: time.Duration(next()) * 100 * time.Millisecond, QRV: next() % 8, QQI: time.Duration(next()) * time.Second}
				if q.Version == 1 {
					q.MaxResp = 0
				}
				if next()&1 == 1 {
					q.Group = g
					if q.Version == 3 && next()&1 == 1 {
						q.Sources = []netip.Addr{sources[int(next())%len(sources)]}
					}
				}
				check(r.rx(routers[int(next())%len(routers)], q))
			case 4:
				d := time.Duration(next()) * 100 * time.Millisecond
				if next()&1 == 1 {
					d *= 30 // up to about 13 minutes: every timer runs out
				}
				r.advance(d)
				check(Output{})
				if next := r.ifc.NextDeadline(); !next.IsZero() && !next.After(r.now) {
					t.Fatalf("deadline %v is not after now %v once timers fired", next, r.now)
				}
			case 5:
				var gs []netip.Addr
				if next()&1 == 1 {
					gs = []netip.Addr{g}
				}
				check(r.ifc.SetStaticGroups(gs))
			}
			r.ifc.Groups(r.now)
			r.ifc.Forwards(g, sources[0])
		}
	})
}
