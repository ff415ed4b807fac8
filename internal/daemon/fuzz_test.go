package daemon

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/dataplane"
	igmpwire "overcast/internal/packet/igmp"
	"overcast/internal/packet/ip4"
	wire "overcast/internal/packet/pim"
	"overcast/internal/pim"
	"overcast/internal/testkit"
)

// The configs a script reloads between: PIM with one RP or another, an
// interface more or less, thresholds, a passive interface, and one that
// needs a restart (rejected).
var fzConfigs = []string{
	fmt.Sprintf(pimBase, "10.255.0.11"),
	fmt.Sprintf(pimBase, "10.255.0.12"),
	fmt.Sprintf(pimBase, "10.255.0.1") + "  spt-threshold:\n    - {groups: 239.1.0.0/16, threshold: 10 packets}\n  ssm-range: [232.0.0.0/8, 239.2.0.0/16]\n",
	"interfaces:\n  - name: eth0\n  - name: eth1\n    pim: {dr-priority: 9}\n  - name: eth3\n    pim: true\npim:\n  rp:\n    - address: 10.255.0.11\n",
	"interfaces:\n  - name: eth1\n    pim: true\n  - name: eth2\npim: {}\n",
	"interfaces:\n  - name: eth0\n", // PIM off: rejected
}

var (
	fzIfaces = []string{"eth0", "eth1", "eth2", "eth3"}
	fzGroups = []string{"239.1.1.1", "239.2.2.2", "232.1.1.1", "224.0.0.5"}
	fzSrcs   = []string{"10.0.0.10", "10.9.0.5", "10.0.1.10"}
	fzNbrs   = []string{"10.0.1.2", "10.0.2.2", "10.0.3.2"}
)

// FuzzDaemon drives the whole daemon (IGMP and PIM components, MRIB,
// reconciler, reload) with a script of events: the fuzzer's bytes as IGMP
// and PIM packets through the real parsers, reports, hellos, joins and
// prunes built from a few addresses so they meet state, upcalls, route
// flips, reloads, ticks and time. Whatever arrives, the daemon must not
// panic, the forwarder must hold exactly the MRIB's routes after each
// burst, every route must use interfaces the forwarder has, and every view
// must answer.
func FuzzDaemon(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 3, 1, 0, 4, 1, 0, 0, 1, 5, 0, 1, 0, 0, 6, 50, 9, 1, 5, 1, 1, 0, 7, 8, 9, 3, 5, 0, 0, 2, 1, 6, 200, 9, 4, 6, 255})
	f.Add([]byte{0, 1, 20, 0x11, 0x64, 0, 0, 0, 0, 0, 0, 2, 1, 12, 0x20, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add([]byte{9, 2, 1, 2, 0, 0, 5, 1, 1, 1, 0, 6, 5, 7, 6, 5, 7, 5, 2, 1, 1, 0, 9, 0, 6, 255, 6, 255})
	f.Fuzz(func(t *testing.T, script []byte) {
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("FuzzDaemon: script %x runs for 10 s", script)) })
		defer watchdog.Stop()
		fuzzDaemon(t, script)
	})
}

