package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"overcast/internal/lab"
)

// mirrorBenchLab is seed 004 with the service but no flow (the benchmark
// adds and removes it), segmentation offload on as a VM has it, and the
// copies dropped and counted at host 2's ingress (no collector process
// competes for the two cores).
func mirrorBenchLab(b *testing.B) *lab.Lab {
	spec := strings.Replace(seed004, `        flows:
          - service: mon
            port: vm1p
            direction: both
`, "", 1)
	spec = strings.ReplaceAll(spec, `setup: ["ethtool -K eth0 tso off gso off >/dev/null"]`, `setup: []`)
	l := startLab(b, spec)
	rules := "table netdev copies {\n counter n {}\n chain in {\n  type filter hook ingress device eth0 priority -500; policy accept;\n  udp dport { 4789, 4790 } counter name \"n\" drop\n }\n}\n"
	if out, err := l.Exec("host2", "sh", "-c", "nft -f - <<'EOF'\n"+rules+"EOF"); err != nil {
		b.Fatalf("nft: %v\n%s", err, out)
	}
	rules = "table netdev prod {\n counter n {}\n chain in {\n  type filter hook ingress device eth0 priority -500; policy accept;\n  ip daddr 198.51.100.8 udp dport 5001 counter name \"n\" drop\n }\n}\n"
	if out, err := l.Exec("th", "sh", "-c", "nft -f - <<'EOF'\n"+rules+"EOF"); err != nil {
		b.Fatalf("nft: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"iperf", "-s"}} {
		cmd := l.Command("th", args...)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	time.Sleep(300 * time.Millisecond)
	return l
}

// nftPackets reads a netdev counter's packets and bytes.
func nftPackets(b testing.TB, l *lab.Lab, node, table string) (pkts, bytes uint64) {
	b.Helper()
	out, err := l.Exec(node, "nft", "list", "counter", "netdev", table, "n")
	if err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	f := strings.Fields(out[strings.Index(out, "packets "):])
	pkts, _ = strconv.ParseUint(f[1], 10, 64)
	bytes, _ = strconv.ParseUint(f[3], 10, 64)
	return
}

func iperfTCP(b *testing.B, l *lab.Lab, secs int, rate string) float64 {
	b.Helper()
	args := []string{"iperf", "-c", "198.51.100.8", "-t", fmt.Sprint(secs), "-y", "C"}
	if rate != "" {
		args = append(args, "-b", rate)
	}
	out, err := l.Exec("vm1", args...)
	if err != nil {
		b.Fatalf("iperf: %v\n%s", err, out)
	}
	f := strings.Split(strings.TrimSpace(lastLine(out)), ",")
	bps, _ := strconv.ParseFloat(f[len(f)-1], 64)
	return bps
}

// udpLoad sends size-octet UDP datagrams from VM 1 to the test host for
// secs (this binary re-executed as the sendmmsg helper, 32 per call), at
// pps or as fast as it goes (0), and returns what reached the test host
// (bits and packets per second) and the copies host 2 got per second.
func udpLoad(b *testing.B, l *lab.Lab, size int, pps float64, secs int) (bps, delivered, copies, sent float64) {
	b.Helper()
	p0, b0 := nftPackets(b, l, "th", "prod")
	c0, _ := nftPackets(b, l, "host2", "copies")
	dsts := strings.TrimSuffix(strings.Repeat("198.51.100.8:5001,", 32), ",")
	cmd := l.Command("vm1", os.Args[0])
	cmd.Env = append(os.Environ(), "OVERCAST_E2E_HELPER=sendmmsg", "DSTS="+dsts, "SIZE="+fmt.Sprint(size),
		"DURATION="+fmt.Sprint(secs)+"s", "RATE="+fmt.Sprint(pps))
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("sender: %v %s", err, out)
	}
	var st struct{ Copies float64 }
	if err := json.Unmarshal(out, &st); err != nil {
		b.Fatalf("sender said %q: %v", out, err)
	}
	time.Sleep(100 * time.Millisecond)
	p1, b1 := nftPackets(b, l, "th", "prod")
	c1, _ := nftPackets(b, l, "host2", "copies")
	d := float64(secs)
	return float64(b1-b0) * 8 / d, float64(p1-p0) / d, float64(c1-c0) / d, st.Copies / d
}

func setUnderlayMTU(b *testing.B, l *lab.Lab, mtu int) {
	b.Helper()
	for node, devs := range map[string][]string{"host1": {"eth0"}, "host2": {"eth0"}, "host3": {"eth0"}, "th": {"eth0"}, "fabric": {"p1", "p2", "p3", "p8", "br0"}} {
		for _, d := range devs {
			if out, err := l.Exec(node, "ip", "link", "set", d, "mtu", fmt.Sprint(mtu)); err != nil {
				b.Fatalf("%v\n%s", err, out)
			}
		}
	}
}

// BenchmarkMirrorThroughput: iperf2 from VM 1 through its port without a
// mirror and with a BOTH mirror of every packet to host 2, in the same run:
// TCP as fast as it goes (the two cores are the limit, so a copy's every
// cycle shows), TCP paced at 1 Gbit/s, and UDP (1,400 octets) at 1 Gbit/s
// offered; each on a 1,500-octet underlay (copies of full-size frames are
// IP fragments) and a 9,000-octet one (they are not).
func BenchmarkMirrorThroughput(b *testing.B) {
	l := mirrorBenchLab(b)
	type fig struct{ plain, mirrored []float64 }
	figs := map[string]*fig{}
	var order []string
	note := func(name string, mirrored bool, v float64) {
		f := figs[name]
		if f == nil {
			f = &fig{}
			figs[name] = f
			order = append(order, name)
		}
		if mirrored {
			f.mirrored = append(f.mirrored, v)
		} else {
			f.plain = append(f.plain, v)
		}
	}
	for range b.N {
		for _, mtu := range []int{1500, 9000} {
			setUnderlayMTU(b, l, mtu)
			for _, mirrored := range []bool{false, true} {
				if mirrored {
					mirrorOut(b, l, "flow", "add", "--service", "mon", "--port", "vm1p", "--direction", "both")
				}
				note(fmt.Sprintf("tcp-max-mtu%d", mtu), mirrored, iperfTCP(b, l, 3, ""))
				note(fmt.Sprintf("tcp-1G-mtu%d", mtu), mirrored, iperfTCP(b, l, 3, "1000M"))
				bps, pps, _, sent := udpLoad(b, l, 1400, 0, 3)
				note(fmt.Sprintf("udp-max-mtu%d", mtu), mirrored, bps)
				note(fmt.Sprintf("udp-max-delivered/sent-mtu%d-%s", mtu, map[bool]string{false: "plain", true: "mirrored"}[mirrored]), false, pps/sent)
				bps, pps, copies, sent := udpLoad(b, l, 1400, 1e9/8/1428, 3)
				note(fmt.Sprintf("udp-1G-mtu%d", mtu), mirrored, bps)
				note(fmt.Sprintf("udp-1G-delivered/sent-mtu%d-%s", mtu, map[bool]string{false: "plain", true: "mirrored"}[mirrored]), false, pps/sent)
				if mirrored {
					note(fmt.Sprintf("udp-1G-copies-per-packet-mtu%d", mtu), false, copies/pps)
					mirrorOut(b, l, "flow", "del", "mon:vm1p:both")
				}
			}
		}
	}
	var table []string
	for _, name := range order {
		f := figs[name]
		if len(f.mirrored) == 0 {
			b.ReportMetric(median(f.plain), name)
			table = append(table, fmt.Sprintf("%-28s %.3f", name, median(f.plain)))
			continue
		}
		p, m := median(f.plain)/1e6, median(f.mirrored)/1e6
		b.ReportMetric(p, name+"-plain-Mbps")
		b.ReportMetric(m, name+"-mirrored-Mbps")
		table = append(table, fmt.Sprintf("%-28s %8.0f -> %8.0f Mbit/s (%+.1f%%)", name, p, m, 100*(m/p-1)))
	}
	b.Logf("throughput without -> with a BOTH mirror, medians of %d runs:\n  %s", b.N, strings.Join(table, "\n  "))
}

// BenchmarkMirrorCopyRate: small UDP datagrams (64 octets) through the
// port as fast as the sender goes, copied to host 2 by Overcast with one
// rule and with 1,000 rules (the accepting one last), by Overcast to a
// classic VXLAN device as a local port, and by tc u32 + mirred to that
// device (the same copy, the classic way) with one filter and with 1,000,
// in the same run.
func BenchmarkMirrorCopyRate(b *testing.B) {
	l := mirrorBenchLab(b)
	var many []string
	for i := range 999 {
		many = append(many, "--rule", fmt.Sprintf("%d accept proto udp src 203.0.%d.%d sport 1-%d", 10+i, i/250, i%250, 1000+i))
	}
	many = append(many, "--rule", "5000 accept dst 198.51.100.8")
	variants := []struct {
		name      string
		on, off   func()
		prod, cps []float64
	}{
		{name: "none", on: func() {}, off: func() {}},
		{name: "overcast-1", on: func() {
			mirrorOut(b, l, "flow", "add", "--service", "mon", "--port", "vm1p", "--direction", "in", "--name", "r1", "--rule", "accept dst 198.51.100.8")
		}, off: func() { mirrorOut(b, l, "flow", "del", "r1") }},
		{name: "overcast-1000", on: func() {
			mirrorOut(b, l, append([]string{"flow", "add", "--service", "mon", "--port", "vm1p", "--direction", "in", "--name", "r1000"}, many...)...)
		}, off: func() { mirrorOut(b, l, "flow", "del", "r1000") }},
		{name: "overcast-1-classic-vxlan", on: func() {
			for _, c := range []string{
				"ip link add vxm type vxlan id 4243 remote 10.9.0.2 local 10.9.0.1 dstport 4790 nolearning",
				"ip link set vxm up",
			} {
				if out, err := l.Exec("host1", "sh", "-c", c); err != nil {
					b.Fatalf("%s: %v\n%s", c, err, out)
				}
			}
			mirrorOut(b, l, "service", "add", "vxm", "--to", "port:vxm")
			mirrorOut(b, l, "flow", "add", "--service", "vxm", "--port", "vm1p", "--direction", "in", "--name", "rc", "--rule", "accept dst 198.51.100.8")
		}, off: func() {
			mirrorOut(b, l, "service", "del", "vxm")
			l.Exec("host1", "ip", "link", "del", "vxm")
		}},
		{name: "tc-u32-mirred", on: func() {
			for _, c := range []string{
				"ip link add vxm type vxlan id 4243 remote 10.9.0.2 local 10.9.0.1 dstport 4790 nolearning",
				"ip link set vxm up",
				"tc qdisc add dev vm1p clsact",
				"tc filter add dev vm1p ingress protocol ip u32 match ip dst 198.51.100.8/32 action mirred egress mirror dev vxm",
			} {
				if out, err := l.Exec("host1", "sh", "-c", c); err != nil {
					b.Fatalf("%s: %v\n%s", c, err, out)
				}
			}
		}, off: func() {
			l.Exec("host1", "tc", "qdisc", "del", "dev", "vm1p", "clsact")
			l.Exec("host1", "ip", "link", "del", "vxm")
		}},
		{name: "tc-u32-mirred-1000", on: func() {
			// 999 filters that do not match, then the one that does, as the 1,000 rules above.
			var batch strings.Builder
			batch.WriteString("qdisc add dev vm1p clsact\n")
			for i := range 999 {
				fmt.Fprintf(&batch, "filter add dev vm1p ingress protocol ip pref %d u32 match ip src 203.0.%d.%d/32 match ip protocol 17 0xff action mirred egress mirror dev vxm\n", 10+i, i/250, i%250)
			}
			batch.WriteString("filter add dev vm1p ingress protocol ip pref 5000 u32 match ip dst 198.51.100.8/32 action mirred egress mirror dev vxm\n")
			file := filepath.Join(b.TempDir(), "tc.batch")
			os.WriteFile(file, []byte(batch.String()), 0o644)
			for _, c := range []string{
				"ip link add vxm type vxlan id 4243 remote 10.9.0.2 local 10.9.0.1 dstport 4790 nolearning",
				"ip link set vxm up",
				"tc -batch " + file,
			} {
				if out, err := l.Exec("host1", "sh", "-c", c); err != nil {
					b.Fatalf("%s: %v\n%s", c, err, out)
				}
			}
		}, off: func() {
			l.Exec("host1", "tc", "qdisc", "del", "dev", "vm1p", "clsact")
			l.Exec("host1", "ip", "link", "del", "vxm")
		}},
	}
	for range b.N {
		for i := range variants {
			v := &variants[i]
			v.on()
			_, pps, copies, _ := udpLoad(b, l, 64, 0, 3)
			v.off()
			v.prod, v.cps = append(v.prod, pps), append(v.cps, copies)
		}
	}
	var table []string
	for _, v := range variants {
		b.ReportMetric(median(v.cps), v.name+"-copies/s")
		b.ReportMetric(median(v.prod), v.name+"-delivered-pps")
		table = append(table, fmt.Sprintf("%s: delivered %.0f pps, copies %.0f/s", v.name, median(v.prod), median(v.cps)))
	}
	b.Logf("64-octet UDP through the port, medians of %d runs:\n  %s", b.N, strings.Join(table, "\n  "))
}

func mirrorOut(b testing.TB, l *lab.Lab, args ...string) string {
	b.Helper()
	out, err := l.Exec("host1", append([]string{bin, "mirror"}, append(args, "-s", l.Socket("host1"))...)...)
	if err != nil {
		b.Fatalf("overcast mirror %s: %v\n%s", strings.Join(args[:2], " "), err, out)
	}
	return out
}
