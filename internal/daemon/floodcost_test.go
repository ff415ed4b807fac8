package daemon

import (
	"fmt"
	"net/netip"
	"testing"

	"overcast/internal/dataplane"
	igmpwire "overcast/internal/packet/igmp"
	"overcast/internal/packet/ip4"
	wire "overcast/internal/packet/pim"
)

// What a flood costs the daemon: 10,000 messages of each kind a hostile
// LAN host sends, through the daemon's whole path (parse, admission,
// state, routes, what it sends), reported per message with the state it
// is left holding. go test -run XXX -bench BenchmarkFloodCost ./internal/daemon
func BenchmarkFloodCost(b *testing.B) {
	const n = 10000
	const cfg = `pim:
  rp: [{address: 10.255.0.1}]
  limits: {interface-routes: 2000}
interfaces:
  - {name: eth0, pim: true}
  - {name: eth1, pim: true, igmp: {max-groups: 1000}}
`
	g := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{239, 10 + byte(i>>16), byte(i >> 8), byte(i)}) }
	s := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 50 + byte(i>>16), byte(i >> 8), byte(i)}) }
	pimPkt := func(src, dst netip.Addr, m wire.Message) []byte {
		return ip4.Header{TOS: 0xc0, TTL: 1, Protocol: ip4.ProtoPIM, Src: src, Dst: dst}.Marshal(m.Marshal())
	}
	nbr := netip.MustParseAddr("10.0.0.2")
	type flood struct {
		name  string
		send  func(h *harness, i int)
		state func(h *harness) string
	}
	kinds := []flood{
		{"hello-off-subnet", func(h *harness, i int) {
			h.d.Packet(h.now, "eth0", dataplane.PIM, pimPkt(s(i), wire.AllPIMRouters, wire.NewHello(105, 500, 2500, false, 1, uint32(i), nil)))
		}, func(h *harness) string {
			return fmt.Sprintf("%d neighbours", len(h.d.pim.r.Interface("eth0").Neighbors()))
		}},
		{"join-from-stranger", func(h *harness, i int) {
			jp := &wire.JoinPrune{Upstream: netip.MustParseAddr("10.0.0.1"), Holdtime: 210, Groups: []wire.GroupSet{{Group: wire.GroupPrefix(g(i)), Joins: []wire.Source{{Addr: s(i), MaskLen: 32, Sparse: true}}}}}
			h.d.Packet(h.now, "eth0", dataplane.PIM, pimPkt(netip.AddrFrom4([4]byte{10, 0, 0, byte(3 + i%200)}), wire.AllPIMRouters, jp))
		}, func(h *harness) string { return fmt.Sprintf("%d PIM entries", len(h.d.pim.r.Entries(h.now))) }},
		{"join-from-neighbour", func(h *harness, i int) {
			jp := &wire.JoinPrune{Upstream: netip.MustParseAddr("10.0.0.1"), Holdtime: 210, Groups: []wire.GroupSet{{Group: wire.GroupPrefix(g(i)), Joins: []wire.Source{{Addr: s(i), MaskLen: 32, Sparse: true}}}}}
			h.d.Packet(h.now, "eth0", dataplane.PIM, pimPkt(nbr, wire.AllPIMRouters, jp))
		}, func(h *harness) string {
			return fmt.Sprintf("%d PIM entries (interface limit 2000)", len(h.d.pim.r.Entries(h.now)))
		}},
		{"register-new-source", func(h *harness, i int) {
			inner := ip4.Header{TTL: 16, Protocol: 17, Src: s(i), Dst: netip.MustParseAddr("239.1.1.1")}
			h.d.Packet(h.now, "eth0", dataplane.PIM, pimPkt(nbr, netip.MustParseAddr("10.255.0.1"), &wire.Register{Packet: inner.Marshal(make([]byte, 8))}))
		}, func(h *harness) string { return fmt.Sprintf("%d PIM entries", len(h.d.pim.r.Entries(h.now))) }},
		{"register-martian", func(h *harness, i int) {
			inner := ip4.Header{TTL: 16, Protocol: 17, Src: netip.MustParseAddr("0.0.0.0"), Dst: g(i)}
			h.d.Packet(h.now, "eth0", dataplane.PIM, pimPkt(nbr, netip.MustParseAddr("10.255.0.1"), &wire.Register{Packet: inner.Marshal(make([]byte, 8))}))
		}, func(h *harness) string { return fmt.Sprintf("%d PIM entries", len(h.d.pim.r.Entries(h.now))) }},
		{"igmpv3-new-group", func(h *harness, i int) {
			hd := ip4.Header{TOS: 0xc0, TTL: 1, Protocol: ip4.ProtoIGMP, Src: netip.AddrFrom4([4]byte{10, 0, 1, byte(10 + i%200)}), Dst: netip.MustParseAddr("224.0.0.22"), Options: ip4.OptRouterAlert}
			rep := &igmpwire.V3Report{Records: []igmpwire.GroupRecord{{Type: igmpwire.ChangeToExclude, Group: g(i)}}}
			h.d.Packet(h.now, "eth1", dataplane.IGMP, hd.Marshal(rep.Marshal()))
		}, func(h *harness) string {
			v := h.d.igmp.ifs["eth1"].m
			return fmt.Sprintf("%d groups (max-groups 1000), %d refused", len(v.Groups(h.now)), v.Stats().GroupLimit)
		}},
		{"malformed-pim", func(h *harness, i int) {
			p := pimPkt(nbr, wire.AllPIMRouters, wire.NewHello(105, 500, 2500, false, 1, 1, nil))
			p[len(p)-1-(i%8)] ^= 0xff // a bad checksum or option
			h.d.Packet(h.now, "eth0", dataplane.PIM, p)
		}, func(h *harness) string { return fmt.Sprintf("%d malformed counted", h.d.pim.malformed) }},
	}
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			var state string
			for range b.N {
				b.StopTimer()
				h := newHarness(b, cfg)
				h.hello("eth0", nbr.String())
				b.StartTimer()
				for i := range n {
					k.send(h, i)
					if i%64 == 63 {
						h.d.EndBurst(h.now) // the loop closes a burst every 256 events or when the queue runs dry
					}
				}
				h.d.EndBurst(h.now)
				b.StopTimer()
				state = k.state(h)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
			b.Logf("%s: after %d messages: %s", k.name, n, state)
		})
	}
}
