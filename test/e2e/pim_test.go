package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/lab"
)

// overcastPIM is a lab node's `overcast:` block: PIM on the given
// interfaces, with a static RP when rp is not empty.
func overcastPIM(rp, igmp string, ifs ...string) string {
	var b strings.Builder
	b.WriteString("    overcast: |\n")
	if rp != "" {
		fmt.Fprintf(&b, "      pim:\n        rp: [{address: %s}]\n", rp)
	}
	b.WriteString("      interfaces:\n")
	for _, n := range ifs {
		if igmp != "" {
			fmt.Fprintf(&b, "        - {name: %s, pim: true, igmp: {%s}}\n", n, igmp)
		} else {
			fmt.Fprintf(&b, "        - {name: %s, pim: true}\n", n)
		}
	}
	return b.String()
}

// pimLab is the seed lab: src --- R1 --(long)-- R2 (RP, lo 10.255.0.2) --(long)-- R3 --- rcv,
// with a short R1 --- R3 link and a second receiver behind R2. Unicast
// routing is static: R1 and R3 reach each other's LANs over R1 --- R3.
func pimLab(routers map[string]string) string {
	const igmp = "query-interval: 5s, query-response-interval: 1s"
	cfg := func(name string, ifs ...string) string {
		if c, ok := routers[name]; ok {
			return c
		}
		return overcastPIM("10.255.0.2", igmp, ifs...)
	}
	return `name: pim
nodes:
  - name: src
    routes: ["default via 10.0.1.1"]
  - name: rcv
    routes: ["default via 10.0.3.1"]
  - name: rcv2
    routes: ["default via 10.0.2.1"]
  - name: r1
    kind: router
    sysctls: [net.ipv4.conf.all.ignore_routes_with_linkdown=1]
    routes: ["10.0.3.0/24 via 10.1.13.3 metric 10", "10.0.3.0/24 via 10.1.12.2 metric 20", "10.1.23.0/24 via 10.1.13.3", "10.0.2.0/24 via 10.1.12.2", "10.255.0.2/32 via 10.1.12.2"]
` + cfg("r1", "src", "to-r2", "to-r3") + `
  - name: r2
    kind: router
    loopback: [10.255.0.2/32]
    routes: ["10.0.1.0/24 via 10.1.12.1", "10.1.13.0/24 via 10.1.12.1", "10.0.3.0/24 via 10.1.23.3"]
` + cfg("r2", "to-r1", "to-r3", "lan") + `
  - name: r3
    kind: router
    sysctls: [net.ipv4.conf.all.ignore_routes_with_linkdown=1]
    routes: ["10.0.1.0/24 via 10.1.13.1 metric 10", "10.0.1.0/24 via 10.1.23.2 metric 20", "10.1.12.0/24 via 10.1.23.2", "10.0.2.0/24 via 10.1.23.2", "10.255.0.2/32 via 10.1.23.2"]
` + cfg("r3", "to-r1", "to-r2", "lan") + `
links:
  - {a: "src:eth0",  a-addr: 10.0.1.10/24, b: "r1:src",   b-addr: 10.0.1.1/24}
  - {a: "r1:to-r2",  a-addr: 10.1.12.1/24, b: "r2:to-r1", b-addr: 10.1.12.2/24}
  - {a: "r2:to-r3",  a-addr: 10.1.23.2/24, b: "r3:to-r2", b-addr: 10.1.23.3/24}
  - {a: "r1:to-r3",  a-addr: 10.1.13.1/24, b: "r3:to-r1", b-addr: 10.1.13.3/24}
  - {a: "rcv:eth0",  a-addr: 10.0.3.10/24, b: "r3:lan",   b-addr: 10.0.3.1/24}
  - {a: "rcv2:eth0", a-addr: 10.0.2.10/24, b: "r2:lan",   b-addr: 10.0.2.1/24}
`
}

func mroute(t *testing.T, l *lab.Lab, node, src, group string) (api.MRoute, bool) {
	t.Helper()
	rs, err := api.NewClient(l.Socket(node)).MRoutes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Source == src && r.Group == group {
			return r, true
		}
	}
	return api.MRoute{}, false
}

// pimNeighbors waits until node sees the given neighbours on iface.
func pimNeighbors(t *testing.T, l *lab.Lab, node, iface string, want ...string) {
	t.Helper()
	eventually(t, 10*time.Second, node+" PIM neighbours on "+iface, func() string {
		ns, err := api.NewClient(l.Socket(node)).PIMNeighbors()
		if err != nil {
			return err.Error()
		}
		have := map[string]bool{}
		for _, n := range ns {
			if n.Interface == iface {
				have[n.Address] = true
			}
		}
		for _, w := range want {
			if !have[w] {
				return fmt.Sprintf("no %s in %+v", w, ns)
			}
		}
		return ""
	})
}

