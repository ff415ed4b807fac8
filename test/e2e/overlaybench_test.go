package e2e

import (
	"overcast/internal/tools/mcast"

	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv4"

	"overcast/internal/api"
	"overcast/internal/lab"
	"overcast/internal/overlay"
	wire "overcast/internal/packet/overlay"
)

// fakePeers are overlay peers in one namespace, run by this process with
// the same protocol core as the daemon (internal/overlay): each binds its
// own address, keeps its session with the node under test and declares
// interest when asked. Data to them is dropped and counted by nft before
// any socket, so receiving costs nothing on the benchmark's two cores.
type fakePeers struct {
	mu    sync.Mutex
	nodes []*overlay.Node
	conns []*net.UDPConn
	stop  chan struct{}
}

func startFakePeers(b testing.TB, l *lab.Lab, node string, addrs []netip.Addr, target netip.AddrPort) *fakePeers {
	b.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, _ := netns.Get()
	defer orig.Close()
	ns, err := netns.GetFromName(l.NS(node))
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		b.Fatal(err)
	}
	defer netns.Set(orig)
	fp := &fakePeers{stop: make(chan struct{})}
	now := time.Now()
	for _, a := range addrs {
		local := netip.AddrPortFrom(a, 6790)
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(local))
		if err != nil {
			b.Fatal(err)
		}
		n := overlay.New(overlay.Config{Local: local, Key: []byte(overlayKey)}, now)
		fp.nodes = append(fp.nodes, n)
		fp.conns = append(fp.conns, c)
		fp.send(c, n.AddPeer(target, overlay.Static, now))
	}
	for i := range fp.nodes {
		go fp.read(i)
	}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-fp.stop:
				return
			case now := <-t.C:
				fp.mu.Lock()
				for i, n := range fp.nodes {
					fp.send(fp.conns[i], n.Advance(now))
				}
				fp.mu.Unlock()
			}
		}
	}()
	b.Cleanup(func() {
		close(fp.stop)
		for _, c := range fp.conns {
			c.Close()
		}
	})
	return fp
}

func (fp *fakePeers) send(c *net.UDPConn, r overlay.Result) {
	for _, d := range r.Send {
		c.WriteToUDPAddrPort(d.B, d.To)
	}
}

func (fp *fakePeers) read(i int) {
	buf := make([]byte, 65536)
	for {
		n, from, err := fp.conns[i].ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if k, _ := wire.Kind(buf[:n]); k == wire.TypeData {
			continue
		}
		fp.mu.Lock()
		fp.send(fp.conns[i], fp.nodes[i].Receive(netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), buf[:n], time.Now()))
		fp.mu.Unlock()
	}
}

// want makes the first k peers want groups (ASM) and the rest nothing.
func (fp *fakePeers) want(k int, groups []netip.Addr) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	now := time.Now()
	for i, n := range fp.nodes {
		f := overlay.Filter{}
		if i < k {
			f.Mode = wire.Exclude
		}
		for _, g := range groups {
			n.SetInterest(g, f)
		}
		fp.send(fp.conns[i], n.Flush(now))
	}
}

// benchSendmmsg is the baseline: the kernel sending the same copies as
// plain unicast UDP, one sendmmsg of every destination per packet, as
// fast as it can for a duration. It runs in a namespace as this binary
// re-executed (OVERCAST_E2E_HELPER=sendmmsg) and prints copies sent.
func benchSendmmsg() {
	dsts := strings.Split(os.Getenv("DSTS"), ",")
	size, _ := strconv.Atoi(os.Getenv("SIZE"))
	dur, _ := time.ParseDuration(os.Getenv("DURATION"))
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		panic(err)
	}
	pc := ipv4.NewPacketConn(c)
	buf := make([]byte, size)
	var msgs []ipv4.Message
	for _, d := range dsts {
		msgs = append(msgs, ipv4.Message{Buffers: [][]byte{buf}, Addr: net.UDPAddrFromAddrPort(netip.MustParseAddrPort(d))})
	}
	sent := 0
	rate, _ := strconv.ParseFloat(os.Getenv("RATE"), 64) // packets per second; 0: as fast as it goes
	start := time.Now()
	for time.Since(start) < dur {
		if rate > 0 {
			if ahead := time.Duration(float64(sent)/rate*1e9) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		for off := 0; off < len(msgs); {
			n, err := pc.WriteBatch(msgs[off:], 0)
			if err != nil {
				off++
				continue
			}
			off += n
			sent += n
		}
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{"copies": sent, "seconds": time.Since(start).Seconds()})
	os.Exit(0)
}

