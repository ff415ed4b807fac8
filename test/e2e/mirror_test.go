package e2e

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"overcast/internal/testkit/schemacheck"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"

	"overcast/internal/api"
	"overcast/internal/lab"
	"overcast/internal/mirror"
	"overcast/internal/tools/collect"
)

// seed004 is seed 004's two compute hosts on one underlay switch, with a
// third host on the same switch and a test host (198.51.100.8) behind it.
// VM 1 sits on host 1's bridge brint (port vm1p), with a local monitor
// mon1 on the same bridge; the monitor VM mon sits on host 2 (port monp).
// Host 1 mirrors VM 1's port, BOTH ways, to host 2 (VNI 4242, from the
// config); host 2 runs the collector, which re-injects onto monp.
const seed004 = `
name: seed004
nodes:
  - name: fabric
    kind: switch
  - name: vm1
    routes: ["default via 10.0.1.1"]
    sysctls: ["net.ipv6.conf.all.disable_ipv6=1"]
    # tcpdump on the port is the ground truth: with segmentation offload
    # it sees one 64 KB TCP packet where the copies (like the wire) carry
    # its segments.
    setup: ["ethtool -K eth0 tso off gso off >/dev/null"]
  - name: mon1
    sysctls: ["net.ipv6.conf.all.disable_ipv6=1"]
  - name: host1
    kind: router
    sysctls: ["net.ipv6.conf.all.disable_ipv6=1"]
    routes: ["198.51.100.8/32 via 10.9.0.8", "10.0.2.0/24 via 10.9.0.2"]
    setup:
      - ip link add brint type bridge mcast_snooping 0 && ip link set vm1p master brint && ip link set mon1p master brint && ip addr add 10.0.1.1/24 dev brint && ip link set brint up
    overcast: |
      log-level: debug
      mirror:
        services:
          - name: mon
            to: vxlan://10.9.0.2
            vni: 4242
        flows:
          - service: mon
            port: vm1p
            direction: both
  - name: host2
    kind: router
    sysctls: ["net.ipv6.conf.all.disable_ipv6=1"]
    routes: ["10.0.1.0/24 via 10.9.0.1"]
  - name: mon
    sysctls: ["net.ipv6.conf.all.disable_ipv6=1"]
  - name: host3
    routes: ["10.0.1.0/24 via 10.9.0.1"]
    sysctls: ["net.ipv6.conf.all.disable_ipv6=1"]
  - name: th
    loopback: ["198.51.100.8/32"]
    routes: ["10.0.1.0/24 via 10.9.0.1"]
    sysctls: ["net.ipv6.conf.all.disable_ipv6=1"]
    setup: ["ethtool -K eth0 tso off gso off >/dev/null"]
links:
  - {a: vm1:eth0, a-addr: 10.0.1.10/24, b: host1:vm1p}
  - {a: mon1:eth0, a-addr: 10.0.1.30/24, b: host1:mon1p}
  - {a: host1:eth0, a-addr: 10.9.0.1/24, b: fabric:p1}
  - {a: host2:eth0, a-addr: 10.9.0.2/24, b: fabric:p2}
  - {a: host3:eth0, a-addr: 10.9.0.3/24, b: fabric:p3}
  - {a: th:eth0, a-addr: 10.9.0.8/24, b: fabric:p8}
  - {a: mon:eth0, a-addr: 10.0.2.20/24, b: host2:monp, b-addr: 10.0.2.1/24}
`

// collector is a running `overcast mirror collect`.
type collector struct {
	cmd *exec.Cmd
	out *os.File
	dir string
}

func startCollector(t *testing.T, l *lab.Lab, node string, args ...string) *collector {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "collect")
	if err != nil {
		t.Fatal(err)
	}
	errf, _ := os.CreateTemp(t.TempDir(), "collect-err")
	dir := t.TempDir()
	cmd := l.Command(node, append([]string{bin, "mirror", "collect", "--json", "--pcap", dir}, args...)...)
	cmd.Stdout, cmd.Stderr = out, errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &collector{cmd: cmd, out: out, dir: dir}
	t.Cleanup(func() { c.cmd.Process.Kill(); c.cmd.Wait() })
	eventually(t, 5*time.Second, "collector listening", func() string {
		b, _ := os.ReadFile(errf.Name())
		if !strings.Contains(string(b), "collecting") {
			return string(b)
		}
		return ""
	})
	return c
}

func (c *collector) stop(t *testing.T) collect.Stats {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	c.cmd.Wait()
	b, _ := os.ReadFile(c.out.Name())
	schemacheck.Check(t, "tool_collect", b)
	var st collect.Stats
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("collector output %q: %v", b, err)
	}
	return st
}

// frames reads every pcapng file the collector wrote for a VNI.
func (c *collector) frames(t *testing.T, vni uint32) [][]byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(c.dir, fmt.Sprintf("vni-%d-*.pcapng", vni)))
	var out [][]byte
	for _, f := range files {
		out = append(out, readPcap(t, f, true)...)
	}
	return out
}