// frrNeighborSettled waits until node holds the FRR router at addr as a
// neighbour on iface with a full holdtime. Seen here: FRR 8.4's first
// hello after it starts can carry a 10 s holdtime, and when its next
// hello comes later than that the adjacency drops once before it
// settles; tests that need the adjacency wait for the settled one.
func frrNeighborSettled(t *testing.T, l *lab.Lab, node, iface, addr string) {
	t.Helper()
	eventually(t, 45*time.Second, node+" holds FRR's "+addr+" on "+iface+" with a full holdtime", func() string {
		ns, err := api.NewClient(l.Socket(node)).PIMNeighbors()
		if err != nil {
			return err.Error()
		}
		for _, n := range ns {
			if n.Interface == iface && n.Address == addr {
				if time.Duration(n.Expires) > 30*time.Second {
					return ""
				}
				return fmt.Sprintf("expires in %s", n.Expires)
			}
		}
		return fmt.Sprintf("not a neighbour: %+v", ns)
	})
}

// pimLabReady waits for every adjacency of the seed lab.
func pimLabReady(t *testing.T, l *lab.Lab) {
	pimNeighbors(t, l, "r1", "to-r2", "10.1.12.2")
	pimNeighbors(t, l, "r1", "to-r3", "10.1.13.3")
	pimNeighbors(t, l, "r2", "to-r1", "10.1.12.1")
	pimNeighbors(t, l, "r2", "to-r3", "10.1.23.3")
	pimNeighbors(t, l, "r3", "to-r1", "10.1.13.1")
	pimNeighbors(t, l, "r3", "to-r2", "10.1.23.2")
}

func oifNames(r api.MRoute) string {
	var n []string
	for _, o := range r.OIFs {
		n = append(n, o.Name)
	}
	return strings.Join(n, ",")
}