// procCPU is a process's user+system CPU time.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

func daemonPID(l *lab.Lab, node string) int {
	b, _ := os.ReadFile(l.Dir + "/" + node + ".pid")
	p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return p
}

func procRSS(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

const benchPeers = 200

func overlayBenchLab(b testing.TB) (*lab.Lab, []netip.Addr, *fakePeers) {
	var addrs []netip.Addr
	var list []string
	for i := range benchPeers {
		a := netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)})
		addrs = append(addrs, a)
		list = append(list, a.String())
	}
	spec := fmt.Sprintf(`
name: ovlbench
nodes:
  - name: a
    overcast: |
%s
  - name: sinks
    setup:
      - for i in $(seq 1 %d); do ip addr add 10.0.1.$i/16 dev eth0; done
      - |
        nft -f - <<'EOF'
        table inet sink {
          counter data {}
          chain pre { type filter hook prerouting priority -300; policy accept; udp dport 6790 ip length > 110 counter name "data" drop; }
        }
        EOF
links:
  - {a: a:eth0, a-addr: 10.0.0.1/16, b: sinks:eth0}
`, indent(fmt.Sprintf("overlay:\n  address: 10.0.0.1\n  key: %s\n  peers: [%s]\n", overlayKey, strings.Join(list, ", ")), "      "), benchPeers)
	l := startLab(b, spec)
	fp := startFakePeers(b, l, "sinks", addrs, netip.MustParseAddrPort("10.0.0.1:6790"))
	return l, addrs, fp
}

func sinkCount(b testing.TB, l *lab.Lab) int {
	out, err := l.Exec("sinks", "nft", "list", "counter", "inet", "sink", "data")
	if err != nil {
		b.Fatal(err)
	}
	i := strings.Index(out, "packets ")
	var n int
	fmt.Sscan(out[i+len("packets "):], &n)
	return n
}

