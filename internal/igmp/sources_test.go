package igmp

import (
	"maps"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// sourceTimers behaves as the map it replaced, under random operations.
func TestSourceTimersActsAsAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var ss sourceTimers
	m := map[netip.Addr]time.Time{}
	t0 := time.Unix(1000, 0)
	for step := range 20000 {
		a := netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(12))})
		tm := t0.Add(time.Duration(rng.IntN(5)) * time.Second)
		switch rng.IntN(4) {
		case 0, 1:
			ss.set(a, tm)
			m[a] = tm
		case 2:
			ss.del(a)
			delete(m, a)
		case 3:
			cut := t0.Add(time.Duration(rng.IntN(5)) * time.Second)
			ss.deleteIf(func(_ netip.Addr, x time.Time) bool { return x.Before(cut) })
			maps.DeleteFunc(m, func(_ netip.Addr, x time.Time) bool { return x.Before(cut) })
		}
		got := maps.Collect(ss.all())
		if !maps.Equal(got, m) || len(ss) != len(m) {
			t.Fatalf("step %d: %v, want %v", step, got, m)
		}
		_, want := m[a]
		if x, ok := ss.get(a); x != m[a] || ok != want {
			t.Fatalf("step %d: get(%v) = %v %v", step, a, x, ok)
		}
	}
}
