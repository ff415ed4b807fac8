package sim

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"overcast/internal/dataplane"
	wire "overcast/internal/packet/pim"
	"overcast/internal/pim"
)

var t0 = time.Unix(1_700_000_000, 0)

func rpset(t testing.TB, rp string) *pim.RPSet {
	var ms []pim.RPMapping
	if rp != "" {
		ms = append(ms, pim.RPMapping{Range: netip.MustParsePrefix("224.0.0.0/4"), RP: netip.MustParseAddr(rp)})
	}
	s, err := pim.NewRPSet(ms, []netip.Prefix{pim.DefaultSSMRange})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// seedLab is the lab of the issue and the seeds:
//
//	src --- R1 --(10)-- R2 (RP) --(10)-- R3 --- rcv
//	         \           |               /
//	          \        rcv2             /
//	           `--------(5)------------'
type seedLab struct {
	n                     *Net
	r1, r2, r3            *Node
	srcLAN, rcvLAN, r2LAN *LAN
	r1r2, r2r3, r1r3      *LAN
	src, rcv, rcv2        netip.Addr
}

func newSeedLab(t testing.TB, cfg pim.Config) *seedLab {
	n := New(t0, 1)
	l := &seedLab{n: n}
	l.srcLAN = n.AddLAN("src", "10.0.1.0/24", 1)
	l.rcvLAN = n.AddLAN("rcv", "10.0.3.0/24", 1)
	l.r2LAN = n.AddLAN("rcv2", "10.0.2.0/24", 1)
	l.r1r2 = n.AddLAN("r1r2", "10.1.12.0/24", 10)
	l.r2r3 = n.AddLAN("r2r3", "10.1.23.0/24", 10)
	l.r1r3 = n.AddLAN("r1r3", "10.1.13.0/24", 5)
	cfg.RPs = rpset(t, "10.255.0.2")
	l.r1 = n.AddRouter("R1", "10.255.0.1", cfg)
	l.r2 = n.AddRouter("R2", "10.255.0.2", cfg)
	l.r3 = n.AddRouter("R3", "10.255.0.3", cfg)
	ifc := pim.IfConfig{}
	n.Connect(l.r1, "src", l.srcLAN, ifc)
	n.Connect(l.r1, "r1r2", l.r1r2, ifc)
	n.Connect(l.r1, "r1r3", l.r1r3, ifc)
	n.Connect(l.r2, "r1r2", l.r1r2, ifc)
	n.Connect(l.r2, "r2r3", l.r2r3, ifc)
	n.Connect(l.r2, "rcv2", l.r2LAN, ifc)
	n.Connect(l.r3, "r2r3", l.r2r3, ifc)
	n.Connect(l.r3, "r1r3", l.r1r3, ifc)
	n.Connect(l.r3, "rcv", l.rcvLAN, ifc)
	l.src = n.AddHost(l.srcLAN)
	l.rcv = n.AddHost(l.rcvLAN)
	l.rcv2 = n.AddHost(l.r2LAN)
	n.Run(adjacency)
	return l
}

var G = netip.MustParseAddr("239.1.1.1")

// stream sends k packets 1 ms apart and checks each host got exactly one copy.
func (l *seedLab) stream(t *testing.T, k int, hosts ...netip.Addr) {
	t.Helper()
	for i := range k {
		got := l.n.SendData(l.srcLAN, l.src, G)
		for _, h := range hosts {
			if got[h] != 1 {
				t.Fatalf("packet %d: %s got %d copies (%v)", i, h, got[h], got)
			}
		}
		l.n.Run(time.Millisecond)
	}
}

func TestSharedTreeThenSPTWithoutLossOrDuplicates(t *testing.T) {
	l := newSeedLab(t, pim.Config{})
	n := l.n
	n.HostJoin(l.rcvLAN, l.rcv, G)
	n.HostJoin(l.r2LAN, l.rcv2, G)
	// R3 joined (*,G) toward the RP.
	if iif, _, _ := l.r3.R.Route(l.src, G); iif != "r2r3" {
		t.Fatalf("R3's (S,G) input before any data: %q, want r2r3 (toward the RP)", iif)
	}
	for i := range 50 {
		got := n.SendData(l.srcLAN, l.src, G)
		if got[l.rcv] != 1 || got[l.rcv2] != 1 || len(got) != 2 {
			t.Fatalf("packet %d: copies %v, want exactly one each at %s and %s", i, got, l.rcv, l.rcv2)
		}
		n.Run(time.Millisecond)
	}
	// R3 is on the SPT via R1-R3, and R2 no longer sends (S,G) to R3.
	if iif, _, _ := l.r3.R.Route(l.src, G); iif != "r1r3" {
		t.Errorf("R3 input %q, want r1r3 (the SPT)", iif)
	}
	if _, oifs, _ := l.r2.R.Route(l.src, G); fmt.Sprint(oifs) != "[rcv2]" {
		t.Errorf("R2 outgoing %v, want only rcv2: the (S,G,rpt) prune from R3 took r2r3 off", oifs)
	}
	// R1 registers no more: the RP sent Register-Stop once native traffic arrived.
	if _, oifs, _ := l.r1.R.Route(l.src, G); fmt.Sprint(oifs) != "[r1r2 r1r3]" {
		t.Errorf("R1 outgoing %v, want [r1r2 r1r3] without the register VIF", oifs)
	}
	// The state holds over periodic refreshes.
	for i := range 5 {
		n.Run(70 * time.Second)
		got := n.SendData(l.srcLAN, l.src, G)
		if got[l.rcv] != 1 || got[l.rcv2] != 1 {
			t.Fatalf("after %d minutes: %v", i+1, got)
		}
	}
}

func TestLinkFailureReconverges(t *testing.T) {
	l := newSeedLab(t, pim.Config{})
	n := l.n
	n.HostJoin(l.rcvLAN, l.rcv, G)
	l.stream(t, 5, l.rcv)
	if iif, _, _ := l.r3.R.Route(l.src, G); iif != "r1r3" {
		t.Fatalf("R3 not on the SPT: %q", iif)
	}
	n.SetLAN(l.r1r3, false)
	lost := 0
	for i := range 10 {
		got := n.SendData(l.srcLAN, l.src, G)
		if got[l.rcv] > 1 {
			t.Fatalf("packet %d duplicated", i)
		}
		if got[l.rcv] == 0 {
			lost++
		}
	}
	if lost > 1 {
		t.Errorf("%d packets lost after the link failed; routing moved at once, so at most the one that re-learns the input", lost)
	}
	if iif, _, _ := l.r3.R.Route(l.src, G); iif != "r2r3" {
		t.Errorf("R3 input %q after R1-R3 failed, want r2r3", iif)
	}
	n.SetLAN(l.r1r3, true)
	n.Run(adjacency)
	l.stream(t, 3, l.rcv)
	if iif, _, _ := l.r3.R.Route(l.src, G); iif != "r1r3" {
		t.Errorf("R3 input %q after R1-R3 came back, want r1r3", iif)
	}
	if got := n.SendData(l.srcLAN, l.src, G); got[l.rcv] != 1 {
		t.Errorf("after recovery: %v", got)
	}
}

func TestSSMWithoutRP(t *testing.T) {
	l := newSeedLab(t, pim.Config{})
	n := l.n
	for _, nd := range []*Node{l.r1, l.r2, l.r3} {
		n.SetPIM(nd, pim.Config{RPs: rpset(t, "")}) // a reload without the RP
		if rp, ok := nd.R.RP(G); ok {
			t.Fatalf("%s still has RP %s after the reload", nd.Name, rp)
		}
	}
	g := netip.MustParseAddr("232.1.1.1")
	n.HostJoin(l.rcvLAN, l.rcv, g, l.src)
	for i := range 5 {
		if got := n.SendData(l.srcLAN, l.src, g); got[l.rcv] != 1 || len(got) != 1 {
			t.Fatalf("packet %d: %v", i, got)
		}
	}
	// An ASM join in the SSM range does nothing (and is reported).
	res := l.r2.R.SetMembership(n.Now, "rcv2", g, true, nil, nil)
	found := false
	for _, e := range res.Events {
		found = found || e.Kind == pim.ASMJoinInSSMRange
	}
	if !found {
		t.Error("ASM join in the SSM range not reported")
	}
}

func TestSPTInfinityStaysOnSharedTree(t *testing.T) {
	l := newSeedLab(t, pim.Config{SwitchToSPT: func(netip.Addr) pim.SPTThreshold { return pim.SPTThreshold{Never: true} }})
	n := l.n
	n.HostJoin(l.rcvLAN, l.rcv, G)
	for i := range 20 {
		if got := n.SendData(l.srcLAN, l.src, G); got[l.rcv] != 1 {
			t.Fatalf("packet %d: %v", i, got)
		}
	}
	if iif, _, _ := l.r3.R.Route(l.src, G); iif != "r2r3" {
		t.Errorf("R3 input %q with SPT threshold infinity, want r2r3", iif)
	}
}

func TestLeavePrunesTheTree(t *testing.T) {
	l := newSeedLab(t, pim.Config{})
	n := l.n
	n.HostJoin(l.rcvLAN, l.rcv, G)
	l.stream(t, 5, l.rcv)
	n.HostLeave(l.rcvLAN, l.rcv, G)
	n.Run(adjacency)
	// The SPT branch is pruned at once (the first hop's registers were
	// already stopped once the RP received natively).
	if _, oifs, _ := l.r1.R.Route(l.src, G); len(oifs) != 0 {
		t.Errorf("R1 forwards to %v after the only receiver left", oifs)
	}
	if got := n.SendData(l.srcLAN, l.src, G); len(got) != 0 {
		t.Errorf("delivered %v with no receivers", got)
	}
	if _, oifs, _ := l.r1.R.Route(l.src, G); len(oifs) != 0 {
		t.Errorf("R1 forwards to %v after another packet", oifs)
	}
}

// A domain of 100 routers on a random connected topology converges,
// delivers exactly once to every receiver, and reconverges after links fail.
func TestHundredRouters(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	n := New(t0, 2)
	const N = 100
	cfg := pim.Config{RPs: rpset(t, "10.255.0.1")}
	nodes := make([]*Node, N)
	for i := range N {
		nodes[i] = n.AddRouter(fmt.Sprintf("R%03d", i), fmt.Sprintf("10.255.%d.%d", i/250, i%250+1), cfg)
	}
	lanID := 0
	link := func(a, b *Node, cost int) *LAN {
		lanID++
		l := n.AddLAN(fmt.Sprintf("l%d", lanID), fmt.Sprintf("10.%d.%d.0/24", 10+lanID/250, lanID%250), cost)
		n.Connect(a, l.Name, l, pim.IfConfig{})
		n.Connect(b, l.Name, l, pim.IfConfig{})
		return l
	}
	var links []*LAN
	for i := 1; i < N; i++ { // a random tree keeps it connected
		links = append(links, link(nodes[i], nodes[r.IntN(i)], 1+r.IntN(10)))
	}
	for range 60 { // plus cross links
		a, b := r.IntN(N), r.IntN(N)
		if a != b {
			links = append(links, link(nodes[a], nodes[b], 1+r.IntN(10)))
		}
	}
	srcLAN := n.AddLAN("srcs", "10.250.0.0/24", 1)
	n.Connect(nodes[57], "srcs", srcLAN, pim.IfConfig{})
	src := n.AddHost(srcLAN)
	type rcv struct {
		l *LAN
		h netip.Addr
	}
	var rcvs []rcv
	for i := range 20 {
		l := n.AddLAN(fmt.Sprintf("rcv%d", i), fmt.Sprintf("10.251.%d.0/24", i), 1)
		n.Connect(nodes[r.IntN(N)], l.Name, l, pim.IfConfig{})
		rcvs = append(rcvs, rcv{l, n.AddHost(l)})
	}
	n.Run(adjacency)
	for _, x := range rcvs {
		n.HostJoin(x.l, x.h, G)
	}
	check := func(when string, allowLoss bool) {
		t.Helper()
		got := n.SendData(srcLAN, src, G)
		for _, x := range rcvs {
			if got[x.h] > 1 || (!allowLoss && got[x.h] != 1) {
				t.Fatalf("%s: receiver %s got %d copies", when, x.h, got[x.h])
			}
		}
	}
	for i := range 10 {
		check(fmt.Sprintf("packet %d", i), false)
	}
	// Fail 15 links that do not partition the network, one at a time.
	failed := 0
	for _, l := range r.Perm(len(links)) {
		if failed == 15 {
			break
		}
		ln := links[l]
		ln.Up, n.spfCache = false, nil
		if !n.connected() {
			ln.Up, n.spfCache = true, nil
			continue
		}
		n.SetLAN(ln, false)
		failed++
		check(fmt.Sprintf("first packet after failure %d", failed), true)
		for i := range 3 {
			check(fmt.Sprintf("failure %d, packet %d", failed, i), false)
		}
	}
	n.Run(5 * time.Minute)
	check("after five quiet minutes", false)
	t.Logf("100 routers, %d LANs: %d control messages", len(n.LANs), n.Sent)
}

// connected says whether every router reaches every other.
func (n *Net) connected() bool {
	var first *Node
	for _, nd := range n.Nodes {
		first = nd
		break
	}
	return len(n.spf(first)) == len(n.Nodes)-1
}

// 2,000 SSM channels joined behind R3: the joins toward R1 are packed into
// few messages, each within the MTU, the periodic refresh sends the same,
// and every channel delivers.
func TestThousandsOfChannels(t *testing.T) {
	l := newSeedLab(t, pim.Config{})
	n := l.n
	type ch struct{ s, g netip.Addr }
	var chans []ch
	for i := range 2000 {
		chans = append(chans, ch{l.src, netip.AddrFrom4([4]byte{232, 1, byte(i >> 8), byte(i)})})
	}
	msgs, bytes, maxSize := 0, 0, 0
	n.Trace = func(from *Node, iface string, m wire.Message, size int) {
		if jp, ok := m.(*wire.JoinPrune); ok && from == l.r3 {
			msgs++
			bytes += size
			maxSize = max(maxSize, size)
			_ = jp
		}
	}
	for _, c := range chans {
		n.Join(l.rcvLAN, c.g, false, c.s) // one IGMPv3 report each
	}
	if maxSize > 1480 {
		t.Fatalf("a join/prune of %d bytes", maxSize)
	}
	triggered := msgs
	msgs = 0
	n.Run(61 * time.Second)
	// A group with one source takes 20 bytes; 14 go to the header and
	// upstream neighbour: the fewest messages that can carry 2,000 is 28.
	if fewest := (2000*20 + (1480 - 14) - 1) / (1480 - 14); msgs > fewest || maxSize > 1480 {
		t.Errorf("periodic refresh of 2,000 joins took %d messages (largest %d bytes)", msgs, maxSize)
	}
	if _, oifs, _ := l.r1.R.Route(l.src, chans[1999].g); fmt.Sprint(oifs) != "[r1r3]" {
		t.Errorf("R1 forwards the last channel to %v", oifs)
	}
	n.members = map[memberKey]map[netip.Addr]bool{}
	for _, c := range chans[:50] {
		n.members[memberKey{l.rcvLAN.Name, c.g}] = map[netip.Addr]bool{l.rcv: true}
		if got := n.SendData(l.srcLAN, l.src, c.g); got[l.rcv] != 1 {
			t.Fatalf("channel %v: %v", c, got)
		}
	}
	t.Logf("2,000 (S,G) joins: %d triggered join/prune messages as they arrived one by one, %d periodic messages, largest %d bytes", triggered, msgs, maxSize)
}

// sharedUpstream has two last hops, D1 and D2, on one LAN x below one
// upstream router U, with a receiver each (joined to G):
//
//	src --- U --- x --- D1 --- l1 (h1)
//	              `---- D2 --- l2 (h2)
type sharedUpstream struct {
	n              *Net
	u, d1, d2      *Node
	srcLAN, l1, l2 *LAN
	src, h1, h2    netip.Addr
}

func newSharedUpstream(t *testing.T, seed uint64, ifc pim.IfConfig) *sharedUpstream {
	n := New(t0, seed)
	cfg := pim.Config{RPs: rpset(t, "10.255.0.1")}
	l := &sharedUpstream{n: n}
	l.u = n.AddRouter("U", "10.255.0.1", cfg)
	l.d1 = n.AddRouter("D1", "10.255.0.11", cfg)
	l.d2 = n.AddRouter("D2", "10.255.0.12", cfg)
	l.srcLAN = n.AddLAN("src", "10.0.1.0/24", 1)
	x := n.AddLAN("x", "10.0.9.0/24", 1)
	l.l1 = n.AddLAN("l1", "10.0.11.0/24", 1)
	l.l2 = n.AddLAN("l2", "10.0.12.0/24", 1)
	n.Connect(l.u, "src", l.srcLAN, ifc)
	n.Connect(l.u, "x", x, ifc)
	n.Connect(l.d1, "x", x, ifc)
	n.Connect(l.d2, "x", x, ifc)
	n.Connect(l.d1, "l1", l.l1, ifc)
	n.Connect(l.d2, "l2", l.l2, ifc)
	l.src, l.h1, l.h2 = n.AddHost(l.srcLAN), n.AddHost(l.l1), n.AddHost(l.l2)
	n.Run(adjacency)
	n.HostJoin(l.l1, l.h1, G)
	n.HostJoin(l.l2, l.h2, G)
	return l
}

// On a LAN with two downstream routers, one router's prune is overridden
// by the other's join (RFC 7761 4.5.2, 4.5.6), so the LAN keeps the flow;
// when the second leaves too, the upstream router prunes after the
// override interval.
func TestLANPruneOverride(t *testing.T) {
	l := newSharedUpstream(t, 3, pim.IfConfig{})
	n, u, d2, srcLAN, l1, l2, src, h1, h2 := l.n, l.u, l.d2, l.srcLAN, l.l1, l.l2, l.src, l.h1, l.h2
	if got := n.SendData(srcLAN, src, G); got[h1] != 1 || got[h2] != 1 {
		t.Fatalf("before: %v", got)
	}
	overrides := 0
	n.Trace = func(from *Node, iface string, m wire.Message, size int) {
		if jp, ok := m.(*wire.JoinPrune); ok && from == d2 && len(jp.Groups) > 0 && len(jp.Groups[0].Joins) > 0 {
			overrides++
		}
	}
	n.HostLeave(l1, h1, G)
	n.Run(5 * time.Second)
	if overrides == 0 {
		t.Error("D2 did not override D1's prune")
	}
	if got := n.SendData(srcLAN, src, G); got[h2] != 1 || got[h1] != 0 {
		t.Fatalf("after D1's prune: %v", got)
	}
	n.Trace = nil
	n.HostLeave(l2, h2, G)
	n.Run(2 * time.Second)
	if _, oifs, _ := u.R.Route(src, G); fmt.Sprint(oifs) != "[x]" {
		t.Fatalf("U pruned before the override interval ran out: %v", oifs)
	}
	n.Run(2 * time.Second)
	if _, oifs, _ := u.R.Route(src, G); len(oifs) != 0 {
		t.Fatalf("U still forwards to %v after both left", oifs)
	}
}

// assertLab has two routers, A and B, that both forward onto the transit
// LAN x, because the downstream routers C and D route toward the source
// through different ones of them:
//
//	src --- R1 --a-- A --.
//	         \            x --- C --- rcvC
//	          `--b-- B --'  `-- D --- rcvD
type assertLab struct {
	n                     *Net
	r1, a, b, c, d        *Node
	srcLAN, x, lanA, lanB *LAN
	lanC, lanD            *LAN
	src, rcvC, rcvD       netip.Addr
}

func newAssertLab(t *testing.T, rp string) *assertLab {
	n := New(t0, 7)
	l := &assertLab{n: n}
	l.srcLAN = n.AddLAN("src", "10.0.1.0/24", 1)
	l.lanA = n.AddLAN("a", "10.1.1.0/24", 10)
	l.lanB = n.AddLAN("b", "10.1.2.0/24", 10)
	l.x = n.AddLAN("x", "10.2.0.0/24", 1)
	l.lanC = n.AddLAN("c", "10.3.1.0/24", 1)
	l.lanD = n.AddLAN("d", "10.3.2.0/24", 1)
	cfg := pim.Config{RPs: rpset(t, rp)}
	l.r1 = n.AddRouter("R1", "10.255.0.1", cfg)
	l.a = n.AddRouter("A", "10.255.0.10", cfg)
	l.b = n.AddRouter("B", "10.255.0.11", cfg)
	l.c = n.AddRouter("C", "10.255.0.20", cfg)
	l.d = n.AddRouter("D", "10.255.0.21", cfg)
	ifc := pim.IfConfig{}
	n.Connect(l.r1, "src", l.srcLAN, ifc)
	n.Connect(l.r1, "a", l.lanA, ifc)
	n.Connect(l.r1, "b", l.lanB, ifc)
	n.Connect(l.a, "up", l.lanA, ifc)
	n.Connect(l.b, "up", l.lanB, ifc)
	n.Connect(l.a, "x", l.x, ifc) // 10.2.0.1
	n.Connect(l.b, "x", l.x, ifc) // 10.2.0.2: wins ties on address
	n.Connect(l.c, "x", l.x, ifc)
	n.Connect(l.d, "x", l.x, ifc)
	n.Connect(l.c, "rcv", l.lanC, ifc)
	n.Connect(l.d, "rcv", l.lanD, ifc)
	for _, p := range []string{"10.0.1.0/24", "10.255.0.1/32"} {
		l.c.Via(p, "A")
		l.d.Via(p, "B")
	}
	l.src = n.AddHost(l.srcLAN)
	l.rcvC = n.AddHost(l.lanC)
	l.rcvD = n.AddHost(l.lanD)
	n.Run(adjacency)
	return l
}

func assertState(nd *Node, k pim.SG, iface string) (pim.AssertState, netip.Addr) {
	for _, v := range nd.R.Entries(nd.net.Now) {
		if v.Key != k {
			continue
		}
		for _, a := range v.Asserts {
			if a.Iface == iface {
				return a.State, a.Winner.Addr
			}
		}
	}
	return pim.AssertNoInfo, netip.Addr{}
}

// exact sends k packets 1 ms apart and fails unless every host got
// exactly one copy of each.
func exact(t *testing.T, n *Net, l *LAN, src, g netip.Addr, k int, hosts ...netip.Addr) {
	t.Helper()
	for i := range k {
		got := n.SendData(l, src, g)
		for _, h := range hosts {
			if got[h] != 1 {
				t.Fatalf("packet %d: %s got %d copies (%v)", i, h, got[h], got)
			}
		}
		n.Run(time.Millisecond)
	}
}

func TestAssertElectsOneForwarderSSM(t *testing.T) {
	l := newAssertLab(t, "")
	n := l.n
	g := netip.MustParseAddr("232.1.1.1")
	n.HostJoin(l.lanC, l.rcvC, g, l.src)
	n.HostJoin(l.lanD, l.rcvD, g, l.src)
	// Both A and B have a join on x, so the first packet goes onto x twice;
	// each sees the other's copy arrive on an outgoing interface and asserts.
	got := n.SendData(l.srcLAN, l.src, g)
	if got[l.rcvC] != 2 || got[l.rcvD] != 2 {
		t.Fatalf("first packet before the assert: %v, want two copies each (A and B both forward)", got)
	}
	k := pim.SG{S: l.src, G: g}
	xB := l.b.Ports["x"].Addr
	if st, w := assertState(l.a, k, "x"); st != pim.AssertLoser || w != xB {
		t.Fatalf("A: assert %v winner %v, want Loser to %v (equal metrics, higher address)", st, w, xB)
	}
	if st, _ := assertState(l.b, k, "x"); st != pim.AssertWinner {
		t.Fatalf("B: assert %v, want Winner", st)
	}
	if _, oifs, _ := l.a.R.Route(l.src, g); len(oifs) != 0 {
		t.Errorf("A (loser) still forwards to %v", oifs)
	}
	// C heard the asserts and moved its join to the winner (RPF' = B).
	for _, v := range l.c.R.Entries(n.Now) {
		if v.Key == k && v.UpNeighbor != xB {
			t.Errorf("C's upstream neighbour %v, want the assert winner %v", v.UpNeighbor, xB)
		}
	}
	exact(t, n, l.srcLAN, l.src, g, 20, l.rcvC, l.rcvD)
	// The election holds across refreshes, hold times and assert timers.
	for i := range 8 {
		n.Run(70 * time.Second)
		exact(t, n, l.srcLAN, l.src, g, 1, l.rcvC, l.rcvD)
		// C pruned A when it moved to B, so A may forget the assert, but
		// it must not forward onto x again.
		if _, oifs, _ := l.a.R.Route(l.src, g); len(oifs) != 0 {
			t.Fatalf("after %d x 70 s A forwards to %v", i+1, oifs)
		}
	}

	// The winner loses its path to the source: its route now points out x,
	// it cannot forward onto x any more and cancels; A takes over and C and
	// D join A.
	n.SetLAN(l.lanB, false)
	n.Run(time.Millisecond)
	if st, _ := assertState(l.a, k, "x"); st == pim.AssertLoser {
		t.Fatalf("A still a loser after B cancelled")
	}
	exact(t, n, l.srcLAN, l.src, g, 20, l.rcvC, l.rcvD)
	if _, oifs, _ := l.a.R.Route(l.src, g); fmt.Sprint(oifs) != "[x]" {
		t.Errorf("A forwards to %v after taking over, want [x]", oifs)
	}
}

func TestAssertOnSharedTree(t *testing.T) {
	l := newAssertLab(t, "10.255.0.1")
	n := l.n
	n.HostJoin(l.lanC, l.rcvC, G)
	n.HostJoin(l.lanD, l.rcvD, G)
	// Duplicates are allowed only until the asserts (first (*,G), then
	// (S,G) once C and D join the SPT) have run.
	for range 5 {
		n.SendData(l.srcLAN, l.src, G)
		n.Run(time.Millisecond)
	}
	n.Run(10 * time.Millisecond)
	exact(t, n, l.srcLAN, l.src, G, 50, l.rcvC, l.rcvD)
	xa, xb := 0, 0
	for _, nd := range []*Node{l.a, l.b} {
		_, oifs, _ := nd.R.Route(l.src, G)
		if fmt.Sprint(oifs) == "[x]" {
			if nd == l.a {
				xa++
			} else {
				xb++
			}
		}
	}
	if xa+xb != 1 {
		t.Errorf("forwarders onto x: A %d, B %d, want exactly one", xa, xb)
	}
	for i := range 6 {
		n.Run(70 * time.Second)
		exact(t, n, l.srcLAN, l.src, G, 3, l.rcvC, l.rcvD)
		_ = i
	}
}

func TestSPTThresholds(t *testing.T) {
	th := func(x pim.SPTThreshold) pim.Config {
		return pim.Config{SwitchToSPT: func(netip.Addr) pim.SPTThreshold { return x }}
	}
	// 1,000-byte packets 1 ms apart: 8,000 kbps.
	for _, c := range []struct {
		name     string
		th       pim.SPTThreshold
		switchAt int // packets before R3 is on the SPT; -1 never
	}{
		{"packets", pim.SPTThreshold{Packets: 200}, 200},
		{"rate below", pim.SPTThreshold{Kbps: 9000}, -1},
		{"rate above", pim.SPTThreshold{Kbps: 7000}, 1000}, // measured over the first second
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newSeedLab(t, th(c.th))
			n := l.n
			n.HostJoin(l.rcvLAN, l.rcv, G)
			switched := -1
			for i := range 1500 {
				got := n.SendData(l.srcLAN, l.src, G)
				if got[l.rcv] != 1 {
					t.Fatalf("packet %d: %v", i, got)
				}
				if iif, _, _ := l.r3.R.Route(l.src, G); iif == "r1r3" && switched < 0 {
					switched = i + 1
				}
				// R3 measures the source (the daemon reads its counters
				// each second) exactly until it crosses the threshold.
				measuring := slices.Contains(l.r3.R.Measuring(n.Now), pim.SG{S: l.src, G: G})
				if _, crossed := l.r3.R.FlowFlags(l.src, G); measuring == crossed || measuring && switched >= 0 {
					t.Fatalf("packet %d: R3 measuring=%v, threshold crossed=%v, switched after %d", i, measuring, crossed, switched)
				}
				n.Run(time.Millisecond)
			}
			switch {
			case c.switchAt < 0 && switched >= 0:
				t.Errorf("switched to the SPT after %d packets; threshold %v should keep the shared tree", switched, c.th)
			case c.switchAt >= 0 && (switched < c.switchAt || switched > c.switchAt+5):
				t.Errorf("switched after %d packets, want about %d (threshold %v)", switched, c.switchAt, c.th)
			}
		})
	}
}