// BenchmarkOverlayReplication: one node replicating a local sender's
// stream to 1, 8, 64 and 200 interested peers (64- and 1,316-byte
// payloads), against the kernel sending the same copies as plain UDP with
// sendmmsg, in the same run. Copies are counted where they arrive (nft
// in the peers' namespace). Reported: copies per second both ways, the
// ratio, and copies per daemon CPU second. `make bench`.
func BenchmarkOverlayReplication(b *testing.B) {
	l, addrs, fp := overlayBenchLab(b)
	c := api.NewClient(l.Socket("a"))
	g := netip.MustParseAddr("239.50.0.1")
	pid := daemonPID(l, "a")
	const window = 3 * time.Second
	for _, size := range []int{64, 1316} {
		for _, peers := range []int{1, 8, 64, 200} {
			b.Run(fmt.Sprintf("payload=%d/peers=%d", size, peers), func(b *testing.B) {
				fp.want(peers, []netip.Addr{g})
				deadline := time.Now().Add(10 * time.Second)
				for overlayWanting(c, g) != peers {
					if time.Now().After(deadline) {
						b.Fatalf("%d peers want the group, not %d", overlayWanting(c, g), peers)
					}
					time.Sleep(50 * time.Millisecond)
				}
				var ovl, base, perCPU []float64
				for b.Loop() {
					before, cpu0 := sinkCount(b, l), procCPU(pid)
					if err := sendErr(l, "a", "-g", g.String(), "-rate", "10000000", "-duration", window.String(), "-size", fmt.Sprint(size)); err != nil {
						b.Fatal(err)
					}
					time.Sleep(100 * time.Millisecond)
					copies := float64(sinkCount(b, l) - before)
					cpu := procCPU(pid) - cpu0
					ovl = append(ovl, copies/window.Seconds())
					if cpu > 0 {
						perCPU = append(perCPU, copies/cpu.Seconds())
					}
					var dsts []string
					for _, a := range addrs[:peers] {
						dsts = append(dsts, a.String()+":6790")
					}
					before = sinkCount(b, l)
					cmd := l.Command("a", os.Args[0])
					cmd.Env = append(os.Environ(), "OVERCAST_E2E_HELPER=sendmmsg", "DSTS="+strings.Join(dsts, ","),
						"SIZE="+fmt.Sprint(size+wire.DataHeaderLen+28), "DURATION="+window.String())
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("baseline: %v %s", err, out)
					}
					time.Sleep(100 * time.Millisecond)
					base = append(base, float64(sinkCount(b, l)-before)/window.Seconds())
				}
				mo, mb := median(ovl), median(base)
				b.ReportMetric(mo, "overlay-copies/s")
				b.ReportMetric(mb, "sendmmsg-copies/s")
				b.ReportMetric(mb/mo, "baseline/overlay")
				b.ReportMetric(median(perCPU), "copies/daemon-cpu-s")
			})
		}
	}
}

func overlayWanting(c interface{ Get(string, any) error }, g netip.Addr) int {
	var o []api.OverlayPeer
	if err := c.Get(api.PathOverlayPeers, &o); err != nil {
		return -1
	}
	n := 0
	for _, p := range o {
		n += p.Groups
	}
	return n
}

// overlayPairLab is two overlay nodes a and b on a switch that floods (no
// snooping): the overlay path through ovl0, and a direct multicast path
// on eth0 between the same namespaces for comparison.
func overlayPairLab(b testing.TB) *lab.Lab {
	conf := func(addr, peer string) string {
		return indent(fmt.Sprintf("overlay:\n  address: %s\n  key: %s\n  peers: [%s]\n", addr, overlayKey, peer), "      ")
	}
	return startLab(b, fmt.Sprintf(`
name: ovlpair
nodes:
  - {name: u, kind: switch}
  - name: a
    overcast: |
%s
  - name: b
    overcast: |
%s
links:
  - {a: a:eth0, a-addr: 10.0.0.1/24, b: u:s1}
  - {a: b:eth0, a-addr: 10.0.0.2/24, b: u:s2}
`, conf("10.0.0.1", "10.0.0.2"), conf("10.0.0.2", "10.0.0.1")))
}

// BenchmarkOverlayLatency: with the source already sending (1,000 pps),
// the time from a receiver's join on another node to its first packet,
// and the one-way latency of the stream (the sender's timestamps, one
// clock), through the overlay and directly on the shared link. Medians.
func BenchmarkOverlayLatency(b *testing.B) {
	l := overlayPairLab(b)
	c := api.NewClient(l.Socket("a"))
	deadline := time.Now().Add(10 * time.Second)
	for overlayPeersUp(c, 1) != "" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, path := range []struct{ name, group, iface string }{
		{"overlay", "239.70.0.1", ""},
		{"direct", "239.70.0.2", "eth0"},
	} {
		b.Run(path.name, func(b *testing.B) {
			args := []string{bin, "send", "-g", path.group, "-rate", "1000", "-duration", "1h", "-ttl", "8"}
			if path.iface != "" {
				args = append(args, "-i", path.iface)
			}
			sender := l.Command("a", args...)
			if err := sender.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { sender.Process.Kill(); sender.Wait() }()
			time.Sleep(300 * time.Millisecond)
			var join, lat []float64
			for b.Loop() {
				rargs := []string{bin, "recv", "-json", "-q", "-g", path.group, "-duration", "1500ms"}
				if path.iface != "" {
					rargs = append(rargs, "-i", path.iface)
				}
				out, err := l.Command("b", rargs...).Output()
				if err != nil {
					b.Fatalf("recv: %v", err)
				}
				var st mcast.Stats
				if err := json.Unmarshal(out, &st); err != nil || len(st.Streams) == 0 || st.Streams[0].Packets == 0 {
					b.Fatalf("recv output %s: %v", out, err)
				}
				join = append(join, float64(st.FirstAfterJoin)/1e6)
				lat = append(lat, float64(st.Streams[0].LatencyMS)*1000)
				time.Sleep(500 * time.Millisecond) // the leave settles before the next join
			}
			b.ReportMetric(median(join), "join-ms")
			b.ReportMetric(median(lat), "one-way-us")
		})
	}
}

