package pim

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestRPSetLongestPrefixOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for seed := range 200 {
		var ms []RPMapping
		seen := map[netip.Prefix]bool{}
		for k := range r.IntN(6) + 1 {
			bits := 4 + r.IntN(25)
			a := netip.AddrFrom4([4]byte{byte(224 + r.IntN(16)), byte(r.IntN(4)), byte(r.IntN(2)), byte(r.IntN(256))})
			p := netip.PrefixFrom(a, bits).Masked()
			if seen[p] {
				continue
			}
			seen[p] = true
			ms = append(ms, RPMapping{Range: p, RP: netip.AddrFrom4([4]byte{10, 255, 0, byte(k + 1)})})
		}
		s, err := NewRPSet(ms, []netip.Prefix{DefaultSSMRange})
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			g := netip.AddrFrom4([4]byte{byte(224 + r.IntN(16)), byte(r.IntN(4)), byte(r.IntN(2)), byte(r.IntN(256))})
			// Oracle: scan every mapping, keep the longest match.
			var want netip.Addr
			best := -1
			for _, m := range ms {
				if m.Range.Contains(g) && m.Range.Bits() > best {
					best, want = m.Range.Bits(), m.RP
				}
			}
			if DefaultSSMRange.Contains(g) || g.As4()[0] == 224 && g.As4()[1] == 0 && g.As4()[2] == 0 {
				want = netip.Addr{}
			}
			got, ok := s.RP(g)
			if got != want || ok != want.IsValid() {
				t.Fatalf("seed %d: RP(%s) = %s %v, oracle %s; mappings %v", seed, g, got, ok, want, ms)
			}
		}
	}
}

func TestRPSetValidation(t *testing.T) {
	rp := netip.MustParseAddr("10.255.0.2")
	for name, ms := range map[string][]RPMapping{
		"unicast range": {{netip.MustParsePrefix("10.0.0.0/8"), rp}},
		"too wide":      {{netip.MustParsePrefix("0.0.0.0/0"), rp}},
		"multicast RP":  {{netip.MustParsePrefix("239.0.0.0/8"), netip.MustParseAddr("239.1.1.1")}},
		"twice":         {{netip.MustParsePrefix("239.0.0.0/8"), rp}, {netip.MustParsePrefix("239.1.0.0/8"), rp}},
	} {
		if _, err := NewRPSet(ms, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s, err := NewRPSet([]RPMapping{{netip.MustParsePrefix("224.0.0.0/4"), rp}}, []netip.Prefix{DefaultSSMRange})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.RP(netip.MustParseAddr("232.1.1.1")); ok || !s.IsSSM(netip.MustParseAddr("232.1.1.1")) {
		t.Error("SSM group got an RP")
	}
	if got, ok := s.RP(netip.MustParseAddr("239.1.1.1")); !ok || got != rp {
		t.Error("239.1.1.1 has no RP")
	}
}

func TestAssertMetricOrder(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	spt := AssertMetric{Preference: 110, Metric: 20, Addr: a("10.0.0.1")}
	cases := []struct {
		name string
		x, y AssertMetric
	}{
		{"SPT beats RPT whatever the metric", AssertMetric{Preference: 200, Metric: 99, Addr: a("10.0.0.1")}, AssertMetric{RPT: true, Addr: a("10.0.0.9")}},
		{"lower preference", AssertMetric{Preference: 1, Metric: 99, Addr: a("10.0.0.1")}, spt},
		{"lower metric", AssertMetric{Preference: 110, Metric: 10, Addr: a("10.0.0.1")}, spt},
		{"higher address on a tie", AssertMetric{Preference: 110, Metric: 20, Addr: a("10.0.0.2")}, spt},
		{"anything beats a cancel", AssertMetric{RPT: true, Preference: 1 << 30, Metric: 1 << 31, Addr: a("1.1.1.1")}, infiniteMetric},
	}
	for _, c := range cases {
		if !c.x.Better(c.y) || c.y.Better(c.x) {
			t.Errorf("%s: %+v should beat %+v", c.name, c.x, c.y)
		}
	}
	if spt.Better(spt) {
		t.Error("a metric is not better than itself")
	}
}