// readPcap reads a pcap or (ng) pcapng file's frames.
func readPcap(t *testing.T, file string, ng bool) [][]byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	if ng {
		r, err = pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	} else {
		r, err = pcapgo.NewReader(f)
	}
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out [][]byte
	for {
		b, _, err := r.ReadPacketData()
		if err == io.EOF {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, append([]byte(nil), b...))
	}
}

// capture is tcpdump writing a pcap in a node: the ground truth of what
// crossed a port.
type capture struct {
	cmd        *exec.Cmd
	file, errf string
}

func startCapture(t *testing.T, l *lab.Lab, node, iface, filter string) *capture {
	t.Helper()
	file := filepath.Join(t.TempDir(), node+"-"+iface+".pcap")
	errf, _ := os.CreateTemp(t.TempDir(), "tcpdump")
	// In immediate mode libpcap's ring has fixed slots, each as large as
	// the biggest frame the port can hand up (64 KiB with offloads): the
	// default 4 MiB is at most 64 slots, and a tcpdump descheduled on a busy
	// machine drops what comes next ("dropped by kernel", logged below;
	// seen in CI as copies the reference lacked). 16 MiB held in every
	// trial; 64 MiB made the first capture on a fresh machine start late.
	args := []string{"tcpdump", "-Z", "root", "-p", "-U", "--immediate-mode", "-B", "16384", "-n", "-s", "0", "-i", iface, "-w", file}
	if filter != "" {
		args = append(args, filter)
	}
	cmd := l.Command(node, args...)
	cmd.Stderr = errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	eventually(t, 5*time.Second, "tcpdump listening", func() string {
		b, _ := os.ReadFile(errf.Name())
		if !strings.Contains(string(b), "listening") {
			return string(b)
		}
		return ""
	})
	time.Sleep(200 * time.Millisecond) // "listening" comes a moment before the first packet is taken
	return &capture{cmd: cmd, file: file, errf: errf.Name()}
}

func (c *capture) stop(t *testing.T) [][]byte {
	t.Helper()
	time.Sleep(300 * time.Millisecond)
	c.cmd.Process.Signal(syscall.SIGINT)
	c.cmd.Wait()
	// tcpdump says on exit whether the kernel dropped packets it could not
	// take: logged, so that a mismatch that follows names its cause.
	b, _ := os.ReadFile(c.errf)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "dropped by kernel") && !strings.HasPrefix(line, "0 ") {
			t.Logf("tcpdump %s: %s", filepath.Base(c.file), line)
		}
	}
	return readPcap(t, c.file, false)
}

// pktKey names an IPv4 packet by its header and transport header, with
// the checksums a veth may leave partial (and the kernel completes in a
// copy) left out.
func pktKey(frame []byte) (string, bool) {
	if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return "", false
	}
	ip := frame[14:]
	hl := int(ip[0]&0x0f) * 4
	if len(ip) < hl+8 {
		return "", false
	}
	k := append([]byte{}, ip[:10]...)
	k = append(k, ip[12:20]...)
	l4 := append([]byte{}, ip[hl:hl+8]...)
	switch ip[9] {
	case 1:
		l4[2], l4[3] = 0, 0
	case 17:
		l4[6], l4[7] = 0, 0
	}
	return string(append(k, l4...)), true
}

// multiset of packet keys (a frame that is not IPv4, ARP say, is its
// own key).
func keys(frames [][]byte) map[string]int {
	m := map[string]int{}
	for _, f := range frames {
		if k, ok := pktKey(f); ok {
			m[k]++
		} else {
			m["frame:"+string(f[min(6, len(f)):])]++ // a monitor's copy may carry another destination MAC
		}
	}
	return m
}

// selected is what a rule list selects of the frames (the reference
// classifier).
func selected(t *testing.T, frames [][]byte, rules ...string) [][]byte {
	t.Helper()
	flt, err := mirror.Flow{Name: "x", Rules: rules}.Filter()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, f := range frames {
		p, err := mirror.ParseIPv4(f[min(14, len(f)):])
		ok, _ := flt.Classify(p)
		if err != nil || len(f) < 14 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
			ok, _ = flt.ClassifyOther()
		}
		if ok {
			out = append(out, f)
		}
	}
	return out
}

// sameKeys compares two multisets, naming the first differences.
func sameKeys(want, got map[string]int) string {
	var diff []string
	for k, n := range want {
		if got[k] != n {
			diff = append(diff, fmt.Sprintf("%s: want %d, got %d", keyString(k), n, got[k]))
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			diff = append(diff, fmt.Sprintf("%s: want 0, got %d", keyString(k), n))
		}
	}
	sort.Strings(diff)
	if len(diff) > 5 {
		diff = append(diff[:5], fmt.Sprintf("... %d differences", len(diff)))
	}
	return strings.Join(diff, "\n")
}