// BenchmarkOverlayVsFlood: four nodes, a sender on one, a receiver on
// one; the other two want nothing. Linux VXLAN with a flood list to the
// same peers (what flannel- and Weave-style overlays do) against the
// overlay, in the same run: bytes that reached the two uninterested
// nodes' underlay, and packets per second the interested one received.
func BenchmarkOverlayVsFlood(b *testing.B) {
	all := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}
	var nodes strings.Builder
	for i, a := range all {
		var fdb []string
		for j, p := range all {
			if j != i {
				fdb = append(fdb, fmt.Sprintf("bridge fdb append 00:00:00:00:00:00 dev vx0 dst %s", p))
			}
		}
		fmt.Fprintf(&nodes, "  - name: n%d\n    setup:\n      - ip link add vx0 type vxlan id 42 dstport 4789 local %s dev eth0 nolearning\n      - %s\n      - ip addr add 192.168.100.%d/24 dev vx0\n      - ip link set vx0 up\n    overcast: |\n%s\n",
			i+1, a, strings.Join(fdb, "; "), i+1, indent(fmt.Sprintf("overlay:\n  address: %s\n  key: %s\n  local-route: false\n  peers: [%s]\n", a, overlayKey, strings.Join(all, ", ")), "      "))
	}
	l := startLab(b, "name: ovlflood\nnodes:\n  - {name: u, kind: switch}\n"+nodes.String()+`links:
  - {a: n1:eth0, a-addr: 10.0.0.1/24, b: u:s1}
  - {a: n2:eth0, a-addr: 10.0.0.2/24, b: u:s2}
  - {a: n3:eth0, a-addr: 10.0.0.3/24, b: u:s3}
  - {a: n4:eth0, a-addr: 10.0.0.4/24, b: u:s4}
`)
	for i := range all {
		n := fmt.Sprintf("n%d", i+1)
		rules := "table inet under {\n counter vxlan {}\n counter ovl {}\n chain pre {\n  type filter hook prerouting priority -300; policy accept;\n  iifname eth0 udp dport 4789 counter name \"vxlan\"\n  iifname eth0 udp dport 6790 ip length > 200 counter name \"ovl\"\n }\n}\n"
		if out, err := l.Exec(n, "sh", "-c", "nft -f - <<'EOF'\n"+rules+"EOF"); err != nil {
			b.Fatalf("nft: %v %s", err, out)
		}
	}
	bytesAt := func(node, counter string) int {
		out, err := l.Exec(node, "nft", "list", "counter", "inet", "under", counter)
		if err != nil {
			b.Fatal(err)
		}
		i := strings.Index(out, "bytes ")
		var n int
		fmt.Sscan(out[i+len("bytes "):], &n)
		return n
	}
	for _, path := range []struct{ name, counter, iface, group string }{
		{"vxlan-flood", "vxlan", "vx0", "239.80.0.1"},
		{"overlay", "ovl", "ovl0", "239.80.0.2"},
	} {
		b.Run(path.name, func(b *testing.B) {
			var uninterested, pps []float64
			for b.Loop() {
				before := bytesAt("n3", path.counter) + bytesAt("n4", path.counter)
				rcv := l.Command("n2", bin, "recv", "-json", "-q", "-g", path.group, "-i", path.iface, "-duration", "4s")
				var out strings.Builder
				rcv.Stdout = &out
				if err := rcv.Start(); err != nil {
					b.Fatal(err)
				}
				time.Sleep(700 * time.Millisecond)
				if err := sendErr(l, "n1", "-g", path.group, "-i", path.iface, "-rate", "10000000", "-duration", "2s", "-size", "1000"); err != nil {
					b.Fatal(err)
				}
				rcv.Wait()
				var st struct {
					Streams []struct {
						Packets uint64 `json:"packets"`
					} `json:"streams"`
				}
				json.Unmarshal([]byte(out.String()), &st)
				got := uint64(0)
				for _, s := range st.Streams {
					got += s.Packets
				}
				pps = append(pps, float64(got)/2)
				uninterested = append(uninterested, float64(bytesAt("n3", path.counter)+bytesAt("n4", path.counter)-before))
			}
			b.ReportMetric(median(uninterested)/1e6, "MB-to-uninterested")
			b.ReportMetric(median(pps), "pps-to-receiver")
		})
	}
}

