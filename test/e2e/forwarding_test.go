package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"overcast/internal/api"
)

// routerLab is src --- r1 --- lan1 (rcv1), lan2 (rcv2), lan3 (rcv3), with
// IGMP timers passed in so timeouts fit in a test.
func routerLab(igmp string) string {
	return fmt.Sprintf(`name: fwd
nodes:
  - name: src
    routes: ["default via 10.0.1.1"]
  - name: src2
    routes: ["default via 10.0.1.1"]
  - name: sw0
    kind: switch
  - name: r1
    kind: router
    overcast: |
      interfaces:
        - name: eth0
        - name: lan1
          igmp: {%[1]s}
        - name: lan2
          igmp: {%[1]s}
        - name: lan3
          igmp: {%[1]s}
  - name: rcv1
    routes: ["default via 10.0.2.1"]
  - name: rcv2
    routes: ["default via 10.0.3.1"]
  - name: rcv3
    routes: ["default via 10.0.4.1"]
links:
  - {a: "src:eth0",  a-addr: 10.0.1.10/24, b: "sw0:p1"}
  - {a: "src2:eth0", a-addr: 10.0.1.11/24, b: "sw0:p2"}
  - {a: "r1:eth0",   a-addr: 10.0.1.1/24,  b: "sw0:p0"}
  - {a: "rcv1:eth0", a-addr: 10.0.2.10/24, b: "r1:lan1", b-addr: 10.0.2.1/24}
  - {a: "rcv2:eth0", a-addr: 10.0.3.10/24, b: "r1:lan2", b-addr: 10.0.3.1/24}
  - {a: "rcv3:eth0", a-addr: 10.0.4.10/24, b: "r1:lan3", b-addr: 10.0.4.1/24}
`, igmp)
}

const G = "239.1.1.1"

// Two kinds of joins each get the whole stream; a LAN without members gets nothing.
func TestForwardsExactlyToJoinedLANs(t *testing.T) {
	l := startLab(t, routerLab(""))
	c := api.NewClient(l.Socket("r1"))
	if mf, _ := l.Exec("r1", "cat", "/proc/sys/net/ipv4/conf/all/mc_forwarding"); strings.TrimSpace(mf) != "1" {
		t.Fatalf("mc_forwarding = %q with the daemon running", mf)
	}
	r1 := startRecv(t, l, "rcv1", "-g", G) // IP_ADD_MEMBERSHIP
	if _, err := l.Exec("rcv2", "ip", "addr", "add", G+"/32", "dev", "eth0", "autojoin"); err != nil {
		t.Fatal(err)
	}
	r2 := startRecv(t, l, "rcv2", "-g", G, "-no-join")
	r3 := startRecv(t, l, "rcv3", "-g", G, "-no-join")
	eventually(t, 5*time.Second, "rcv1 joined", func() string { return hasGroup(c, "lan1", G) })
	eventually(t, 5*time.Second, "rcv2 autojoined", func() string { return hasGroup(c, "lan2", G) })

	send(t, l, "src", "-g", G, "-count", "1000", "-rate", "1000")
	time.Sleep(300 * time.Millisecond)
	for _, x := range []struct {
		name string
		r    *receiver
		want uint64
	}{{"rcv1 (IP_ADD_MEMBERSHIP)", r1, 1000}, {"rcv2 (autojoin)", r2, 1000}, {"rcv3 (no member)", r3, 0}} {
		st := x.r.stop(t)
		p, lost, dups := st.Total()
		if p != x.want || lost != 0 || dups != 0 {
			t.Errorf("%s: %d packets, %d lost, %d dups; want %d", x.name, p, lost, dups, x.want)
		}
	}
	// The daemon's counters are the kernel's.
	rs, err := c.MRoutes()
	if err != nil || len(rs) != 1 || rs[0].Packets != 1000 || rs[0].IIF != "eth0" {
		t.Fatalf("show mroute: %+v %v", rs, err)
	}
}

