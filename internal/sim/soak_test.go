package sim

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"overcast/internal/pim"
)

// soak churns the seed lab for rounds of virtual time: receivers join and
// leave (ASM and SSM), sources start and stop, the short link flaps,
// routers restart over their forwarders, time jumps from a millisecond
// to over a minute. After every quiet spell each active source's packet
// reaches exactly the hosts that want it, once. At the end, with every
// receiver gone and every source stopped, ten quiet minutes leave no
// state anywhere: no PIM entry, flow, kernel route or held join. A long
// soak also samples the live heap every 100 rounds: it must stay flat.
func soak(t testing.TB, rounds int, seed uint64) {
	var heap []uint64
	sampleHeap := func() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = append(heap, ms.HeapAlloc)
	}
	r := rand.New(rand.NewPCG(seed, 99))
	l := newSeedLab(t, pim.Config{})
	n := l.n
	groups := []netip.Addr{G, netip.MustParseAddr("239.2.2.2"), netip.MustParseAddr("232.1.1.1")}
	lans := []*LAN{l.rcvLAN, l.r2LAN}
	hosts := []netip.Addr{l.rcv, l.rcv2}
	joined := map[[2]int]bool{} // (host, group)
	active := map[int]bool{}    // groups the source sends to
	quiet := func() {
		// Long enough for what PIM itself takes: after the RP restarts,
		// a first hop in Register-Stop registers again when its
		// suppression runs out (up to a minute, RFC 7761 4.4.1).
		n.Run(70 * time.Second)
		for gi := range groups {
			if !active[gi] {
				continue
			}
			// The first packets of a source may go while trees form (and
			// while a route the kernel kept waits for the next counter
			// poll, a second, to tell PIM its source sends again).
			for range 3 {
				n.SendData(l.srcLAN, l.src, groups[gi])
				n.Run(time.Second)
			}
			got := n.SendData(l.srcLAN, l.src, groups[gi])
			n.Run(time.Millisecond)
			for hi, h := range hosts {
				want := 0
				if joined[[2]int{hi, gi}] {
					want = 1
				}
				if got[h] != want {
					for _, nd := range []*Node{l.r1, l.r2, l.r3} {
						m, _ := show(t, nd, "ip", "mroute")
						j, _ := show(t, nd, "ip", "pim", "join")
						ig, _ := show(t, nd, "ip", "igmp", "groups")
						t.Logf("%s:\n%s\n%s\n%s", nd.Name, m, j, ig)
					}
					t.Fatalf("seed %d: %s after a quiet spell: %s got %d copies, want %d (joined %v, active %v)", seed, groups[gi], h, got[h], want, joined, active)
				}
			}
		}
	}
	for round := range rounds {
		op := r.IntN(7)
		if os.Getenv("OVERCAST_SOAK_DEBUG") != "" {
			t.Logf("round %d op %d at %v", round, op, n.Now.Sub(t0))
		}
		switch op {
		case 0, 1: // a receiver joins or leaves
			hi, gi := r.IntN(len(hosts)), r.IntN(len(groups))
			k := [2]int{hi, gi}
			if os.Getenv("OVERCAST_SOAK_DEBUG") != "" {
				t.Logf("  host %s group %s joined %v -> %v", hosts[hi], groups[gi], joined[k], !joined[k])
			}
			if joined[k] {
				n.HostLeave(lans[hi], hosts[hi], groups[gi])
				delete(joined, k)
			} else {
				var inc []netip.Addr
				if gi == 2 { // SSM
					inc = []netip.Addr{l.src}
				}
				n.HostJoin(lans[hi], hosts[hi], groups[gi], inc...)
				joined[k] = true
			}
		case 2: // a source starts or stops
			gi := r.IntN(len(groups))
			active[gi] = !active[gi]
		case 3: // the short link flaps
			n.SetLAN(l.r1r3, !l.r1r3.Up)
		case 4: // a router restarts over its forwarder
			nd := []*Node{l.r1, l.r2, l.r3}[r.IntN(3)]
			if os.Getenv("OVERCAST_SOAK_DEBUG") != "" {
				t.Logf("  restart %s", nd.Name)
			}
			n.Restart(nd)
		case 5: // time jumps, sources sending
			for range 1 + r.IntN(20) {
				for gi := range groups {
					if active[gi] {
						n.SendData(l.srcLAN, l.src, groups[gi])
					}
				}
				n.Run(time.Duration(1+r.IntN(5000)) * time.Millisecond)
			}
		case 6:
			n.Run(time.Duration(r.IntN(80)) * time.Second)
		}
		if round%5 == 4 {
			if !l.r1r3.Up {
				n.SetLAN(l.r1r3, true)
			}
			quiet()
		}
		if rounds >= 500 && round%100 == 99 {
			sampleHeap()
		}
	}
	if len(heap) >= 5 {
		// Flat: the last third never above the first two thirds' peak
		// by more than a quarter and 2 MB (churn moves state up and down).
		cut := len(heap) * 2 / 3
		early, late := slices.Max(heap[:cut]), slices.Max(heap[cut:])
		t.Logf("seed %d: live heap over %d rounds (every 100): %.1f MB peak in the first two thirds, %.1f MB in the last", seed, rounds, float64(early)/(1<<20), float64(late)/(1<<20))
		if late > early+early/4+2<<20 {
			t.Errorf("seed %d: the live heap grows: %.1f MB early, %.1f MB late (samples %v)", seed, float64(early)/(1<<20), float64(late)/(1<<20), heap)
		}
	}
	// Everyone goes: nothing may stay.
	for k := range joined {
		n.HostLeave(lans[k[0]], hosts[k[0]], groups[k[1]])
	}
	n.Run(10 * time.Minute)
	for _, nd := range []*Node{l.r1, l.r2, l.r3} {
		if e, rs, held := len(nd.R.Entries(n.Now)), len(nd.FW.Routes), nd.R.Held(); e != 0 || rs != 0 || held != 0 {
			t.Errorf("seed %d: %s after everyone left and ten quiet minutes: %d PIM entries, %d kernel routes, %d held joins", seed, nd.Name, e, rs, held)
		}
	}
}

// A short soak in every suite run, over a few seeds.
func TestSoakShort(t *testing.T) {
	for seed := range uint64(4) {
		soak(t, 60, seed)
	}
}

// make soak: OVERCAST_SOAK_ROUNDS rounds (default 2,000) per seed.
func BenchmarkSoak(b *testing.B) {
	rounds := 2000
	if s, err := strconv.Atoi(os.Getenv("OVERCAST_SOAK_ROUNDS")); err == nil && s > 0 {
		rounds = s
	}
	for i := range b.N {
		soak(b, rounds, uint64(100+i))
	}
	b.ReportMetric(float64(rounds), "rounds/seed")
	fmt.Fprintf(os.Stderr, "soak: %d seeds x %d rounds\n", b.N, rounds)
}
