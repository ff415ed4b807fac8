package e2e

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"overcast/internal/api"
)

// The seed lab on the shared tree only (SPT threshold infinity), RP on
// R2. With the stream flowing, every router's config moves the RP to R1
// (10.1.13.1) and gets SIGHUP: R3's (*,G) join moves to R1 at once, the
// stream now comes R1 --- R3 instead of through R2, and the receiver
// keeps getting it; no daemon restarts. Then a reload that only a restart
// can apply (a new api-socket) is rejected with file:line and the running
// config stays.
func TestPIMReloadMovesRPWithTrafficFlowing(t *testing.T) {
	const igmp = "query-interval: 5s, query-response-interval: 1s"
	cfg := func(rp string, ifs ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "    overcast: |\n      pim:\n        rp: [{address: %s}]\n        spt-threshold: [{groups: 224.0.0.0/4, threshold: infinity}]\n      interfaces:\n", rp)
		for _, n := range ifs {
			fmt.Fprintf(&b, "        - {name: %s, pim: true, igmp: {%s}}\n", n, igmp)
		}
		return b.String()
	}
	ifs := map[string][]string{"r1": {"src", "to-r2", "to-r3"}, "r2": {"to-r1", "to-r3", "lan"}, "r3": {"to-r1", "to-r2", "lan"}}
	l := startLab(t, pimLab(map[string]string{
		"r1": cfg("10.255.0.2", ifs["r1"]...), "r2": cfg("10.255.0.2", ifs["r2"]...), "r3": cfg("10.255.0.2", ifs["r3"]...),
	}))
	pids := map[string]int{}
	for n := range ifs {
		st, err := api.NewClient(l.Socket(n)).Status()
		if err != nil {
			t.Fatal(err)
		}
		pids[n] = st.PID
	}
	r := startRecv(t, l, "rcv", "-g", G)
	eventually(t, 10*time.Second, "rcv joined", func() string { return hasGroup(api.NewClient(l.Socket("r3")), "lan", G) })
	pimLabReady(t, l)
	time.Sleep(200 * time.Millisecond)
	sent := sendBackground(t, l, "src", "-g", G, "-count", "6000", "-rate", "1000")
	time.Sleep(1500 * time.Millisecond)
	if rt, ok := mroute(t, l, "r3", "10.0.1.10", G); !ok || rt.IIF != "to-r2" {
		t.Fatalf("R3 before the reload: %+v, want input to-r2 (the shared tree through R2)", rt)
	}
	for n := range ifs {
		f := l.ConfigFile(n)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		moved := strings.Replace(string(b), "address: 10.255.0.2", "address: 10.1.13.1", 1)
		if moved == string(b) {
			t.Fatalf("test bug: no RP in %s:\n%s", f, b)
		}
		os.WriteFile(f, []byte(moved), 0o644)
	}
	for _, n := range []string{"r1", "r2", "r3"} {
		l.Signal(n, syscall.SIGHUP)
	}
	took := eventually(t, 3*time.Second, "R3's (*,G) join toward the new RP", func() string {
		js, err := api.NewClient(l.Socket("r3")).PIMJoins()
		if err != nil {
			return err.Error()
		}
		for _, j := range js {
			if j.Source == "*" && j.Group == G {
				if j.RPFIf == "to-r1" && j.Upstream == "Joined" {
					return ""
				}
				return fmt.Sprintf("%+v", j)
			}
		}
		return "no (*,G)"
	})
	eventually(t, 3*time.Second, "the stream through R1 --- R3", func() string {
		if rt, ok := mroute(t, l, "r3", "10.0.1.10", G); !ok || rt.IIF != "to-r1" {
			return fmt.Sprintf("R3 %+v", rt)
		}
		return ""
	})
	// R1 gets the same signal but may apply it a few ms after R3 did: the
	// routers reload independently, as in a real network.
	eventually(t, 3*time.Second, "R1 itself as the RP after the reload", func() string {
		rps, err := api.NewClient(l.Socket("r1")).PIMRPs()
		if err != nil || len(rps) == 0 || rps[0].RP != "10.1.13.1" || !rps[0].Local {
			return fmt.Sprintf("show pim rp: %+v %v", rps, err)
		}
		return ""
	})
	sent(10 * time.Second)
	time.Sleep(200 * time.Millisecond) // the last packets in flight
	st := r.stop(t)
	p, lost, dups := st.Total()
	t.Logf("RP moved by SIGHUP: R3 joined the new RP %s after the signal; %d packets, %d lost, %d duplicates of 6000", took, p, lost, dups)
	if p+lost != 6000 || lost > 100 || dups > 100 {
		t.Errorf("receiver over the RP move: %d packets, %d lost, %d duplicates of 6000", p, lost, dups)
	}
	if rt, ok := mroute(t, l, "r2", "10.0.1.10", G); ok && strings.Contains(oifNames(rt), "to-r3") {
		t.Errorf("R2 still forwards to R3 after the RP moved: %+v", rt)
	}
	for n, pid := range pids {
		st, err := api.NewClient(l.Socket(n)).Status()
		if err != nil || st.PID != pid || st.Reloads != 1 || st.ReloadError != "" {
			t.Errorf("%s after the reload: %+v %v (pid was %d)", n, st, err, pid)
		}
	}

	// A change only a restart can apply: rejected, file:line, old config kept.
	f := l.ConfigFile("r3")
	b, _ := os.ReadFile(f)
	os.WriteFile(f, []byte(strings.Replace(string(b), "api-socket: ", "api-socket: /run/elsewhere.sock\n# was: ", 1)), 0o644)
	l.Signal("r3", syscall.SIGHUP)
	c := api.NewClient(l.Socket("r3"))
	eventually(t, 3*time.Second, "restart-only change rejected", func() string {
		st, err := c.Status()
		if err != nil {
			return err.Error()
		}
		if !strings.Contains(st.ReloadError, "r3.yaml:1: api-socket") || !strings.Contains(st.ReloadError, "needs a restart") || st.Reloads != 1 {
			return fmt.Sprintf("%+v", st)
		}
		return ""
	})
	if rt, ok := mroute(t, l, "r3", "10.0.1.10", G); !ok || rt.IIF != "to-r1" {
		t.Errorf("R3 state after the rejected reload: %+v", rt)
	}
}