// Leave: forwarding stops within the last member query time (1s x 2).
// Dead host (no leave): forwarding stops after the membership interval.
func TestLeaveAndTimeout(t *testing.T) {
	// GMI = 2 x 2s + 1s = 5s.
	l := startLab(t, routerLab("query-interval: 2s, query-response-interval: 1s"))
	c := api.NewClient(l.Socket("r1"))
	r1 := startRecv(t, l, "rcv1", "-g", G)
	r2 := startRecv(t, l, "rcv2", "-g", G)
	eventually(t, 5*time.Second, "joins", func() string {
		if s := hasGroup(c, "lan1", G); s != "" {
			return s
		}
		return hasGroup(c, "lan2", G)
	})
	// A stream running throughout makes the (S,G) exist.
	sendBackground(t, l, "src", "-g", G, "-duration", "20s", "-rate", "200")
	eventually(t, 3*time.Second, "both LANs forwarded", func() string {
		o, _ := oifs(t, c, "10.0.1.10", G)
		if len(o) != 2 {
			return fmt.Sprint(o)
		}
		return ""
	})

	// rcv1 leaves (IGMPv3 TO_IN({}) from the host stack).
	r1.stop(t)
	took := eventually(t, 4*time.Second, "lan1 pruned after leave", func() string {
		o, _ := oifs(t, c, "10.0.1.10", G)
		if slices.Contains(o, "lan1") {
			return fmt.Sprint(o)
		}
		return ""
	})
	t.Logf("leave -> lan1 pruned in %s (LMQT 2s)", took)
	if took < 1500*time.Millisecond {
		t.Errorf("pruned after %s, before the last member queries could be answered", took)
	}

	// rcv2's host goes silent without leaving: drop its IGMP on the way out, then kill it.
	if _, err := l.Exec("rcv2", "sh", "-c", "nft add table ip t && nft add chain ip t out '{ type filter hook output priority 0; }' && nft add rule ip t out ip protocol igmp drop"); err != nil {
		t.Fatal(err)
	}
	r2.cmd.Process.Signal(syscall.SIGKILL)
	took = eventually(t, 8*time.Second, "lan2 pruned after membership timeout", func() string {
		o, _ := oifs(t, c, "10.0.1.10", G)
		if slices.Contains(o, "lan2") {
			return fmt.Sprint(o)
		}
		return ""
	})
	t.Logf("silent host -> lan2 pruned in %s (GMI 5s)", took)
	if took < 1500*time.Millisecond { // last report at most QI+QRI (3s) before the kill
		t.Errorf("pruned after %s, well before the membership interval", took)
	}
}

// With explicit tracking, the last IGMPv3 host's leave prunes at once, with no query round.
func TestExplicitTrackingImmediateLeave(t *testing.T) {
	l := startLab(t, routerLab("explicit-tracking: true"))
	c := api.NewClient(l.Socket("r1"))
	r1 := startRecv(t, l, "rcv1", "-g", G)
	eventually(t, 5*time.Second, "join", func() string { return hasGroup(c, "lan1", G) })
	sendBackground(t, l, "src", "-g", G, "-duration", "5s", "-rate", "200")
	eventually(t, 3*time.Second, "forwarding", func() string {
		if o, _ := oifs(t, c, "10.0.1.10", G); !slices.Contains(o, "lan1") {
			return fmt.Sprint(o)
		}
		return ""
	})
	before := ifStats(t, c, "lan1")
	r1.stop(t)
	took := eventually(t, 2*time.Second, "lan1 pruned", func() string {
		if o, _ := oifs(t, c, "10.0.1.10", G); slices.Contains(o, "lan1") {
			return fmt.Sprint(o)
		}
		return ""
	})
	t.Logf("explicit tracking: leave -> pruned in %s", took)
	if took > 500*time.Millisecond {
		t.Errorf("explicit-tracking leave took %s", took)
	}
	after := ifStats(t, c, "lan1")
	if after.FastLeaves != before.FastLeaves+1 || after.TxQueries != before.TxQueries {
		t.Errorf("want one fast leave and no queries: before %+v after %+v", before, after)
	}
}

