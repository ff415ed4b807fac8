package mcast

import (
	"net/netip"
	"testing"
	"time"
)

func TestStreamAccounting(t *testing.T) {
	s := &Stream{seen: map[uint64]bool{}}
	t0 := time.Unix(1000, 0)
	for _, seq := range []uint64{0, 1, 2, 4, 3, 3, 7, 8} { // 5,6 lost; 3 late and duplicated
		s.Packets++
		s.account(seq, t0, t0.Add(time.Millisecond))
	}
	if s.Expected != 9 || s.Lost != 2 || s.Dups != 1 || s.Reordered != 1 || s.Gaps != 2 {
		t.Fatalf("%+v", s)
	}
	if s.LatencyMS < 0.99 || s.LatencyMS > 1.01 || s.JitterMS != 0 {
		t.Fatalf("latency %v jitter %v", s.LatencyMS, s.JitterMS)
	}
}

func TestParseGroups(t *testing.T) {
	gs, err := ParseGroups("239.1.1.1+2,239.9.9.9")
	if err != nil || len(gs) != 4 || gs[2] != netip.MustParseAddr("239.1.1.3") || gs[3] != netip.MustParseAddr("239.9.9.9") {
		t.Fatalf("%v %v", gs, err)
	}
	for _, bad := range []string{"10.0.0.1", "239.255.255.255+1", "x", "239.1.1.1+-1"} {
		if _, err := ParseGroups(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPlanSocketsRespectsKernelLimits(t *testing.T) {
	gs, err := ParseGroups("239.1.0.0+999")
	if err != nil {
		t.Fatal(err)
	}
	var chans []Channel
	for _, g := range gs {
		chans = append(chans, Channel{Group: g})
	}
	// 25 sources of one SSM group, and two more sources of the first ASM group's neighbour.
	ssm := netip.MustParseAddr("232.1.1.1")
	for i := range 25 {
		chans = append(chans, Channel{Group: ssm, Source: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})})
	}
	plan := PlanSockets(chans, 20, 10)
	seen := map[Channel]int{}
	for i, sock := range plan {
		groups := map[netip.Addr]int{}
		for _, ch := range sock {
			seen[ch]++
			groups[ch.Group]++
		}
		if len(groups) > 20 {
			t.Errorf("socket %d holds %d groups", i, len(groups))
		}
		if groups[ssm] > 10 {
			t.Errorf("socket %d holds %d sources of %s", i, groups[ssm], ssm)
		}
	}
	if len(seen) != len(chans) {
		t.Fatalf("planned %d distinct channels, want %d", len(seen), len(chans))
	}
	for ch, n := range seen {
		if n != 1 {
			t.Fatalf("%v planned %d times", ch, n)
		}
	}
	// 1000 groups need 50 sockets; the 25 sources of 232.1.1.1 need three
	// sockets, which can be sockets with room for one more group: none here
	// (all 50 are full), so 3 more.
	if len(plan) != 53 {
		t.Errorf("%d sockets, want 53", len(plan))
	}
}