// Overcast on every router: the stream starts on the shared tree through
// the RP, R3 moves to the shortest-path tree over R1 --- R3, R2 stops
// sending (S,G) to R3, and both receivers get every packet exactly once.
func TestPIMSharedTreeToSPT(t *testing.T) {
	l := startLab(t, pimLab(nil))
	r1 := startRecv(t, l, "rcv", "-g", G)
	r2 := startRecv(t, l, "rcv2", "-g", G)
	eventually(t, 10*time.Second, "receivers joined", func() string {
		if s := hasGroup(api.NewClient(l.Socket("r3")), "lan", G); s != "" {
			return s
		}
		return hasGroup(api.NewClient(l.Socket("r2")), "lan", G)
	})
	pimLabReady(t, l)
	time.Sleep(200 * time.Millisecond) // (*,G) joins
	send(t, l, "src", "-g", G, "-count", "5000", "-rate", "1000")
	time.Sleep(500 * time.Millisecond)
	type got struct {
		name    string
		p, lost uint64
		dups    uint64
		first   uint64
		missing []uint64
		ok      bool // one stream, every loss listed
	}
	var gs []got
	for _, x := range []struct {
		name string
		r    *receiver
	}{{"rcv (behind R3)", r1}, {"rcv2 (behind R2)", r2}} {
		st := x.r.stop(t)
		g := got{name: x.name}
		g.p, g.lost, g.dups = st.Total()
		if len(st.Streams) == 1 {
			g.first, g.missing = st.Streams[0].FirstSeq, st.Streams[0].MissingSample
			g.ok = uint64(len(g.missing)) == g.lost
		}
		gs = append(gs, g)
	}
	// The known start-of-stream loss at the first hop (startOfStreamLoss):
	// the kernel queues the first 4 packets of a new (S,G); those after,
	// until R1's route is in, are lost before the tree splits, so both
	// receivers miss the same run 4, 5, ... (seen in the full suite, up to
	// 6 packets, when the machine is busy). That run is logged; any other
	// loss is counted against the switchovers.
	common := map[uint64]bool{}
	if gs[0].ok && gs[1].ok {
		in := map[uint64]bool{}
		for _, m := range gs[1].missing {
			in[m] = true
		}
		for n := uint64(4); n < 14 && in[n] && slices.Contains(gs[0].missing, n); n++ {
			common[n] = true
		}
		if len(common) > 0 {
			t.Logf("packets 4-%d lost at the first hop before its route was in (the known start-of-stream loss), at both receivers", 3+len(common))
		}
	}
	for _, g := range gs {
		var extra []uint64
		for _, m := range g.missing {
			if !common[m] {
				extra = append(extra, m)
			}
		}
		// One more packet in the first 20 may go: at the RP's switch from
		// Registers to native packets (before any SPT switch at the last
		// hop, which this test is about; seen on earlier code too), or in
		// the burst the first hop's queue lets go at a later hop's start.
		if g.ok && g.dups == 0 && g.first == 0 && g.p+g.lost == 5000 && len(extra) == 1 && extra[0] < 20 {
			t.Logf("%s: packet %d lost at the stream's start (the RP's switch, or a later hop's queue); all others arrived once", g.name, extra[0])
			continue
		}
		// The same defect at this receiver's last hop (R3 behind the RP:
		// the RP's released queue arrives as a burst), as every other
		// test tolerates it: at most 5, all among the first 30.
		if g.ok && g.dups == 0 && g.first == 0 && g.p+g.lost == 5000 && len(extra) > 0 && len(extra) <= 5 && extra[len(extra)-1] < 30 {
			t.Logf("%s: packets %v lost at the stream's start (a known defect, see startOfStreamLoss); all others arrived once", g.name, extra)
			continue
		}
		if !g.ok || g.dups != 0 || g.first != 0 || g.p+g.lost != 5000 || len(extra) != 0 {
			t.Errorf("%s: %d packets (first seq %d, missing %v), %d lost, %d duplicates; want 5000, 0, 0", g.name, g.p, g.first, g.missing, g.lost, g.dups)
		}
	}
	src := "10.0.1.10"
	if r, ok := mroute(t, l, "r3", src, G); !ok || r.IIF != "to-r1" || oifNames(r) != "lan" {
		t.Errorf("R3 (S,G): %+v; want input to-r1 (the SPT) and output lan", r)
	} else if !strings.Contains(r.Flags, "T") || strings.Contains(r.Flags, "R") || !strings.Contains(r.Flags, "C") {
		// IOS's R marks (S,G) state on the shared tree, pruned there: not
		// this last hop's SPT entry (it sent the (S,G,rpt) prune).
		t.Errorf("R3 (S,G) flags %q, want C (local receiver) and T (SPT), no R", r.Flags)
	}
	if r, ok := mroute(t, l, "r2", src, G); !ok || oifNames(r) != "lan" {
		t.Errorf("R2 (S,G): %+v; want output lan only (R3 pruned (S,G,rpt))", r)
	}
	if r, ok := mroute(t, l, "r1", src, G); !ok || r.IIF != "src" || oifNames(r) != "to-r2,to-r3" {
		t.Errorf("R1 (S,G): %+v; want src -> to-r2,to-r3 with registers stopped", r)
	}
}

// Under a 1,000 pps stream, the short R1 --- R3 link goes down: R3 joins
// toward the source through R2 as soon as the kernel's routes move, and
// delivery resumes. The outage is measured from the receiver's loss.
func TestPIMFailover(t *testing.T) {
	l := startLab(t, pimLab(nil))
	r := startRecv(t, l, "rcv", "-g", G)
	eventually(t, 10*time.Second, "rcv joined", func() string { return hasGroup(api.NewClient(l.Socket("r3")), "lan", G) })
	pimLabReady(t, l)
	time.Sleep(200 * time.Millisecond)
	sent := sendBackground(t, l, "src", "-g", G, "-count", "4000", "-rate", "1000")
	time.Sleep(1500 * time.Millisecond)
	if rt, ok := mroute(t, l, "r3", "10.0.1.10", G); !ok || rt.IIF != "to-r1" {
		t.Fatalf("R3 not on the SPT before the failure: %+v", rt)
	}
	// Nothing flows toward R2 before the failure: the outage below is the
	// time to build the new branch, not a standby copy.
	if rt, ok := mroute(t, l, "r1", "10.0.1.10", G); !ok || oifNames(rt) != "to-r3" {
		t.Fatalf("R1 before the failure: %+v, want only to-r3", rt)
	}
	if _, err := l.Exec("r1", "ip", "link", "set", "to-r3", "down"); err != nil {
		t.Fatal(err)
	}
	sent(10 * time.Second)
	time.Sleep(200 * time.Millisecond) // the last packets in flight
	st := r.stop(t)
	p, lost, dups := st.Total()
	if rt, ok := mroute(t, l, "r3", "10.0.1.10", G); !ok || rt.IIF != "to-r2" {
		t.Errorf("R3 after the failure: %+v, want input to-r2", rt)
	}
	if dups != 0 || p+lost != 4000 || lost > 200 {
		t.Fatalf("%d packets, %d lost, %d duplicates of 4000", p, lost, dups)
	}
	var missing []uint64
	if len(st.Streams) > 0 {
		missing = st.Streams[0].MissingSample
	}
	t.Logf("failover outage: %d packets lost at 1000 pps = %d ms (first missing %v)", lost, lost, missing)
}