// On a LAN with two downstream routers joined to the same upstream
// neighbour, each one's periodic join suppresses the other's (RFC 7761
// 4.5.7), so the LAN carries about one join per period instead of two;
// state upstream never lapses. With every router tracking joins (T bit)
// nobody suppresses.
func TestLANJoinSuppression(t *testing.T) {
	for _, tc := range []struct {
		tracking bool
		min, max int
	}{{false, 9, 12}, {true, 19, 22}} {
		l := newSharedUpstream(t, 5, pim.IfConfig{TrackingSupport: tc.tracking})
		n, u, d1, d2, srcLAN, src, h1, h2 := l.n, l.u, l.d1, l.d2, l.srcLAN, l.src, l.h1, l.h2
		n.Run(5 * time.Second)
		joins := map[string]int{}
		n.Trace = func(from *Node, iface string, m wire.Message, size int) {
			if jp, ok := m.(*wire.JoinPrune); ok && (from == d1 || from == d2) {
				for _, gs := range jp.Groups {
					if gs.Group.Prefix.Addr() == G && len(gs.Joins) > 0 {
						joins[from.Name]++
					}
				}
			}
		}
		n.Run(10 * time.Minute)
		n.Trace = nil
		total := joins["D1"] + joins["D2"]
		t.Logf("tracking=%v: periodic joins in 10 minutes: %v", tc.tracking, joins)
		if total < tc.min || total > tc.max {
			t.Errorf("tracking=%v: %d periodic joins in 10 minutes (%v), want %d..%d", tc.tracking, total, joins, tc.min, tc.max)
		}
		if got := n.SendData(srcLAN, src, G); got[h1] != 1 || got[h2] != 1 {
			t.Fatalf("tracking=%v: after 10 minutes of suppression: %v", tc.tracking, got)
		}
		if _, oifs, _ := u.R.Route(src, G); fmt.Sprint(oifs) != "[x]" {
			t.Fatalf("tracking=%v: U's state lapsed: %v", tc.tracking, oifs)
		}
	}
}

