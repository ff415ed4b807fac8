package daemon

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"overcast/internal/dataplane"
	"overcast/internal/packet/ip4"
	wire "overcast/internal/packet/pim"
)

// Many sources in one group, at the RP with a receiver: each new source
// (a first packet from a directly connected host, or a Register from a
// DR) must cost the same whatever the number of sources already there.
// The work per source is reported as ns/source at several sizes; linear
// work keeps it flat, work that re-derives the whole group grows with N.
// go test -run XXX -bench BenchmarkSourcesOneGroup ./internal/daemon
func BenchmarkSourcesOneGroup(b *testing.B) {
	const cfg = "pim:\n  rp: [{address: 10.255.0.1}]\ninterfaces:\n  - {name: eth0, pim: true}\n  - {name: eth1, pim: true}\n"
	for _, kind := range []string{"data", "register"} {
		for _, n := range []int{1000, 4000, 16000} {
			b.Run(fmt.Sprintf("%s/%d", kind, n), func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					h := newHarness(b, cfg)
					h.hello("eth0", "10.0.0.2")
					// The sources: a connected subnet on eth0 ("data"), or behind 10.0.0.2.
					h.rt.routes[netip.MustParsePrefix("10.100.0.0/14")] = h.rt.routes[netip.MustParsePrefix("10.0.0.0/24")]
					h.report("eth1", "10.0.1.10", asm("239.1.1.1"))
					b.StartTimer()
					for i := range n {
						var s netip.Addr
						if kind == "data" {
							s = netip.AddrFrom4([4]byte{10, 100 + byte(i>>16), byte(i >> 8), byte(i)})
							h.d.Upcall(h.now, dataplane.Upcall{Kind: dataplane.NoCache, Iface: "eth0", SG: dataplane.SG{Source: s, Group: netip.MustParseAddr("239.1.1.1")}, IPID: -1})
						} else {
							s = netip.AddrFrom4([4]byte{10, 100 + byte(i>>16), byte(i >> 8), byte(i)})
							inner := ip4.Header{TTL: 16, Protocol: 17, Src: s, Dst: netip.MustParseAddr("239.1.1.1")}
							reg := &wire.Register{Packet: inner.Marshal(make([]byte, 8))}
							hd := ip4.Header{TTL: 64, Protocol: ip4.ProtoPIM, Src: netip.MustParseAddr("10.0.0.2"), Dst: netip.MustParseAddr("10.255.0.1")}
							h.d.Packet(h.now, "eth0", dataplane.PIM, hd.Marshal(reg.Marshal()))
						}
						h.d.EndBurst(h.now)
						h.now = h.now.Add(time.Millisecond) // within the default register rate
					}
					b.StopTimer()
					if got := len(h.d.flows); kind == "data" && got < n {
						b.Fatalf("%d flows of %d sources", got, n)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/source")
			})
		}
	}
}