// SSM: an IGMPv3 INCLUDE {src} receiver in 232/8 gets the stream with no RP
// configured anywhere.
func TestPIMSSMWithoutRP(t *testing.T) {
	noRP := func(ifs ...string) string { return overcastPIM("", "", ifs...) }
	l := startLab(t, pimLab(map[string]string{
		"r1": noRP("src", "to-r2", "to-r3"), "r2": noRP("to-r1", "to-r3", "lan"), "r3": noRP("to-r1", "to-r2", "lan"),
	}))
	const ssmG = "232.1.1.1"
	r := startRecv(t, l, "rcv", "-g", ssmG, "-s", "10.0.1.10")
	eventually(t, 10*time.Second, "rcv joined", func() string { return hasGroup(api.NewClient(l.Socket("r3")), "lan", ssmG) })
	pimLabReady(t, l)
	time.Sleep(200 * time.Millisecond)
	send(t, l, "src", "-g", ssmG, "-count", "1000", "-rate", "1000")
	time.Sleep(300 * time.Millisecond)
	if p, lost, dups := r.stop(t).Total(); p != 1000 || lost != 0 || dups != 0 {
		t.Fatalf("SSM receiver: %d packets, %d lost, %d duplicates; want 1000, 0, 0", p, lost, dups)
	}
	if rt, ok := mroute(t, l, "r1", "10.0.1.10", ssmG); !ok || oifNames(rt) != "to-r3" {
		t.Errorf("R1 (S,G): %+v, want only to-r3 (no register, no RP)", rt)
	}
}

// Two routers on the receivers' LAN: both hear the receiver's IGMP, only
// the DR (the higher address) pulls the stream onto the LAN, and the
// receiver sees each packet once.
func TestPIMTwoRoutersOnReceiverLAN(t *testing.T) {
	cfg := func(ifs ...string) string {
		return overcastPIM("10.255.0.1", "query-interval: 5s, query-response-interval: 1s", ifs...)
	}
	l := startLab(t, `name: twolhr
nodes:
  - name: src
    routes: ["default via 10.0.1.1"]
  - name: rcv
    routes: ["default via 10.0.3.3"]
  - name: sw
    kind: switch
  - name: r1
    kind: router
    loopback: [10.255.0.1/32]
    routes: ["10.0.3.0/24 via 10.1.13.3"]
`+cfg("src", "to-r3", "to-r4")+`
  - name: r3
    kind: router
    routes: ["10.0.1.0/24 via 10.1.13.1", "10.255.0.1/32 via 10.1.13.1"]
`+cfg("to-r1", "lan")+`
  - name: r4
    kind: router
    routes: ["10.0.1.0/24 via 10.1.14.1", "10.255.0.1/32 via 10.1.14.1"]
`+cfg("to-r1", "lan")+`
links:
  - {a: "src:eth0",  a-addr: 10.0.1.10/24, b: "r1:src",   b-addr: 10.0.1.1/24}
  - {a: "r1:to-r3",  a-addr: 10.1.13.1/24, b: "r3:to-r1", b-addr: 10.1.13.3/24}
  - {a: "r1:to-r4",  a-addr: 10.1.14.1/24, b: "r4:to-r1", b-addr: 10.1.14.4/24}
  - {a: "r3:lan",    a-addr: 10.0.3.2/24,  b: "sw:p3"}
  - {a: "r4:lan",    a-addr: 10.0.3.3/24,  b: "sw:p4"}
  - {a: "rcv:eth0",  a-addr: 10.0.3.10/24, b: "sw:p0"}
`)
	r := startRecv(t, l, "rcv", "-g", G)
	eventually(t, 10*time.Second, "both routers heard the join", func() string {
		if s := hasGroup(api.NewClient(l.Socket("r3")), "lan", G); s != "" {
			return s
		}
		return hasGroup(api.NewClient(l.Socket("r4")), "lan", G)
	})
	// R3 and R4 start 40 ms apart: R3's first Hello on the LAN goes before
	// R4 listens, and once in six suite runs R4's first was not seen
	// either (unexplained; alone the test never showed it); then they
	// meet at the next periodic Hello, 30 s on. This test is about the
	// two routers' forwarding, so it waits that long.
	eventually(t, 35*time.Second, "R3 and R4 neighbours on the LAN", func() string {
		for _, x := range [][3]string{{"r3", "lan", "10.0.3.3"}, {"r4", "lan", "10.0.3.2"}} {
			ns, err := api.NewClient(l.Socket(x[0])).PIMNeighbors()
			if err != nil {
				return err.Error()
			}
			found := false
			for _, n := range ns {
				found = found || n.Interface == x[1] && n.Address == x[2]
			}
			if !found {
				return fmt.Sprintf("%s has no %s on %s: %+v", x[0], x[2], x[1], ns)
			}
		}
		return ""
	})
	pimNeighbors(t, l, "r1", "to-r3", "10.1.13.3")
	pimNeighbors(t, l, "r1", "to-r4", "10.1.14.4")
	time.Sleep(200 * time.Millisecond)
	send(t, l, "src", "-g", G, "-count", "1000", "-rate", "1000")
	time.Sleep(300 * time.Millisecond)
	if p, lost, dups := r.stop(t).Total(); p != 1000 || lost != 0 || dups != 0 {
		t.Fatalf("receiver: %d packets, %d lost, %d duplicates; want 1000, 0, 0", p, lost, dups)
	}
	r3, _ := mroute(t, l, "r3", "10.0.1.10", G)
	r4, _ := mroute(t, l, "r4", "10.0.1.10", G)
	if oifNames(r4) != "lan" || oifNames(r3) != "" {
		t.Errorf("R3 forwards to %q, R4 (the DR, 10.0.3.3) to %q; want only R4 onto lan", oifNames(r3), oifNames(r4))
	}
	if k := kernelVIFOut(t, l, "r3", "lan"); k != 0 {
		t.Errorf("R3's kernel sent %d packets onto the LAN", k)
	}
}