// keyString spells a pktKey for a failure message: protocol, addresses
// and ports, the IP length, ID and TTL, and (TCP) the sequence number. An
// IPv4 key is 26 octets: IP header octets 0-9 and 12-19, then the first 8
// of the transport header; any other key is printed in hex.
func keyString(k string) string {
	if len(k) != 26 {
		return fmt.Sprintf("%x", k)
	}
	b := []byte(k)
	src, dst := netip.AddrFrom4([4]byte(b[10:14])), netip.AddrFrom4([4]byte(b[14:18]))
	l4 := b[18:]
	head := fmt.Sprintf("len %d id %#04x ttl %d", binary.BigEndian.Uint16(b[2:]), binary.BigEndian.Uint16(b[4:]), b[8])
	switch b[9] {
	case 6:
		return fmt.Sprintf("TCP %s:%d > %s:%d seq %d, %s", src, binary.BigEndian.Uint16(l4), dst, binary.BigEndian.Uint16(l4[2:]), binary.BigEndian.Uint32(l4[4:]), head)
	case 17:
		return fmt.Sprintf("UDP %s:%d > %s:%d, %s", src, binary.BigEndian.Uint16(l4), dst, binary.BigEndian.Uint16(l4[2:]), head)
	case 1:
		return fmt.Sprintf("ICMP type %d %s > %s, %s", l4[0], src, dst, head)
	}
	return fmt.Sprintf("proto %d %s > %s, %s (%x)", b[9], src, dst, head, k)
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// netdevCount counts, at a device's ingress (before any MAC or IP check
// drops a flooded frame), frames matching an nft expression.
func netdevCount(t *testing.T, l *lab.Lab, node, dev, name, expr string) {
	t.Helper()
	nftApply(t, l, node, fmt.Sprintf("table netdev nd_%s {\n counter n {}\n chain in {\n  type filter hook ingress device %s priority -500; policy accept;\n  %s counter name \"n\"\n }\n}", name, dev, expr))
}

func netdevCounted(t *testing.T, l *lab.Lab, node, name string) int {
	t.Helper()
	return nftNamedCounter(t, l, node, "netdev", "nd_"+name)
}

// trafficScript is VM 1's mixed load: UDP to several ports of the test
// host and of host 3, a TCP transfer to the test host, pings.
const trafficScript = `
import socket, subprocess, sys, time
tag = sys.argv[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(40):
    for dst in (("198.51.100.8", 5001), ("198.51.100.8", 7000), ("10.9.0.3", 5001), ("10.9.0.3", 7000), ("198.51.100.8", 6000)):
        u.sendto((tag + " %d" % i).encode(), dst)
    time.sleep(0.002)
t = socket.create_connection(("198.51.100.8", 5001), timeout=5)
t.sendall(b"x" * 20000)
t.shutdown(socket.SHUT_WR)
while t.recv(65536):
    pass
t.close()
subprocess.run(["ping", "-q", "-c", "10", "-i", "0.01", "198.51.100.8"], check=True, stdout=subprocess.DEVNULL)
subprocess.run(["ping", "-q", "-c", "10", "-i", "0.01", "10.9.0.3"], check=True, stdout=subprocess.DEVNULL)
`

// tcpSink accepts connections on 5001 and reads them to the end.
const tcpSink = `
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001)); s.listen(16)
def serve(c):
    while c.recv(65536):
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`

func startPy(t *testing.T, l *lab.Lab, node, script string) {
	t.Helper()
	cmd := l.Command(node, "python3", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

// startTCPSink starts tcpSink on a node and waits until it listens.
func startTCPSink(t *testing.T, l *lab.Lab, node string) {
	t.Helper()
	startPy(t, l, node, tcpSink)
	eventually(t, 10*time.Second, "TCP sink listening on 5001", func() string {
		out, _ := l.Exec(node, "ss", "-Hltn", "sport = :5001")
		if !strings.Contains(out, "5001") {
			return "not yet"
		}
		return ""
	})
}

func vm1Traffic(t *testing.T, l *lab.Lab, tag string) {
	t.Helper()
	if out, err := l.Exec("vm1", "python3", "-c", trafficScript, tag); err != nil {
		t.Fatalf("traffic: %v\n%s", err, out)
	}
}

func mirrorCLI(t *testing.T, l *lab.Lab, node string, args ...string) string {
	t.Helper()
	out, err := l.Exec(node, append([]string{bin, "mirror"}, append(args, "-s", l.Socket(node))...)...)
	if err != nil {
		t.Fatalf("overcast mirror %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func mirrorView(t *testing.T, l *lab.Lab, node string) api.MirrorView {
	t.Helper()
	var v api.MirrorView
	if err := api.NewClient(l.Socket(node)).Get(api.PathMirror, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func flowRow(v api.MirrorView, name string) api.MirrorFlowRow {
	for _, f := range v.Flows {
		if f.Name == name {
			return f
		}
	}
	return api.MirrorFlowRow{}
}

// TestMirrorSeed004: the tap flow on VM 1's port, BOTH ways, to the
// monitor on host 2. The collector receives exactly the packets VM 1 sent
// and received (against tcpdump on the port), each once; host 3 on the
// same underlay switch sees no copy, from the first packet, after 60 s
// (when TaaS floods again) and across a collector restart; the monitor
// VM gets every copy re-injected; tshark reads the VXLAN copies and the
// pcapng files cleanly.
func TestMirrorSeed004(t *testing.T) {
	l := startLab(t, seed004)
	startTCPSink(t, l, "th")
	netdevCount(t, l, "host3", "eth0", "vx", "udp dport 4789")
	netdevCount(t, l, "host3", "eth0", "all", "meta length > 0")
	netdevCount(t, l, "mon", "eth0", "inj", "ip saddr 10.0.1.10")
	col := startCollector(t, l, "host2", "--inject", "monp", "--vni", "4242")
	// Copies of full-size frames are IP fragments on a 1500-octet underlay
	// (the collector reassembles them): the capture takes the fragments too.
	wire := startCapture(t, l, "host2", "eth0", "udp port 4789 or ip[6:2] & 0x1fff != 0")
	truth := startCapture(t, l, "host1", "vm1p", "")
	vm1Traffic(t, l, "first")
	frames := truth.stop(t)
	wireFrames := wire.stop(t)
	st := col.stop(t)
	want := keys(frames)
	got := keys(col.frames(t, 4242))
	if d := sameKeys(want, got); d != "" {
		t.Fatalf("collector's copies differ from what crossed vm1p (%d want, %d got):\n%s", total(want), total(got), d)
	}
	if len(st.Sessions) != 1 || st.Sessions[0].Packets != uint64(total(want)) || st.Sessions[0].Injected != st.Sessions[0].Packets {
		t.Fatalf("collector account %+v: want one session of %d packets, all injected", st, total(want))
	}
	t.Logf("seed 004: %d packets crossed vm1p (IPv4), the collector got %d, each once", total(want), total(got))
	if n := netdevCounted(t, l, "mon", "inj"); n < total(want)/2 {
		t.Fatalf("the monitor VM saw %d re-injected packets from VM 1, want at least the %d VM 1 sent", n, total(want)/2)
	}
	v := mirrorView(t, l, "host1")
	f := flowRow(v, "mon:vm1p:both")
	if f.State != "attached" || f.Counters.Mirrored != uint64(total(want)) || f.Counters.SendErrors != 0 {
		t.Fatalf("show mirror: flow %+v, want attached with %d mirrored", f, total(want))
	}
	// A 1,500-octet port over a 1,500-octet underlay: full-size copies are fragments, and show mirror says so.
	if !strings.Contains(f.Note, "over 1464 octets are IP fragments") || !strings.Contains(f.Note, "raise it to 1550") {
		t.Fatalf("show mirror: note %q, want the fragmentation named with the fix", f.Note)
	}
	mirrorCLI(t, l, "host1", "service", "add", "cut", "--to", "vxlan://10.9.0.2", "--vni", "9", "--truncate", "1400")
	mirrorCLI(t, l, "host1", "flow", "add", "--service", "cut", "--port", "vm1p", "--direction", "in", "--name", "cut")
	if n := flowRow(mirrorView(t, l, "host1"), "cut").Note; n != "" {
		t.Fatalf("copies cut to 1,400 octets fit the underlay, yet: %q", n)
	}
	mirrorCLI(t, l, "host1", "service", "del", "cut")
	// tshark decodes the wire copies as VXLAN with the inner packets, and
	// reads the pcapng files, without a malformed packet or a warning.
	// (TCP sequence analysis is off: copies of the two directions are made
	// on different CPUs, so a segment's copy may come after its ACK's.)
	wf := filepath.Join(t.TempDir(), "wire.pcap")
	writePcap(t, wf, wireFrames)
	for _, file := range append([]string{wf}, globAll(col.dir)...) {
		out, err := exec.Command("tshark", "-o", "tcp.analyze_sequence_numbers:FALSE", "-r", file, "-Y", "_ws.malformed || _ws.expert.severity >= \"warning\"").Output()
		if err != nil {
			t.Fatalf("tshark %s: %v\n%s", file, err, out)
		}
		if s := strings.TrimSpace(string(out)); s != "" {
			t.Fatalf("tshark found malformed or warned packets in %s:\n%s", file, s)
		}
	}
	// The inner packet's source is the second IP layer (an ICMP error's
	// quoted header would be a third).
	out, err := exec.Command("tshark", "-r", wf, "-Y", "vxlan.vni == 4242", "-T", "fields", "-e", "ip.src").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	fromVM, decoded := 0, 0
	for _, f := range frames {
		if k, ok := pktKey(f); ok && k[10:14] == "\x0a\x00\x01\x0a" {
			fromVM++
		}
	}
	for _, line := range strings.Fields(string(out)) {
		if srcs := strings.Split(line, ","); len(srcs) > 1 && srcs[1] == "10.0.1.10" {
			decoded++
		}
	}
	// The capture on host 2 is a second tcpdump on a busy machine: it may
	// miss a copy the collector got (which has its exact count above), so
	// this asks that tshark decode the inner packets, not count them.
	if decoded == 0 || decoded > fromVM || decoded < fromVM*9/10 {
		t.Fatalf("tshark decoded %d VXLAN copies (VNI 4242) of VM 1's own packets, want %d", decoded, fromVM)
	}
	files := globAll(col.dir)
	out, err = exec.Command("tshark", "-r", files[0], "-T", "fields", "-e", "frame.number").Output()
	if err != nil || len(strings.Fields(string(out))) != total(want) {
		t.Fatalf("tshark reads %d packets from %s, want %d (%v)", len(strings.Fields(string(out))), files[0], total(want), err)
	}
	if n := netdevCounted(t, l, "host3", "vx"); n != 0 {
		t.Fatalf("host 3 saw %d mirrored copies on its underlay port: copies must go to the collector only", n)
	}
	if n := netdevCounted(t, l, "host3", "all"); n == 0 {
		t.Fatal("host 3 saw nothing at all: its counter is not counting (it should see the switch's broadcasts)")
	}

	// 60 s later (TaaS's learned flow times out and floods again), with
	// the collector down for a while and restarted.
	time.Sleep(61 * time.Second)
	vm1Traffic(t, l, "collector down")
	time.Sleep(time.Second) // the last round's TCP teardown is over before the new windows open
	col2 := startCollector(t, l, "host2", "--vni", "4242")
	truth = startCapture(t, l, "host1", "vm1p", "")
	vm1Traffic(t, l, "after 60s")
	frames = truth.stop(t)
	col2.stop(t)
	if d := sameKeys(keys(frames), keys(col2.frames(t, 4242))); d != "" {
		t.Fatalf("after 60 s and a collector restart, the copies differ:\n%s", d)
	}
	if n := netdevCounted(t, l, "host3", "vx"); n != 0 {
		t.Fatalf("host 3 saw %d mirrored copies on its underlay port after 60 s", n)
	}
}

func globAll(dir string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.pcapng"))
	return files
}

func captureInfo(n int) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: n, Length: n}
}

func writePcap(t *testing.T, file string, frames [][]byte) {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	w.WriteFileHeader(65536, 1)
	for _, b := range frames {
		w.WritePacket(captureInfo(len(b)), b)
	}
}

// mirrorRound runs VM 1's load with the port captured and the collector
// on host 2, and returns what crossed the port and what came for a VNI.
func mirrorRound(t *testing.T, l *lab.Lab, vni uint32, load func()) (truth, copies [][]byte) {
	t.Helper()
	time.Sleep(time.Second) // quiet: nothing of an earlier round in flight between the two windows
	col := startCollector(t, l, "host2", "--vni", fmt.Sprint(vni))
	cp := startCapture(t, l, "host1", "vm1p", "")
	load()
	truth = cp.stop(t)
	col.stop(t)
	return truth, col.frames(t, vni)
}

// TestMirrorRules: tap flows added and removed at run time through the
// CLI select exactly what their rules say (the reference classifier on
// what crossed the port is the truth): only traffic to 198.51.100.8;
// rejects before accepts on a mixed TCP/UDP/ICMP load; the same with
// 1,000 rules; one multicast stream by (S,G). Bad input is refused with
// the reason and the running flows go on.
func TestMirrorRules(t *testing.T) {
	l := startLab(t, seed004)
	startTCPSink(t, l, "th")
	mirrorCLI(t, l, "host1", "service", "add", "cls", "--to", "vxlan://10.9.0.2", "--vni", "100")
	load := func() { vm1Traffic(t, l, "rules") }

	check := func(name string, rules ...string) {
		t.Helper()
		args := []string{"flow", "add", "--service", "cls", "--port", "vm1p", "--direction", "both", "--name", name}
		for _, r := range rules {
			args = append(args, "--rule", r)
		}
		mirrorCLI(t, l, "host1", args...)
		truth, copies := mirrorRound(t, l, 100, load)
		want := keys(selected(t, truth, rules...))
		if total(want) == 0 || total(want) == total(keys(truth)) {
			t.Fatalf("%s: the rules select %d of %d packets: the load does not test them", name, total(want), total(keys(truth)))
		}
		if d := sameKeys(want, keys(copies)); d != "" {
			t.Fatalf("%s: the collector's copies differ from what the rules select (%d want, %d got):\n%s", name, total(want), len(copies), d)
		}
		f := flowRow(mirrorView(t, l, "host1"), name)
		if f.State != "attached" || f.Counters.Mirrored != uint64(total(want)) {
			t.Fatalf("%s: show mirror %+v, want %d mirrored", name, f, total(want))
		}
		t.Logf("%s (%d rules): %d of %d packets selected, each copied once; skipped %d", name, len(rules), total(want), total(keys(truth)), f.Counters.Skipped)
		mirrorCLI(t, l, "host1", "flow", "del", name)
	}
	check("only-th", "accept dst 198.51.100.8")
	mixed := []string{
		"10 reject proto udp dport 7000",
		"20 reject proto icmp src 198.51.100.8",
		"30 accept proto udp",
		"40 accept proto tcp dport 5001",
		"50 accept proto icmp",
	}
	check("mixed", mixed...)
	var many []string
	for i := range 995 {
		many = append(many, fmt.Sprintf("%d accept proto udp src 203.0.%d.%d sport 1-%d", 100+i, i/250, i%250, 1000+i))
	}
	check("thousand", append(many, mixed...)...)

	// By multicast group: one (S,G) of VM 1's two streams.
	mirrorCLI(t, l, "host1", "flow", "add", "--service", "cls", "--port", "vm1p", "--direction", "in", "--name", "grp", "--rule", "accept sg 10.0.1.10,239.1.1.1")
	_, copies := mirrorRound(t, l, 100, func() {
		send(t, l, "vm1", "-g", "239.1.1.1", "-count", "50", "-rate", "500")
		send(t, l, "vm1", "-g", "239.1.1.2", "-count", "50", "-rate", "500")
	})
	n := 0
	for _, c := range copies {
		if k, ok := pktKey(c); ok && k[14:18] == "\xef\x01\x01\x01" && k[10:14] == "\x0a\x00\x01\x0a" {
			n++
		} else {
			t.Fatalf("a copy not of (10.0.1.10, 239.1.1.1): %x", c[:min(len(c), 40)])
		}
	}
	if n != 50 {
		t.Fatalf("(10.0.1.10, 239.1.1.1): %d copies, want the stream's 50 (and none of 239.1.1.2's)", n)
	}

	// Bad input: refused with the reason; what runs is untouched.
	before := mirrorView(t, l, "host1")
	for _, bad := range []struct {
		args []string
		says string
	}{
		{[]string{"flow", "add", "--service", "cls", "--port", "nosuch0", "--direction", "in"}, `no interface "nosuch0"`},
		{[]string{"service", "add", "far", "--to", "vxlan://203.0.113.50", "--vni", "7"}, "not reachable"},
		{[]string{"flow", "add", "--service", "cls", "--port", "vm1p", "--rule", "accept dport 80"}, "ports need proto tcp or udp"},
		{[]string{"flow", "add", "--service", "nosvc", "--port", "vm1p"}, `no tap service "nosvc"`},
		{[]string{"service", "add", "x", "--to", "vxlan://10.9.0.2", "--vni", "0"}, "VNI 0"},
		{[]string{"service", "add", "x", "--to", "port:vm1p", "--truncate", "20"}, "truncate 20"},
		{[]string{"service", "del", "mon"}, "in the config file"},
	} {
		out, err := l.Exec("host1", append([]string{bin, "mirror"}, append(bad.args, "-s", l.Socket("host1"))...)...)
		if err == nil || !strings.Contains(out, bad.says) {
			t.Fatalf("overcast mirror %s: %v %q, want an error saying %q", strings.Join(bad.args, " "), err, out, bad.says)
		}
	}
	after := mirrorView(t, l, "host1")
	if len(after.Services) != len(before.Services) || len(after.Flows) != len(before.Flows) {
		t.Fatalf("bad input changed the sessions: %d/%d services, %d/%d flows", len(before.Services), len(after.Services), len(before.Flows), len(after.Flows))
	}
	vm1Traffic(t, l, "still running")
	if f := flowRow(mirrorView(t, l, "host1"), "mon:vm1p:both"); f.Counters.Mirrored <= flowRow(after, "mon:vm1p:both").Counters.Mirrored {
		t.Fatalf("the config's flow stopped counting after the bad input: %+v", f)
	}
}

// TestMirrorLocalDelivery: a service delivering to the local bridge with
// the monitor's MAC and a 128-octet cut. The bridge takes each copy to the
// monitor (seed 004's copies kept VM 2's MAC and went nowhere), every copy
// 128 octets or less, and no other port sees one.
func TestMirrorLocalDelivery(t *testing.T) {
	l := startLab(t, seed004)
	out, err := l.Exec("mon1", "cat", "/sys/class/net/eth0/address")
	if err != nil {
		t.Fatal(err)
	}
	mac := strings.TrimSpace(out)
	// A static entry: the bridge never floods a copy while it learns.
	if out, err := l.Exec("host1", "bridge", "fdb", "replace", mac, "dev", "mon1p", "master", "static"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	mirrorCLI(t, l, "host1", "service", "add", "loc", "--to", "port:brint", "--mac", mac, "--truncate", "128")
	mirrorCLI(t, l, "host1", "flow", "add", "--service", "loc", "--port", "vm1p", "--direction", "both")
	countRule(t, l, "th", "echo", "icmp type echo-request")
	mon := startCapture(t, l, "mon1", "eth0", "ether dst "+mac+" and not ether src "+mac) // copies, not the broadcasts mon1 hears anyway
	truth := startCapture(t, l, "host1", "vm1p", "")
	if out, err := l.Exec("vm1", "ping", "-q", "-c", "20", "-i", "0.01", "-s", "500", "198.51.100.8"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	frames, got := truth.stop(t), mon.stop(t)
	if d := sameKeys(keys(frames), keys(got)); d != "" {
		t.Fatalf("the monitor's copies differ from what crossed the port (%d want, %d got):\n%s", len(frames), len(got), d)
	}
	cut := 0
	for _, f := range got {
		if _, ipv4 := pktKey(f); ipv4 && len(f) != 128 || len(f) > 128 {
			t.Fatalf("a copy of %d octets reached the monitor, want 128 (542-octet pings cut)", len(f))
		}
		if len(f) == 128 {
			cut++
		}
		if m := fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", f[0], f[1], f[2], f[3], f[4], f[5]); m != mac {
			t.Fatalf("a copy for %s reached the monitor, want its own MAC %s", m, mac)
		}
	}
	if n := counted(t, l, "th", "echo"); n != 20 {
		t.Fatalf("the test host got %d echo requests, want 20: a copy went back into the network", n)
	}
	f := flowRow(mirrorView(t, l, "host1"), "loc:vm1p:both")
	if f.Counters.Mirrored != uint64(len(got)) || f.Counters.Truncated != uint64(cut) || cut < 40 {
		t.Fatalf("show mirror: %+v, want %d mirrored and %d (the 40 pings at least) truncated", f, len(got), cut)
	}
	t.Logf("local delivery: %d copies (%d cut to 128 octets) to %s through the bridge", len(got), cut, mac)
}

// TestMirrorVLAN: two services on one port, one keeping the VLAN tag of
// VM 1's tagged frames, one stripping it; both flows copy the same packets
// (the kernel moves a received tag out of the frame before tc, so the
// rules see the IPv4 packet).
func TestMirrorVLAN(t *testing.T) {
	l := startLab(t, seed004)
	mirrorCLI(t, l, "host1", "service", "add", "keep", "--to", "vxlan://10.9.0.2", "--vni", "201")
	mirrorCLI(t, l, "host1", "service", "add", "strip", "--to", "vxlan://10.9.0.2", "--vni", "202", "--vlan", "strip")
	for _, s := range []string{"keep", "strip"} {
		mirrorCLI(t, l, "host1", "flow", "add", "--service", s, "--port", "vm1p", "--direction", "in", "--rule", "accept dst 10.0.100.99")
	}
	col := startCollector(t, l, "host2")
	// Five tagged frames (this kernel has no 8021q module for a VLAN device).
	py := `
import socket, struct
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b)//2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
mac = open("/sys/class/net/eth0/address").read().strip()
src = bytes(int(x, 16) for x in mac.split(":"))
for i in range(5):
    icmp = struct.pack('!BBHHH', 8, 0, 0, 7, i) + b'v' * 32
    icmp = icmp[:2] + struct.pack('!H', csum(icmp)) + icmp[4:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(icmp), 100 + i, 0, 64, 1, 0, socket.inet_aton('10.0.100.10'), socket.inet_aton('10.0.100.99'))
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    s.send(b'\x02\x00\x00\x00\x00\x99' + src + struct.pack('!HH', 0x8100, 100) + b'\x08\x00' + ip + icmp)
`
	if out, err := l.Exec("vm1", "python3", "-c", py); err != nil {
		t.Fatalf("tagged frames: %v\n%s", err, out)
	}
	time.Sleep(300 * time.Millisecond)
	col.stop(t)
	kept, stripped := col.frames(t, 201), col.frames(t, 202)
	if len(kept) != 5 || len(stripped) != 5 {
		t.Fatalf("%d copies kept the tag, %d stripped: want 5 each", len(kept), len(stripped))
	}
	for i := range kept {
		if et, vid := binary.BigEndian.Uint16(kept[i][12:]), binary.BigEndian.Uint16(kept[i][14:])&0xfff; et != 0x8100 || vid != 100 {
			t.Fatalf("kept copy %d: ethertype %#x VLAN %d, want 0x8100 VLAN 100", i, et, vid)
		}
		if et := binary.BigEndian.Uint16(stripped[i][12:]); et != 0x0800 {
			t.Fatalf("stripped copy %d: ethertype %#x, want 0x0800 (untagged IPv4)", i, et)
		}
		if string(kept[i][18:]) != string(stripped[i][14:]) {
			t.Fatalf("copy %d: the tagged and untagged copies carry different packets", i)
		}
	}
}

// TestMirrorWithoutBPF: a daemon that may not load eBPF refuses a config
// with tap services, saying why and what to do, instead of running
// without the mirror it was asked for.
func TestMirrorWithoutBPF(t *testing.T) {
	l := startLab(t, `
name: nobpf
nodes:
  - name: h
links: []
`)
	if out, err := l.Exec("h", "sh", "-c", "ip link add p0 type veth peer name p1 && ip link set p0 up && ip link set p1 up"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cfg := filepath.Join(t.TempDir(), "m.yaml")
	os.WriteFile(cfg, []byte("api-socket: "+filepath.Join(t.TempDir(), "s.sock")+"\nmirror:\n  services:\n    - name: s\n      to: port:p1\n  flows:\n    - service: s\n      port: p0\n      direction: both\n"), 0o644)
	out, err := l.Exec("h", "setpriv", "--inh-caps=-bpf,-sys_admin,-perfmon", "--bounding-set=-bpf,-sys_admin,-perfmon", bin, "daemon", "-c", cfg)
	if err == nil || !strings.Contains(out, cfg+":") || !strings.Contains(out, "not permitted: run the daemon as root, or with CAP_BPF") || !strings.Contains(out, "nothing is mirrored") {
		t.Fatalf("daemon without CAP_BPF: %v\n%s", err, out)
	}
}

// TestMirrorRestart: the taps are the daemon's: killed (-9), it copies
// nothing more (the kernel drops its programs with its links) and leaves
// only its VXLAN device, which the restarted daemon takes over; stopped
// cleanly, it removes that device too.
func TestMirrorRestart(t *testing.T) {
	l := startLab(t, seed004)
	startTCPSink(t, l, "th")
	if err := l.Signal("host1", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	_, copies := mirrorRound(t, l, 4242, func() { vm1Traffic(t, l, "daemon dead") })
	if len(copies) != 0 {
		t.Fatalf("%d copies with the daemon killed", len(copies))
	}
	if _, err := l.Exec("host1", "ip", "link", "show", "ocmx4789"); err != nil {
		t.Fatalf("the VXLAN device went with the daemon: %v", err)
	}
	if err := l.StartDaemon("host1"); err != nil {
		t.Fatal(err)
	}
	truth, copies := mirrorRound(t, l, 4242, func() { vm1Traffic(t, l, "restarted") })
	if d := sameKeys(keys(truth), keys(copies)); d != "" || len(copies) == 0 {
		t.Fatalf("after a restart the copies differ (%d copies):\n%s", len(copies), d)
	}
	if err := l.StopDaemon("host1"); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Exec("host1", "ip", "link", "show", "ocmx4789"); err == nil {
		t.Fatalf("a clean stop left the VXLAN device: %s", out)
	}
}

// TestMirrorNoInjection: the VXLAN device copies leave by also listens
// on UDP 4789; a host that sends it VXLAN datagrams gets nothing into the
// mirroring host (the device drops everything it receives).
func TestMirrorNoInjection(t *testing.T) {
	l := startLab(t, seed004)
	countRule(t, l, "host3", "reply", "icmp type echo-reply")
	py := `
import socket, struct
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b)//2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
icmp = struct.pack('!BBHHH', 8, 0, 0, 9, 1) + b'i' * 32
icmp = icmp[:2] + struct.pack('!H', csum(icmp)) + icmp[4:]
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0, socket.inet_aton('10.9.0.3'), socket.inet_aton('10.0.1.1'))
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
eth = b'\xff\xff\xff\xff\xff\xff' + b'\x02\x00\x00\x00\x00\x03' + b'\x08\x00'
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for vni in (4242, 1, 0):
    for i in range(10):
        s.sendto(struct.pack('!BBHI', 0x08, 0, 0, vni << 8) + eth + ip + icmp, ('10.9.0.1', 4789))
`
	if out, err := l.Exec("host3", "python3", "-c", py); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	if n := counted(t, l, "host3", "reply"); n != 0 {
		t.Fatalf("host 1 answered %d pings injected through its mirror device", n)
	}
	// The path itself works: a plain ping from host 3 is answered.
	if out, err := l.Exec("host3", "ping", "-c", "1", "-W", "1", "10.0.1.1"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if n := counted(t, l, "host3", "reply"); n != 1 {
		t.Fatalf("%d echo replies counted for one plain ping", n)
	}
}

// TestMirrorRateLimit: a service limited to 200 copies/s under a burst
// of 3,000 packets in about a second: the copies keep to the rate (plus
// its 0.1 s burst), the rest are counted as rate-dropped, and every
// production packet still arrives.
func TestMirrorRateLimit(t *testing.T) {
	l := startLab(t, seed004)
	countRule(t, l, "th", "udp", "udp dport 7000")
	mirrorCLI(t, l, "host1", "service", "add", "slow", "--to", "vxlan://10.9.0.2", "--vni", "300", "--rate", "200pps")
	mirrorCLI(t, l, "host1", "flow", "add", "--service", "slow", "--port", "vm1p", "--direction", "in", "--name", "slow", "--rule", "accept proto udp dport 7000")
	col := startCollector(t, l, "host2", "--vni", "300")
	start := time.Now()
	py := `
import socket, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(3000):
    u.sendto(b"r", ("198.51.100.8", 7000))
    if i % 100 == 99:
        time.sleep(0.03)
`
	if out, err := l.Exec("vm1", "python3", "-c", py); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	elapsed := time.Since(start).Seconds()
	time.Sleep(300 * time.Millisecond)
	st := col.stop(t)
	f := flowRow(mirrorView(t, l, "host1"), "slow")
	got := uint64(0)
	if len(st.Sessions) == 1 {
		got = st.Sessions[0].Packets
	}
	limit := uint64(200*elapsed + 20 + 2) // the rate over the run, its 0.1 s burst, a copy per CPU of slack
	if got < uint64(0.6*200*elapsed) || got > limit || f.Counters.Mirrored != got || f.Counters.Mirrored+f.Counters.RateDropped != 3000 {
		t.Fatalf("%.2f s at 200 copies/s: collector %d (want %d..%d), show mirror %+v; want mirrored + rate-dropped = 3000", elapsed, got, uint64(0.6*200*elapsed), limit, f.Counters)
	}
	if n := counted(t, l, "th", "udp"); n != 3000 {
		t.Fatalf("the test host got %d of 3000 packets: the rate limit touched production traffic", n)
	}
	t.Logf("%.2f s: %d copies (limit %d), %d rate-dropped; production 3000 of 3000", elapsed, got, limit, f.Counters.RateDropped)
}
