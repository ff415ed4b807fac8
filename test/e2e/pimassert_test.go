package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/lab"
	"overcast/internal/tools/mcast"
)

// lanHosts are the hosts of the labs with a switch LAN x between routers:
// the source on 10.0.1.0/24 and a receiver behind each of C and D.
const lanHosts = `  - name: src
    routes: ["default via 10.0.1.1"]
  - name: rcvc
    routes: ["default via 10.3.1.1"]
  - name: rcvd
    routes: ["default via 10.3.2.1"]
  - name: sw
    kind: switch
`

// assertLab: two routers, A and B, both forward onto the transit LAN x,
// because C routes to the source through A and D through B:
//
//	src --- R1 ---- A (10.2.0.1) ---.
//	          \                      x (switch) --- C --- rcvc
//	           `--- B (10.2.0.2) ---'           `-- D --- rcvd
//
// Metrics tie, so the higher address (B) must win the assert and be the
// only forwarder onto x; D's join already goes to B, and C moves its join
// from A to B when it hears the assert. frrB puts FRR's pimd on B.
func assertLab(t *testing.T, frrB bool, rp string) (*lab.Lab, *frr) {
	cfg := func(ifs ...string) string {
		return overcastPIM(rp, "query-interval: 5s, query-response-interval: 1s", ifs...)
	}
	b := cfg("to-r1", "x")
	if frrB {
		b = ""
	}
	l := startLab(t, `name: assert
nodes:
`+lanHosts+`  - name: r1
    kind: router
    loopback: [10.255.0.1/32]
    routes: ["10.2.0.0/24 via 10.1.1.2", "10.3.1.0/24 via 10.1.1.2", "10.3.2.0/24 via 10.1.2.2"]
`+cfg("src", "to-a", "to-b")+`
  - name: a
    kind: router
    routes: ["10.0.1.0/24 via 10.1.1.1", "10.255.0.1/32 via 10.1.1.1", "10.3.1.0/24 via 10.2.0.3", "10.3.2.0/24 via 10.2.0.4"]
`+cfg("to-r1", "x")+`
  - name: b
    kind: router
    routes: ["10.0.1.0/24 via 10.1.2.1", "10.255.0.1/32 via 10.1.2.1", "10.3.1.0/24 via 10.2.0.3", "10.3.2.0/24 via 10.2.0.4"]
`+b+`
  - name: c
    kind: router
    routes: ["10.0.1.0/24 via 10.2.0.1", "10.1.0.0/16 via 10.2.0.1", "10.255.0.0/16 via 10.2.0.1"]
`+cfg("x", "lan")+`
  - name: d
    kind: router
    routes: ["10.0.1.0/24 via 10.2.0.2", "10.1.0.0/16 via 10.2.0.2", "10.255.0.0/16 via 10.2.0.2"]
`+cfg("x", "lan")+`
links:
  - {a: "src:eth0",  a-addr: 10.0.1.10/24, b: "r1:src",  b-addr: 10.0.1.1/24}
  - {a: "r1:to-a",   a-addr: 10.1.1.1/24,  b: "a:to-r1",    b-addr: 10.1.1.2/24}
  - {a: "r1:to-b",   a-addr: 10.1.2.1/24,  b: "b:to-r1",    b-addr: 10.1.2.2/24}
  - {a: "a:x",       a-addr: 10.2.0.1/24,  b: "sw:pa"}
  - {a: "b:x",       a-addr: 10.2.0.2/24,  b: "sw:pb"}
  - {a: "c:x",       a-addr: 10.2.0.3/24,  b: "sw:pc"}
  - {a: "d:x",       a-addr: 10.2.0.4/24,  b: "sw:pd"}
  - {a: "c:lan",     a-addr: 10.3.1.1/24,  b: "rcvc:eth0", b-addr: 10.3.1.10/24}
  - {a: "d:lan",     a-addr: 10.3.2.1/24,  b: "rcvd:eth0", b-addr: 10.3.2.10/24}
`)
	var f *frr
	if frrB {
		conf := "interface to-r1\n ip pim\ninterface x\n ip pim\n"
		if rp != "" {
			conf += "ip pim rp " + rp + " 224.0.0.0/4\n"
		}
		f = startFRR(t, l, "b", conf)
		for _, n := range [][3]string{{"r1", "to-b", "10.1.2.2"}, {"a", "x", "10.2.0.2"}, {"c", "x", "10.2.0.2"}, {"d", "x", "10.2.0.2"}} {
			frrNeighborSettled(t, l, n[0], n[1], n[2])
		}
	}
	pimNeighbors(t, l, "a", "x", "10.2.0.2", "10.2.0.3", "10.2.0.4")
	pimNeighbors(t, l, "c", "x", "10.2.0.1", "10.2.0.2")
	pimNeighbors(t, l, "d", "x", "10.2.0.1", "10.2.0.2")
	pimNeighbors(t, l, "r1", "to-a", "10.1.1.2")
	pimNeighbors(t, l, "r1", "to-b", "10.1.2.2")
	return l, f
}