// 2,000 SSM channels behind R3: the domain converges, every join/prune on
// the wire fits the MTU (checked in a capture), and every channel delivers.
func TestPIMThousandsOfChannels(t *testing.T) {
	noRP := func(ifs ...string) string { return overcastPIM("", "", ifs...) }
	l := startLab(t, pimLab(map[string]string{
		"r1": noRP("src", "to-r2", "to-r3"), "r2": noRP("to-r1", "to-r3", "lan"), "r3": noRP("to-r1", "to-r2", "lan"),
	}))
	pimLabReady(t, l)
	capture := filepath.Join(t.TempDir(), "jp.pcap")
	td := l.Command("r1", "tcpdump", "-i", "to-r3", "-w", capture, "-U", "pim")
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	r := startRecv(t, l, "rcv", "-g", "232.10.0.0+1999", "-s", "10.0.1.10")
	c := api.NewClient(l.Socket("r1"))
	eventually(t, 60*time.Second, "R1 has 2,000 (S,G) joins from R3", func() string {
		js, err := c.PIMJoins()
		if err != nil {
			return err.Error()
		}
		n := 0
		for _, j := range js {
			if len(j.Downstream) > 0 {
				n++
			}
		}
		if n < 2000 {
			return fmt.Sprintf("%d joined", n)
		}
		return ""
	})
	converged := time.Since(start)
	// show status: R1 holds a flow and a kernel route per channel, reads
	// their counters every 2 s (1 s more per 2,000 routes), and says how
	// much memory it holds.
	status, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	if status.Flows < 2000 || status.Routes < 2000 || time.Duration(status.CounterPoll) != 2*time.Second || status.HeapBytes == 0 || status.GoMemoryBytes < status.HeapBytes {
		t.Errorf("R1 status with 2,000 channels: %d flows, %d routes, counter poll %s, heap %d of %d bytes",
			status.Flows, status.Routes, status.CounterPoll, status.HeapBytes, status.GoMemoryBytes)
	}
	t.Logf("R1 with 2,000 channels: heap %.1f MB, Go memory %.1f MB", float64(status.HeapBytes)/(1<<20), float64(status.GoMemoryBytes)/(1<<20))
	send(t, l, "src", "-g", "232.10.0.0+1999", "-count", "3", "-rate", "20")
	time.Sleep(time.Second)
	st := r.stop(t)
	td.Process.Signal(syscall.SIGTERM)
	td.Wait()
	complete := 0
	for _, s := range st.Streams {
		if s.Packets == 3 && s.Dups == 0 {
			complete++
		}
	}
	if complete != 2000 {
		t.Fatalf("%d of 2,000 channels got all 3 packets (%d streams)", complete, len(st.Streams))
	}
	out, err := exec.Command("tshark", "-r", capture, "-Y", "pim.type == 3", "-T", "fields", "-e", "ip.len", "-e", "pim.numgroups").Output()
	if err != nil {
		t.Fatal(err)
	}
	msgs, groups, largest := 0, 0, 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var ln, ng int
		fmt.Sscan(strings.ReplaceAll(line, "\t", " "), &ln, &ng)
		msgs++
		groups += ng
		largest = max(largest, ln)
	}
	if largest > 1500 || msgs == 0 {
		t.Fatalf("%d join/prunes, largest IP packet %d bytes", msgs, largest)
	}
	// A (S,G) join takes 20 bytes: 2,000 fit in 28 messages of 1,480. The
	// joins arrive in a burst and must go out packed, not one per message.
	if msgs > 2*28 || groups < 2000 {
		t.Errorf("%d join/prune messages carrying %d group entries; want them packed (28 is the fewest)", msgs, groups)
	}
	t.Logf("2,000 channels: R1 had every join %s after the receiver started; %d join/prune messages (%d group entries), largest %d bytes",
		converged.Round(time.Millisecond), msgs, groups, largest)
}

