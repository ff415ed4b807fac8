package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"overcast/internal/api"
)

// Join suppression (RFC 7761 4.5.7) on the real kernel: two last hops, C
// and D, share LAN x below U, and both join the same SSM channel through
// U. Each one's periodic join stands for the other's, so x carries about
// one join per period instead of two, and U keeps forwarding to both.
// Join/prune interval 3 s everywhere, so a 15 s window holds five periods.
//
//	src --- U --- x (switch) --- C --- rcvc
//	                        `--- D --- rcvd
func TestPIMJoinSuppression(t *testing.T)        { testJoinSuppression(t, false) }
func TestPIMJoinSuppressionWithFRR(t *testing.T) { testJoinSuppression(t, true) }

func testJoinSuppression(t *testing.T, frrD bool) {
	router := func(ifs ...string) string {
		var b strings.Builder
		b.WriteString("    overcast: |\n      pim: {join-prune-interval: 3s}\n      interfaces:\n")
		for _, n := range ifs {
			fmt.Fprintf(&b, "        - {name: %s, pim: true, igmp: {query-interval: 5s, query-response-interval: 1s}}\n", n)
		}
		return b.String()
	}
	d := router("x", "lan")
	if frrD {
		d = ""
	}
	l := startLab(t, `name: suppress
nodes:
`+lanHosts+`  - name: u
    kind: router
    routes: ["10.3.1.0/24 via 10.2.0.3", "10.3.2.0/24 via 10.2.0.4"]
`+router("src", "x")+`
  - name: c
    kind: router
    routes: ["10.0.1.0/24 via 10.2.0.1"]
`+router("x", "lan")+`
  - name: d
    kind: router
    routes: ["10.0.1.0/24 via 10.2.0.1"]
`+d+`
links:
  - {a: "src:eth0", a-addr: 10.0.1.10/24, b: "u:src", b-addr: 10.0.1.1/24}
  - {a: "u:x",      a-addr: 10.2.0.1/24,  b: "sw:pu"}
  - {a: "c:x",      a-addr: 10.2.0.3/24,  b: "sw:pc"}
  - {a: "d:x",      a-addr: 10.2.0.4/24,  b: "sw:pd"}
  - {a: "c:lan",    a-addr: 10.3.1.1/24,  b: "rcvc:eth0", b-addr: 10.3.1.10/24}
  - {a: "d:lan",    a-addr: 10.3.2.1/24,  b: "rcvd:eth0", b-addr: 10.3.2.10/24}
`)
	if frrD {
		startFRR(t, l, "d", "ip pim join-prune-interval 3\ninterface x\n ip pim\ninterface lan\n ip pim\n ip igmp\n")
		frrNeighborSettled(t, l, "u", "x", "10.2.0.4")
		frrNeighborSettled(t, l, "c", "x", "10.2.0.4")
	}
	pimNeighbors(t, l, "u", "x", "10.2.0.3", "10.2.0.4")
	pimNeighbors(t, l, "c", "x", "10.2.0.1", "10.2.0.4")
	ifs, err := api.NewClient(l.Socket("c")).PIMInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Name == "x" && !i.JoinSuppression {
			t.Errorf("C's show pim interface: join suppression off on x, though no router sets the T bit")
		}
	}
	g := "232.1.1.1"
	rc := startRecv(t, l, "rcvc", "-g", g, "-s", "10.0.1.10")
	rd := startRecv(t, l, "rcvd", "-g", g, "-s", "10.0.1.10")
	// U has the channel joined on x once either last hop joined; both
	// have once the receivers' reports are in (give them a few periods).
	eventually(t, 15*time.Second, "U joined on x", func() string {
		js, err := api.NewClient(l.Socket("u")).PIMJoins()
		if err != nil {
			return err.Error()
		}
		for _, j := range js {
			for _, dn := range j.Downstream {
				if j.Group == g && dn.Interface == "x" && dn.State == "Join" {
					return ""
				}
			}
		}
		return fmt.Sprintf("%+v", js)
	})
	time.Sleep(5 * time.Second)
	capture := filepath.Join(t.TempDir(), "x.pcap")
	td := l.Command("u", "tcpdump", "-i", "x", "-w", capture, "-U", "pim")
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(15 * time.Second)
	td.Process.Signal(syscall.SIGTERM)
	td.Wait()
	out, err := exec.Command("tshark", "-r", capture, "-Y", "pim.type == 3", "-T", "fields", "-e", "ip.src").Output()
	if err != nil {
		t.Fatal(err)
	}
	joins := map[string]int{}
	for _, src := range strings.Fields(string(out)) {
		joins[src]++
	}
	total := joins["10.2.0.3"] + joins["10.2.0.4"]
	t.Logf("join/prunes on x in 15 s with a 3 s interval: C %d, D %d", joins["10.2.0.3"], joins["10.2.0.4"])
	// Five periods: about 5 with suppression, about 10 without.
	if total < 3 || total > 7 {
		t.Errorf("%d periodic join/prunes from C and D in 15 s (%v): want about 5, one router's joins standing for both", total, joins)
	}
	// show pim join says so on the Overcast router whose joins were
	// suppressed. Which one is a race of timer phases; FRR suppresses
	// too, so with FRR as D either side may be the quiet one.
	var routers []string
	for _, n := range []struct{ name, addr string }{{"c", "10.2.0.3"}, {"d", "10.2.0.4"}} {
		if joins[n.addr] <= 1 && !(frrD && n.name == "d") {
			routers = append(routers, n.name)
		}
	}
	if len(routers) == 0 {
		t.Logf("FRR's D was the one suppressed (by C's joins)")
	}
	eventually(t, 5*time.Second, "a last hop showing its join suppressed", func() string {
		if len(routers) == 0 {
			return ""
		}
		var seen []string
		for _, n := range routers {
			js, err := api.NewClient(l.Socket(n)).PIMJoins()
			if err != nil {
				return err.Error()
			}
			for _, j := range js {
				if j.Group == g && j.Upstream == "Joined" && j.JoinSuppressed > 0 {
					return ""
				}
				seen = append(seen, fmt.Sprintf("%s: %s %s suppressed %v", n, j.Group, j.Upstream, j.JoinSuppressed))
			}
		}
		return strings.Join(seen, "; ")
	})
	send(t, l, "src", "-g", g, "-count", "500", "-rate", "500")
	time.Sleep(300 * time.Millisecond)
	for name, r := range map[string]*receiver{"rcvc": rc, "rcvd": rd} {
		pkts, _, dups := r.stop(t).Total()
		if pkts != 500 || dups != 0 {
			t.Errorf("%s after the suppressed periods: %d of 500 packets, %d duplicates", name, pkts, dups)
		}
	}
}