// BenchmarkOverlayScale: 200 peers wanting 50 groups each and 10,000
// (S,G) replicated (one per group, from a local sender): the daemon's
// resident memory and its CPU per minute at steady state
// (OVERLAY_SCALE_WINDOW, default 60s).
func BenchmarkOverlayScale(b *testing.B) {
	l, _, fp := overlayBenchLab(b)
	c := api.NewClient(l.Socket("a"))
	pid := daemonPID(l, "a")
	window := 60 * time.Second
	if w, err := time.ParseDuration(os.Getenv("OVERLAY_SCALE_WINDOW")); err == nil {
		window = w
	}
	for b.Loop() {
		fp.mu.Lock()
		now := time.Now()
		for i, n := range fp.nodes {
			for j := range 50 {
				n.SetInterest(netip.AddrFrom4([4]byte{239, 60, byte(i), byte(j)}), overlay.Filter{Mode: wire.Exclude})
			}
			fp.send(fp.conns[i], n.Flush(now))
		}
		fp.mu.Unlock()
		deadline := time.Now().Add(30 * time.Second)
		for overlayWanting(c, netip.Addr{}) != 10_000 {
			if time.Now().After(deadline) {
				b.Fatalf("%d interest records at the node, want 10000", overlayWanting(c, netip.Addr{}))
			}
			time.Sleep(100 * time.Millisecond)
		}
		var groups []string
		for i := range benchPeers {
			groups = append(groups, fmt.Sprintf("239.60.%d.0+50", i))
		}
		if err := sendErr(l, "a", "-g", strings.Join(groups, ","), "-count", "1", "-rate", "0.2"); err != nil { // rate is per group: 2,000 packets a second in all
			b.Fatal(err)
		}
		var o api.Overlay
		deadline = time.Now().Add(30 * time.Second)
		for {
			if err := c.Get(api.PathOverlay, &o); err != nil {
				b.Fatal(err)
			}
			if o.Routes >= 10_000 || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if o.Routes < 10_000 {
			b.Fatalf("%d (S,G) replicated, want 10000", o.Routes)
		}
		time.Sleep(5 * time.Second)
		cpu0 := procCPU(pid)
		time.Sleep(window)
		cpu := procCPU(pid) - cpu0
		b.ReportMetric(procRSS(pid), "RSS-MB")
		b.ReportMetric(cpu.Seconds()*float64(time.Minute)/float64(window), "CPU-s/min")
		b.ReportMetric(float64(o.Routes), "routes")
		b.ReportMetric(float64(o.PeersUp), "peers-up")
	}
}