func fuzzDaemon(t *testing.T, raw []byte) {
	h := newHarness(t, fzConfigs[0])
	h.rt.routes[netip.MustParsePrefix("10.255.0.11/32")] = pim.RPF{Iface: "eth1", Neighbor: netip.MustParseAddr("10.0.1.2")}
	h.rt.routes[netip.MustParsePrefix("10.255.0.12/32")] = pim.RPF{Iface: "eth2", Neighbor: netip.MustParseAddr("10.0.2.2")}
	h.rt.routes[netip.MustParsePrefix("10.9.0.0/16")] = pim.RPF{Iface: "eth1", Neighbor: netip.MustParseAddr("10.0.1.2")}
	s := testkit.Script(raw)
	pick := func(xs []string) string { return xs[s.Pick(len(xs))] }
	for steps := 0; len(s) > 0 && steps < 200; steps++ {
		iface := pick(fzIfaces)
		switch s.Pick(10) {
		case 0: // the fuzzer's bytes as an IGMP or PIM packet
			proto := dataplane.IGMP
			if s.Bit() {
				proto = dataplane.PIM
			}
			body := s.Take(s.Pick(64))
			pkt := body
			if s.Bit() {
				p := ip4.ProtoIGMP
				if proto == dataplane.PIM {
					p = ip4.ProtoPIM
				}
				pkt = ip4.Header{TTL: 1, Protocol: uint8(p), Src: netip.MustParseAddr(pick(fzNbrs)), Dst: netip.MustParseAddr("224.0.0.13")}.Marshal(body)
			}
			h.d.Packet(h.now, iface, proto, pkt)
			h.d.EndBurst(h.now)
		case 1: // an IGMPv3 report: ASM, SSM or a leave
			g := pick(fzGroups)
			switch s.Pick(3) {
			case 0:
				h.report(iface, "10.0.0.10", asm(g))
			case 1:
				h.report(iface, "10.0.0.10", ssm(g, pick(fzSrcs)))
			default:
				h.report(iface, "10.0.0.10", igmpwire.GroupRecord{Type: igmpwire.ChangeToInclude, Group: netip.MustParseAddr(g)})
			}
		case 2: // a neighbour's hello (or goodbye)
			hold := uint16(105)
			if s.Bit() {
				hold = 0
			}
			h.pim(iface, pick(fzNbrs), wire.NewHello(hold, 500, 2500, s.Bit(), uint32(s.Next()), uint32(s.Next()), nil))
		case 3, 4: // a join or prune for (*,G) or (S,G) addressed to us
			g := netip.MustParseAddr(pick(fzGroups))
			src := wire.Source{Addr: netip.MustParseAddr(pick(fzSrcs)), MaskLen: 32, Sparse: true}
			if s.Bit() {
				src = wire.Source{Addr: netip.MustParseAddr("10.255.0.11"), MaskLen: 32, Sparse: true, WC: true, RPT: true}
			}
			gs := wire.GroupSet{Group: wire.GroupPrefix(g)}
			if s.Bit() {
				gs.Joins = []wire.Source{src}
			} else {
				gs.Prunes = []wire.Source{src}
			}
			up := h.ln.ifs[iface].Addr
			h.pim(iface, pick(fzNbrs), &wire.JoinPrune{Upstream: up, Holdtime: 210, Groups: []wire.GroupSet{gs}})
		case 5: // data: the forwarder's upcalls
			h.data(iface, pick(fzSrcs), pick(fzGroups))
		case 6: // time passes
			d := time.Duration(s.Next()) * 100 * time.Millisecond
			h.run(d)
			h.d.Tick(h.now)
			h.d.EndBurst(h.now)
		case 7: // a route flips
			k := netip.MustParsePrefix("10.9.0.0/16")
			if r := h.rt.routes[k]; r.Iface == "eth1" {
				h.rt.routes[k] = pim.RPF{Iface: "eth2", Neighbor: netip.MustParseAddr("10.0.2.2")}
			} else {
				h.rt.routes[k] = pim.RPF{Iface: "eth1", Neighbor: netip.MustParseAddr("10.0.1.2")}
			}
			h.d.RoutingChanged(h.now)
			h.d.EndBurst(h.now)
		case 8: // a whole-packet upcall from the register VIF
			pkt := ip4.Header{TTL: 64, Protocol: ip4.ProtoUDP, Src: netip.MustParseAddr(pick(fzSrcs)), Dst: netip.MustParseAddr(pick(fzGroups))}.Marshal(s.Take(12))
			h.d.Upcall(h.now, dataplane.Upcall{Kind: dataplane.WholePkt, Iface: dataplane.RegisterName, Packet: pkt})
			h.d.EndBurst(h.now)
		case 9: // reload, or a restart over the same forwarder
			if s.Pick(4) == 0 {
				h.restart()
				break
			}
			h.write(fzConfigs[s.Pick(len(fzConfigs))])
			h.d.ReloadFile(h.now)
		}
		checkDaemon(t, h)
	}
}

// checkDaemon: the forwarder holds exactly the MRIB, on interfaces it
// has, and every view answers.
func checkDaemon(t *testing.T, h *harness) {
	t.Helper()
	if h.d.rec.Errors != 0 {
		t.Fatalf("forwarder refused %d changes", h.d.rec.Errors)
	}
	for k := range h.d.rib.Changes() {
		t.Fatalf("%v not programmed after the burst", k)
	}
	for e := range h.d.rib.All() {
		r, ok := h.fw.Route(e.SG)
		if !ok || !r.Equal(e.Route()) {
			t.Fatalf("MRIB %v %+v, forwarder %+v %v", e.SG, e.Route(), r, ok)
		}
	}
	rs, _ := h.fw.ListRoutes()
	if len(rs) != h.d.rib.Len() {
		t.Fatalf("forwarder holds %d routes, MRIB %d", len(rs), h.d.rib.Len())
	}
	for _, r := range rs {
		for _, n := range append([]string{r.IIF}, r.OIFs...) {
			if _, ok := h.fw.Ifaces[n]; !ok {
				t.Fatalf("route %+v uses %q, not in the forwarder", r, n)
			}
		}
		if slices.Contains(r.OIFs, r.IIF) {
			t.Fatalf("route %+v goes out where it comes in", r)
		}
	}
	for _, v := range api.Views {
		arg := ""
		if v.Arg != "" {
			arg = "10.9.0.5"
		}
		if strings.HasPrefix(v.Arg, "GROUP") {
			arg = fzGroups[0] + "," + fzSrcs[0]
		}
		if strings.HasPrefix(v.Path, "/v1/msdp/") && h.d.msdp == nil || strings.HasPrefix(v.Path, "/v1/bgp/") && h.d.mbgp == nil || strings.HasPrefix(v.Path, "/v1/overlay") && h.d.ovl == nil {
			continue // says MSDP, BGP or the overlay is off
		}
		if _, err := h.d.View(h.now, v.Path, arg); err != nil && h.d.pim != nil {
			t.Fatalf("view %s: %v", v.Words, err)
		}
	}
	for _, s := range h.io.Take() {
		if s.Proto == dataplane.PIM {
			if _, err := wire.Parse(s.Pkt); err != nil {
				t.Fatalf("sent a PIM message that does not parse: %v", err)
			}
		}
	}
}