// show rpf reads the route's protocol, preference and metric from the
// kernel: an OSPF route of metric 20 (as FRR's zebra installs it) reads
// ospf, 110, 20, not 0.
func TestShowRPFMetricFromKernel(t *testing.T) {
	l := startLab(t, pimLab(nil))
	if _, err := l.Exec("r3", "ip", "route", "add", "10.77.0.0/16", "via", "10.1.13.1", "proto", "ospf", "metric", "20"); err != nil {
		t.Fatal(err)
	}
	c := api.NewClient(l.Socket("r3"))
	eventually(t, 3*time.Second, "show rpf 10.77.1.1", func() string {
		r, err := c.RPF("10.77.1.1")
		if err != nil {
			return err.Error()
		}
		if r.Iface != "to-r1" || r.Neighbor != "10.1.13.1" || r.Protocol != "ospf" || r.Preference != 110 || r.Metric != 20 {
			return fmt.Sprintf("%+v", r)
		}
		return ""
	})
	out, err := l.Exec("r3", bin, "show", "rpf", "10.77.1.1", "-s", l.Socket("r3"))
	if err != nil || !strings.Contains(out, "RPF type:") || !strings.Contains(out, "unicast (ospf)") || !strings.Contains(out, "110") {
		t.Errorf("show rpf text: %v\n%s", err, out)
	}
	r, err := c.RPF("10.0.1.10") // the lab's static route: a kernel route, metric 10
	if err != nil || r.Protocol != "kernel" || r.Metric != 10 || r.Preference != 0 {
		t.Errorf("kernel route: %+v %v", r, err)
	}
}