func testAssert(t *testing.T, frrB bool, rp string, maxLost, maxDups int) {
	l, f := assertLab(t, frrB, rp)
	g := "232.1.1.1"
	rargs := []string{"-s", "10.0.1.10"}
	if rp != "" {
		g, rargs = G, nil
	}
	rc := startRecv(t, l, "rcvc", append([]string{"-g", g}, rargs...)...)
	rd := startRecv(t, l, "rcvd", append([]string{"-g", g}, rargs...)...)
	// D's (S,G) join reaches B, C's reaches A: both will forward onto x.
	eventually(t, 15*time.Second, "joins at A and B", func() string {
		js, err := api.NewClient(l.Socket("a")).PIMJoins()
		if err != nil {
			return err.Error()
		}
		for _, j := range js {
			if j.Group == g && len(j.Downstream) > 0 {
				return ""
			}
		}
		return fmt.Sprintf("A has no downstream join: %+v", js)
	})
	time.Sleep(time.Second) // D's join to B
	// Phase 1 (sender id 1): the stream starts while both A and B have
	// joins on x. Phase 2 (id 2), after 4 s: steady state, same receivers.
	outA0, outB0 := kernelVIFOut(t, l, "a", "x"), kernelVIFOut(t, l, "b", "x")
	send(t, l, "src", "-g", g, "-count", "3000", "-rate", "1000", "-id", "1")
	time.Sleep(500 * time.Millisecond)
	outA, outB := kernelVIFOut(t, l, "a", "x")-outA0, kernelVIFOut(t, l, "b", "x")-outB0
	t.Logf("phase 1, packets sent onto x: A %d, B %d", outA, outB)
	time.Sleep(4 * time.Second)
	// The election needs data on x: under load (FRR on B, or the whole
	// suite) it may not have finished within phase 1. Keep a stream (id 3,
	// not counted) going until A holds assert state, for at most 3 s more.
	for i := 0; i < 3 && !hasAssert(t, l, "a", g); i++ {
		t.Logf("no assert state at A yet: 1,000 more packets")
		send(t, l, "src", "-g", g, "-count", "1000", "-rate", "1000", "-id", "3")
		time.Sleep(500 * time.Millisecond)
	}
	outA0, outB0 = kernelVIFOut(t, l, "a", "x"), kernelVIFOut(t, l, "b", "x")
	send(t, l, "src", "-g", g, "-count", "2000", "-rate", "1000", "-id", "2")
	time.Sleep(500 * time.Millisecond)
	outA, outB = kernelVIFOut(t, l, "a", "x")-outA0, kernelVIFOut(t, l, "b", "x")-outB0
	t.Logf("steady state, packets sent onto x: A %d, B %d", outA, outB)
	for _, x := range []struct {
		name string
		r    *receiver
	}{{"rcvc (behind C)", rc}, {"rcvd (behind D)", rd}} {
		st := x.r.stop(t)
		s1, s2 := &mcast.Stream{}, &mcast.Stream{}
		for _, s := range st.Streams {
			switch s.Sender {
			case 1:
				s1 = s
			case 2:
				s2 = s
			}
		}
		t.Logf("%s: phase 1 %d distinct of 3000, %d lost, %d duplicates; steady state %d, %d lost, %d duplicates",
			x.name, s1.Packets-s1.Dups, s1.Lost, s1.Dups, s2.Packets, s2.Lost, s2.Dups)
		// Two known, independent effects: the assert election may cost up
		// to maxLost packets, and the stream's start the known defect's
		// few among the first 30 (startOfStreamLoss); either, or both.
		lostOK := 3000 - maxLost
		early := 0
		for _, m := range s1.MissingSample {
			if m < 30 {
				early++
			}
		}
		if len(s1.MissingSample) == int(s1.Lost) && early > 0 && early <= 5 {
			lostOK -= early
			t.Logf("%s, phase 1: packets %v lost, %d at the stream's start (a known defect, see startOfStreamLoss)", x.name, s1.MissingSample, early)
		}
		if int(s1.Packets-s1.Dups) < lostOK || int(s1.Dups) > maxDups {
			t.Errorf("%s, phase 1: %d distinct, %d duplicates, lost %v; want at least %d and at most %d", x.name, s1.Packets-s1.Dups, s1.Dups, s1.MissingSample, lostOK, maxDups)
		}
		if s2.Packets != 2000 || s2.Lost != 0 || s2.Dups != 0 {
			t.Errorf("%s, steady state: %d packets, %d lost, %d duplicates; want 2000, 0, 0", x.name, s2.Packets, s2.Lost, s2.Dups)
		}
	}
	if f != nil {
		for _, c := range []string{"show ip pim assert", "show ip pim assert-internal", "show ip mroute"} {
			out, _ := f.vtysh(c)
			t.Logf("FRR on B, %s:\n%s", c, out)
		}
	}
	winner := ""
	switch {
	case outA == 0 && outB >= 2000:
		winner = "10.2.0.2"
	case outB == 0 && outA >= 2000:
		winner = "10.2.0.1"
	default:
		t.Fatalf("onto x: A sent %d, B sent %d; want exactly one forwarder", outA, outB)
	}
	if f == nil && winner != "10.2.0.2" {
		t.Errorf("A forwards; B (10.2.0.2, equal metric, higher address) should have won")
	}
	for _, n := range []string{"c", "d"} {
		js, err := api.NewClient(l.Socket(n)).PIMJoins()
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range js {
			if j.Source == "10.0.1.10" && j.Group == g && j.RPFNbr != winner {
				t.Errorf("%s joins (S,G) toward %s, want the forwarder %s", n, j.RPFNbr, winner)
			}
		}
	}
	if f == nil {
		as, _ := api.NewClient(l.Socket("b")).PIMAsserts()
		won := false
		for _, a := range as {
			won = won || (a.Source == "10.0.1.10" && a.Interface == "x" && a.State == "Winner")
		}
		if !won {
			t.Errorf("B's assert state %+v, want (S,G) Winner on x", as)
		}
	}
}

// Overcast on every router, SSM: (S,G) asserts.
func TestPIMAssert(t *testing.T) { testAssert(t, false, "", 0, 10) }

// Overcast on every router, ASM with the RP on R1: (*,G) asserts on the
// shared tree, then (S,G) asserts once C and D join the SPT.
func TestPIMAssertSharedTree(t *testing.T) { testAssert(t, false, "10.255.0.1", 2, 10) }

// FRR's pimd as B, ASM: the two implementations elect the same forwarder.
func TestPIMAssertWithFRR(t *testing.T) { testAssert(t, true, "10.255.0.1", 2, 3000) }

// hasAssert says whether node's election on x for g is over: it holds
// assert state there (the winner), or it no longer forwards g onto x
// (the loser, once its downstream routers moved to the winner).
func hasAssert(t *testing.T, l *lab.Lab, node, g string) bool {
	c := api.NewClient(l.Socket(node))
	as, err := c.PIMAsserts()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.Group == g && a.Interface == "x" {
			return true
		}
	}
	rs, err := c.MRoutes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Group == g && r.Source != "*" && strings.Contains(","+oifNames(r)+",", ",x,") {
			return false
		}
	}
	return true
}
