package daemon

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	igmpwire "overcast/internal/packet/igmp"
)

// BenchmarkMemoryPerSSMChannel: the whole daemon's heap per SSM channel
// joined by a receiver at a last hop (IGMP, PIM, flows, MRIB, reconciler;
// the fake forwarder's copy of each route included, which on a host is
// the kernel's). go test -run XXX -bench MemoryPerSSMChannel ./internal/daemon/
func BenchmarkMemoryPerSSMChannel(b *testing.B) {
	const n = 10000
	for b.Loop() {
	}
	h := pimHarness(b, "10.255.0.11")
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	src := []netip.Addr{netip.MustParseAddr("10.9.0.5")}
	for i := range n {
		g := netip.MustParseAddr(fmt.Sprintf("232.1.%d.%d", i/250, i%250+1))
		h.report("eth0", "10.0.0.10", igmpwire.GroupRecord{Type: igmpwire.AllowNewSources, Group: g, Sources: src})
		if i%256 == 0 {
			h.io.Take()
		}
	}
	h.io.Take()
	runtime.GC()
	runtime.ReadMemStats(&m1)
	if h.d.rib.Len() != n || len(h.fw.Routes) != n {
		b.Fatalf("%d MRIB entries, %d routes, want %d", h.d.rib.Len(), len(h.fw.Routes), n)
	}
	b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/n, "B/channel")
	runtime.KeepAlive(h)
}
