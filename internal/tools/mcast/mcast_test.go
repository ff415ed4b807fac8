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
