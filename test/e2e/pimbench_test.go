package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/lab"
	"overcast/internal/tools/mcast"
)

// pimDomain is the seed lab with one implementation on every router.
type pimDomain struct {
	impl string
	l    *lab.Lab
	frrs map[string]*frr
}

func upDomain(b *testing.B, impl string) *pimDomain {
	over := map[string]string(nil)
	if impl == "frr" {
		over = map[string]string{"r1": "", "r2": "", "r3": ""}
	}
	l := startLab(b, pimLab(over))
	d := &pimDomain{impl: impl, l: l, frrs: map[string]*frr{}}
	if impl == "frr" {
		for _, n := range []string{"r1", "r2", "r3"} {
			d.frrs[n] = startFRR(b, l, n, frrSeed[n])
		}
	}
	// Both implementations get complete UDP checksums from the source, as
	// from a real NIC (FRR does not complete partial ones in Registers).
	if _, err := l.Exec("src", "ethtool", "-K", "eth0", "tx", "off"); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, a := range [][3]string{{"r1", "to-r2", "10.1.12.2"}, {"r1", "to-r3", "10.1.13.3"}, {"r2", "to-r3", "10.1.23.3"},
		{"r3", "to-r1", "10.1.13.1"}, {"r3", "to-r2", "10.1.23.2"}, {"r2", "to-r1", "10.1.12.1"}} {
		for !d.hasNeighbor(a[0], a[1], a[2]) {
			if time.Now().After(deadline) {
				b.Fatalf("%s: %s has no neighbour %s on %s", impl, a[0], a[2], a[1])
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return d
}

func (d *pimDomain) hasNeighbor(node, iface, addr string) bool {
	if f := d.frrs[node]; f != nil {
		ns, _ := f.frrNeighbors(iface)
		return slices.Contains(ns, addr)
	}
	c := api.NewClient(d.l.Socket(node))
	ns, err := c.PIMNeighbors()
	if err != nil {
		return false
	}
	for _, n := range ns {
		if n.Interface == iface && n.Address == addr {
			return true
		}
	}
	return false
}

// recvJSON runs `overcast recv -json` to completion in a namespace.
func recvJSON(b *testing.B, l *lab.Lab, node string, args ...string) mcast.Stats {
	out, err := l.Exec(node, append([]string{bin, "recv", "-json", "-q"}, args...)...)
	if err != nil {
		b.Fatalf("recv: %v\n%s", err, out)
	}
	var st mcast.Stats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		b.Fatalf("recv output %q: %v", out, err)
	}
	return st
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return -1
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

type pimFigures struct {
	join, netJoin, start, firstLost, failover []float64
}

// reportToFirst returns, from `tcpdump -tt` lines on the receiver, the time
// from its IGMPv3 report leaving to the first data packet arriving: join
// latency without the host's own report delay.
func reportToFirst(lines string) (float64, bool) {
	var report, data float64
	for _, line := range strings.Split(lines, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		var ts float64
		if _, err := fmt.Sscan(f[0], &ts); err != nil {
			continue
		}
		switch {
		case strings.Contains(line, "igmp v3 report") && report == 0:
			report = ts
		case strings.Contains(line, "UDP") && report != 0 && data == 0:
			data = ts
		}
	}
	if report == 0 || data == 0 {
		return 0, false
	}
	return (data - report) * 1000, true
}

// BenchmarkPIMvsFRR builds the seed lab twice in one run, once with FRR
// 8.4's pimd on every router and once with Overcast, and measures the
// same things on both with a 1,000 pps stream: join latency (receiver
// joins, source already sending), source start latency and losses among
// the first 100 packets (receivers already joined), and the outage when
// the R1 --- R3 link fails. It prints a side-by-side table of medians.
func BenchmarkPIMvsFRR(b *testing.B) {
	const trials = 5
	results := map[string]*pimFigures{}
	for _, impl := range []string{"frr", "overcast"} {
		b.Run(impl, func(b *testing.B) {
			// The trials below are the measurement; b.Loop makes the
			// framework call this function once instead of ramping b.N.
			for b.Loop() {
			}
			d := upDomain(b, impl)
			f := &pimFigures{}
			results[impl] = f
			l := d.l
			for i := range trials {
				// Join latency: a new group, its source already sending.
				g := fmt.Sprintf("239.2.0.%d", i+1)
				sender := l.Command("src", bin, "send", "-g", g, "-rate", "1000", "-duration", "20s", "-ttl", "32")
				if err := sender.Start(); err != nil {
					b.Fatal(err)
				}
				time.Sleep(2 * time.Second) // registers reach the RP; the RP has (S,G)
				td := l.Command("rcv", "timeout", "8", "tcpdump", "-i", "eth0", "-tt", "-nn", "-l", "-c", "2",
					"(igmp and igmp[0] = 0x22) or (udp and dst "+g+")")
				var tdOut strings.Builder
				td.Stdout = &tdOut
				if err := td.Start(); err != nil {
					b.Fatal(err)
				}
				time.Sleep(300 * time.Millisecond) // tcpdump ready
				st := recvJSON(b, l, "rcv", "-g", g, "-count", "1", "-duration", "10s")
				td.Wait()
				sender.Process.Kill()
				sender.Wait()
				if st.FirstAfterJoin > 0 {
					f.join = append(f.join, float64(st.FirstAfterJoin)/float64(time.Millisecond))
				}
				if ms, ok := reportToFirst(tdOut.String()); ok {
					f.netJoin = append(f.netJoin, ms)
				}
				// Source start: receivers joined, a new source begins.
				g = fmt.Sprintf("239.3.0.%d", i+1)
				rc := l.Command("rcv", bin, "recv", "-json", "-q", "-g", g, "-duration", "6s")
				var out strings.Builder
				rc.Stdout = &out
				if err := rc.Start(); err != nil {
					b.Fatal(err)
				}
				time.Sleep(2500 * time.Millisecond) // IGMP report, (*,G) join to the RP
				if o, err := l.Exec("src", bin, "send", "-g", g, "-count", "1000", "-rate", "1000", "-ttl", "32"); err != nil {
					b.Fatalf("send: %v %s", err, o)
				}
				rc.Wait()
				var sst mcast.Stats
				if err := json.Unmarshal([]byte(out.String()), &sst); err == nil && len(sst.Streams) == 1 {
					f.start = append(f.start, float64(sst.Streams[0].FirstLatencyMS))
					f.firstLost = append(f.firstLost, float64(sst.Streams[0].LostInFirst100))
				} else {
					f.firstLost = append(f.firstLost, 100)
				}
			}
			// Failover: R1 --- R3 fails under a 1,000 pps stream.
			for i := range 3 {
				g := fmt.Sprintf("239.4.0.%d", i+1)
				rc := l.Command("rcv", bin, "recv", "-json", "-q", "-g", g, "-duration", "9s")
				var out strings.Builder
				rc.Stdout = &out
				if err := rc.Start(); err != nil {
					b.Fatal(err)
				}
				time.Sleep(2 * time.Second)
				sender := l.Command("src", bin, "send", "-g", g, "-count", "5000", "-rate", "1000", "-ttl", "32")
				if err := sender.Start(); err != nil {
					b.Fatal(err)
				}
				time.Sleep(2 * time.Second) // on the SPT via R1 --- R3
				l.Exec("r1", "ip", "link", "set", "to-r3", "down")
				sender.Wait()
				rc.Wait()
				var fst mcast.Stats
				if err := json.Unmarshal([]byte(out.String()), &fst); err == nil && len(fst.Streams) == 1 {
					s := fst.Streams[0]
					// Outage: packets lost after the start-up (those count above).
					lost := float64(s.Lost) - float64(countBelow(s.MissingSample, 100))
					f.failover = append(f.failover, lost)
				}
				l.Exec("r1", "ip", "link", "set", "to-r3", "up")
				time.Sleep(4 * time.Second) // adjacency and routes back
			}
			b.ReportMetric(median(f.join), "join-ms")
			b.ReportMetric(median(f.netJoin), "report-to-first-ms")
			b.ReportMetric(median(f.start), "source-start-ms")
			b.ReportMetric(median(f.firstLost), "lost-of-first-100")
			b.ReportMetric(median(f.failover), "failover-ms")
		})
	}
	fr, oc := results["frr"], results["overcast"]
	if fr == nil || oc == nil {
		return
	}
	var t strings.Builder
	fmt.Fprintf(&t, "\n%-44s %12s %12s\n", "seed lab, 1,000 pps, medians", "FRR 8.4", "Overcast")
	row := func(name string, a, c []float64, unit string) {
		fmt.Fprintf(&t, "%-44s %9.1f %-2s %9.1f %-2s  (n=%d/%d)\n", name, median(a), unit, median(c), unit, len(a), len(c))
	}
	row("join latency (join() -> first packet)", fr.join, oc.join, "ms")
	row("  of which network (IGMP report -> first)", fr.netJoin, oc.netJoin, "ms")
	row("source start (first packet one-way)", fr.start, oc.start, "ms")
	row("packets lost of the first 100", fr.firstLost, oc.firstLost, "")
	row("failover outage (R1-R3 down)", fr.failover, oc.failover, "ms")
	b.Log(t.String())
	fmt.Println(t.String())
}

func countBelow(xs []uint64, n uint64) int {
	c := 0
	for _, x := range xs {
		if x < n {
			c++
		}
	}
	return c
}
