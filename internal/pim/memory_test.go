package pim

import (
	"net/netip"
	"runtime"
	"testing"
)

// oneRoute routes everything out of "up" via one neighbour.
type oneRoute struct{}

func (oneRoute) Lookup(netip.Addr) (RPF, bool) {
	return RPF{Iface: "up", Neighbor: netip.MustParseAddr("10.0.0.1")}, true
}

// BenchmarkMemoryPerSSMChannel reports the heap a last-hop router holds
// per SSM channel (IGMPv3 INCLUDE {S} on one LAN): its (S,G) entry with
// its indexes and timers. At 10,000 channels this is most of the daemon's
// live heap (the benchmark against FRR in test/e2e measures the whole).
func BenchmarkMemoryPerSSMChannel(b *testing.B) {
	const n = 10000
	src := netip.MustParseAddr("10.0.1.10")
	for b.Loop() {
		r := NewRouter(Config{}, oneRoute{}, noJitter)
		r.AddInterface(t0, "up", IfConfig{}, netip.MustParseAddr("10.0.0.2"), nil, 1)
		r.AddInterface(t0, "lan", IfConfig{}, netip.MustParseAddr("10.0.2.1"), nil, 2)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			g := netip.AddrFrom4([4]byte{232, 20, byte(i >> 8), byte(i)})
			r.SetMembership(t0, "lan", g, false, []netip.Addr{src}, nil)
		}
		r.FlushJoinPrunes()
		r.NextDeadline()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if len(r.Flows()) != n {
			b.Fatalf("%d flows", len(r.Flows()))
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/channel")
		runtime.KeepAlive(r)
	}
}