func ifStats(t *testing.T, c *api.Client, name string) api.IGMPStats {
	is, err := c.IGMPInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range is {
		if i.Name == name {
			return i.Stats
		}
	}
	t.Fatalf("no interface %s", name)
	return api.IGMPStats{}
}

// IGMPv3 INCLUDE {S1}: S1's traffic reaches the LAN, S2's to the same group does not.
func TestSourceSpecificJoin(t *testing.T) {
	l := startLab(t, routerLab(""))
	c := api.NewClient(l.Socket("r1"))
	const ssm = "232.1.1.1"
	r := startRecv(t, l, "rcv1", "-g", ssm, "-s", "10.0.1.10")
	eventually(t, 5*time.Second, "ssm join", func() string { return hasGroup(c, "lan1", ssm) })
	errc := make(chan error)
	go func() { errc <- sendErr(l, "src2", "-g", ssm, "-count", "500", "-rate", "1000") }()
	send(t, l, "src", "-g", ssm, "-count", "500", "-rate", "1000")
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	st := r.stop(t)
	if p, _, _ := st.Total(); p != 500 || len(st.Streams) != 1 || st.Streams[0].Source != "10.0.1.10" {
		t.Fatalf("receiver: %+v", st.Streams)
	}
	// The kernel sent exactly S1's 500 packets out of lan1 and none of S2's.
	if n := kernelVIFOut(t, l, "r1", "lan1"); n != 500 {
		t.Fatalf("lan1 VIF transmitted %d packets, want 500 (S1 only)", n)
	}
	if o, ok := oifs(t, c, "10.0.1.11", ssm); !ok || len(o) != 0 {
		t.Fatalf("(S2,G) oifs %v found=%v; want a pruned entry", o, ok)
	}
}

// SIGHUP: a bad config is rejected and the running state stays; a good one applies.
func TestReload(t *testing.T) {
	l := startLab(t, routerLab(""))
	c := api.NewClient(l.Socket("r1"))
	r := startRecv(t, l, "rcv1", "-g", G)
	defer r.stop(t)
	eventually(t, 5*time.Second, "join", func() string { return hasGroup(c, "lan1", G) })
	cfgFile := l.ConfigFile("r1")
	orig, _ := os.ReadFile(cfgFile)
	bad := strings.Replace(string(orig), "- name: lan3", "- name: lan9", 1)
	os.WriteFile(cfgFile, []byte(bad), 0o644)
	l.Signal("r1", syscall.SIGHUP)
	eventually(t, 3*time.Second, "reload rejected", func() string {
		st, err := c.Status()
		if err != nil || !strings.Contains(st.ReloadError, `interface "lan9" does not exist`) || !strings.Contains(st.ReloadError, "r1.yaml:") {
			return fmt.Sprintf("%+v %v", st, err)
		}
		return ""
	})
	if s := hasGroup(c, "lan1", G); s != "" {
		t.Fatalf("state lost after a rejected reload: %s", s)
	}
	good := strings.Replace(string(orig), "- name: lan3\n    igmp: {}", "- name: lan3\n    igmp: {static-groups: [239.9.9.9]}", 1)
	if good == string(orig) {
		t.Fatalf("test bug: config layout changed:\n%s", orig)
	}
	os.WriteFile(cfgFile, []byte(good), 0o644)
	l.Signal("r1", syscall.SIGHUP)
	eventually(t, 3*time.Second, "static group after reload", func() string { return hasGroup(c, "lan3", "239.9.9.9") })
	if s := hasGroup(c, "lan1", G); s != "" {
		t.Fatalf("membership lost over a good reload: %s", s)
	}
}

// The README's first command, as a user runs it (with a shorter stream).
func TestDemo(t *testing.T) {
	needMrouting(t)
	out, err := exec.Command(bin, "demo", "-count", "300", "-rate", "1000").CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"rcv1   lan1, joined 239.1.1.1", "demo OK", "Incoming interface: eth0, RPF nbr 0.0.0.0", "lan1, Forward/Local, "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