// An SPT threshold at the last hop: R3 moves a source to the SPT only once
// it has seen 1,000 of its packets on the shared tree (the kernel's
// per-flow counter, read each second), and the switch loses nothing.
func TestPIMSPTThresholdPackets(t *testing.T) {
	const igmp = "query-interval: 5s, query-response-interval: 1s"
	r3 := `    overcast: |
      pim:
        rp: [{address: 10.255.0.2}]
        spt-threshold: [{groups: 239.0.0.0/8, threshold: 1000 packets}]
      interfaces:
        - {name: to-r1, pim: true, igmp: {` + igmp + `}}
        - {name: to-r2, pim: true, igmp: {` + igmp + `}}
        - {name: lan, pim: true, igmp: {` + igmp + `}}
`
	l := startLab(t, pimLab(map[string]string{"r3": r3}))
	rc := startRecv(t, l, "rcv", "-g", G)
	eventually(t, 10*time.Second, "receiver joined", func() string { return hasGroup(api.NewClient(l.Socket("r3")), "lan", G) })
	pimLabReady(t, l)
	time.Sleep(200 * time.Millisecond)
	src := "10.0.1.10"
	type seen struct {
		iif, spt string
	}
	var during seen
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(600 * time.Millisecond) // 600 packets in: below the threshold
		if r, ok := mroute(t, l, "r3", src, G); ok {
			during.iif = r.IIF
		}
		js, _ := api.NewClient(l.Socket("r3")).PIMJoins()
		for _, j := range js {
			if j.Source == src && j.Group == G {
				during.spt = fmt.Sprintf("spt=%v threshold=%s rate=%d crossed=%v", j.SPT, j.SPTThreshold, j.RateKbps, j.SPTWanted)
			}
		}
	}()
	send(t, l, "src", "-g", G, "-count", "4000", "-rate", "1000")
	<-done
	time.Sleep(500 * time.Millisecond)
	st := rc.stop(t)
	p, lost, dups := st.Total()
	if len(st.Streams) == 1 && dups == 0 && p+lost == 4000 && startOfStreamLoss(st.Streams[0]) {
		t.Logf("receiver: packets %v lost at the stream's start (a known defect, see startOfStreamLoss); all others arrived once", st.Streams[0].MissingSample)
	} else if p != 4000 || lost != 0 || dups != 0 {
		t.Errorf("receiver: %d packets, %d lost, %d duplicates; want 4000, 0, 0", p, lost, dups)
	}
	t.Logf("R3 after 600 packets: input %s, %s", during.iif, during.spt)
	if during.iif != "to-r2" || !strings.Contains(during.spt, "spt=false threshold=1000 packets") {
		t.Errorf("R3 after 600 packets: input %q (%s); want the shared tree (to-r2) below the threshold", during.iif, during.spt)
	}
	if r, ok := mroute(t, l, "r3", src, G); !ok || r.IIF != "to-r1" {
		t.Errorf("R3 (S,G) after 4,000 packets: %+v; want input to-r1 (the SPT)", r)
	}
}