// A receiver's IGMPv3 (S,G) join crosses three daemons hop by hop: each
// daemon's forwarder holds the (S,G) route toward the receiver before the
// source sends anything, and the first packet arrives exactly once.
//
//	src --- A --- B --- C --- rcv
func TestJoinCrossesThreeDaemons(t *testing.T) {
	n := New(t0, 11)
	cfg := pim.Config{RPs: rpset(t, "")}
	a, b, c := n.AddRouter("A", "10.255.0.1", cfg), n.AddRouter("B", "10.255.0.2", cfg), n.AddRouter("C", "10.255.0.3", cfg)
	srcLAN, ab, bc, rcvLAN := n.AddLAN("src", "10.0.1.0/24", 1), n.AddLAN("ab", "10.1.1.0/24", 1), n.AddLAN("bc", "10.1.2.0/24", 1), n.AddLAN("rcv", "10.0.3.0/24", 1)
	n.Connect(a, "src", srcLAN, pim.IfConfig{})
	n.Connect(a, "ab", ab, pim.IfConfig{})
	n.Connect(b, "ab", ab, pim.IfConfig{})
	n.Connect(b, "bc", bc, pim.IfConfig{})
	n.Connect(c, "bc", bc, pim.IfConfig{})
	n.Connect(c, "rcv", rcvLAN, pim.IfConfig{})
	src, rcv := n.AddHost(srcLAN), n.AddHost(rcvLAN)
	n.Run(adjacency)
	g := netip.MustParseAddr("232.5.5.5")
	n.HostJoin(rcvLAN, rcv, g, src)
	k := dataplane.SG{Source: src, Group: g}
	for _, x := range []struct {
		nd       *Node
		iif, oif string
	}{{a, "src", "ab"}, {b, "ab", "bc"}, {c, "bc", "rcv"}} {
		r, ok := x.nd.FW.Route(k)
		if !ok || r.IIF != x.iif || fmt.Sprint(r.OIFs) != "["+x.oif+"]" {
			t.Fatalf("%s's forwarder before any data: %+v %v, want %s -> %s", x.nd.Name, r, ok, x.iif, x.oif)
		}
		if e, ok := x.nd.D.Routes().Get(k); !ok || len(e.Outputs) != 1 || (x.nd != c) != (e.Outputs[0].Origin.String() == "pim") {
			t.Fatalf("%s's MRIB: %+v", x.nd.Name, e)
		}
	}
	if got := n.SendData(srcLAN, src, g); got[rcv] != 1 || len(got) != 1 {
		t.Fatalf("first packet: %v", got)
	}
	upcalls := 0
	for _, nd := range []*Node{a, b, c} {
		upcalls += int(nd.D.Upcalls())
	}
	if upcalls != 0 {
		t.Errorf("%d upcalls: the routes were not all in place before the first packet", upcalls)
	}
}

// adjacency is long enough for every router on a LAN to hear every other's
// Hello: a router that joined the LAN after another missed its first Hello
// and hears the triggered one within Triggered_Hello_Delay (5 s). Until
// then it refuses that router's Join/Prunes and Asserts (not a neighbour).
const adjacency = 6 * time.Second
