package rpf

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMatchPicksTheRouteTheLookupUsed(t *testing.T) {
	gw1, gw2 := netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("10.2.0.2")
	cands := []Candidate{
		{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Gateway: gw1, LinkIndex: 2, Protocol: protoBoot},
		{Prefix: netip.MustParsePrefix("10.9.0.0/16"), Gateway: gw1, LinkIndex: 2, Protocol: protoOSPF, Metric: 20},
		{Prefix: netip.MustParsePrefix("10.9.0.0/16"), Gateway: gw2, LinkIndex: 3, Protocol: protoOSPF, Metric: 30},
		{Prefix: netip.MustParsePrefix("10.9.1.0/24"), Gateway: gw2, LinkIndex: 3, Protocol: protoBGP, Metric: 0},
		{Prefix: netip.MustParsePrefix("10.9.2.0/24"), LinkIndex: 2, Protocol: protoOSPF, Type: unix.RTN_BLACKHOLE},
		{Prefix: netip.MustParsePrefix("10.1.0.0/24"), LinkIndex: 2, Protocol: protoKernel},
	}
	for _, c := range []struct {
		dst   string
		link  int
		gw    netip.Addr
		proto int
		met   uint32
		ok    bool
	}{
		{"10.9.3.3", 2, gw1, protoOSPF, 20, true}, // the /16 via link 2, not the default
		{"10.9.3.3", 3, gw2, protoOSPF, 30, true}, // the other /16 when the lookup went out link 3
		{"10.9.1.1", 3, gw2, protoBGP, 0, true},   // a longer prefix wins
		{"10.9.2.2", 2, gw1, protoOSPF, 20, true}, // a blackhole is no answer: the /16
		{"10.1.0.7", 2, netip.Addr{}, protoKernel, 0, true},
		{"192.0.2.1", 2, gw1, protoBoot, 0, true},
		{"192.0.2.1", 9, gw1, 0, 0, false},
	} {
		m, ok := Match(cands, netip.MustParseAddr(c.dst), c.link, c.gw)
		if ok != c.ok || ok && (m.Protocol != c.proto || m.Metric != c.met) {
			t.Errorf("%s via link %d: %+v %v", c.dst, c.link, m, ok)
		}
	}
}

func TestProtocolNamesAndPreferences(t *testing.T) {
	for _, c := range []struct {
		proto int
		name  string
		pref  uint32
	}{
		{protoKernel, "connected", 0}, {protoBoot, "kernel", 0}, {protoStatic, "kernel", 0}, {protoZStatic, "static", 1},
		{protoBGP, "bgp", 20}, {protoEIGRP, "eigrp", 90}, {protoOSPF, "ospf", 110}, {protoISIS, "isis", 115}, {protoRIP, "rip", 120},
		{42, "proto 42", 0},
	} {
		if n := ProtocolName(c.proto); n != c.name || Preference(c.proto) != c.pref {
			t.Errorf("proto %d: %s %d", c.proto, n, Preference(c.proto))
		}
	}
}
