package e2e

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"overcast/internal/lab"
)

// BenchmarkLeaveLatency measures, on the real kernel, the time from an
// IGMPv3 receiver leaving (its process ends; the host stack sends TO_IN({}))
// to the kernel's forwarding entry no longer sending to that LAN. Run with
// `make bench`. FRR 8.4.4 with default timers: 2.65 s (FRR-BASELINE.md).
func BenchmarkLeaveLatency(b *testing.B) {
	for _, bc := range []struct{ name, igmp string }{
		{"default-timers", ""},
		{"explicit-tracking", "explicit-tracking: true"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			file := filepath.Join(b.TempDir(), "lab.yaml")
			os.WriteFile(file, []byte(routerLab(bc.igmp)), 0o644)
			l, err := lab.Load(file, bin)
			if err != nil {
				b.Fatal(err)
			}
			if err := l.Up(); err != nil {
				b.Fatal(err)
			}
			defer l.Down()
			sender := l.Command("src", bin, "send", "-g", G, "-rate", "1000", "-duration", "1h", "-ttl", "32")
			if err := sender.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { sender.Process.Kill(); sender.Wait() }()
			var samples []time.Duration
			for b.Loop() {
				b.StopTimer()
				rcv := l.Command("rcv1", bin, "recv", "-g", G, "-q", "-duration", "1h")
				if err := rcv.Start(); err != nil {
					b.Fatal(err)
				}
				if !waitMFC(l, "lan1", true, 10*time.Second) {
					b.Fatal("lan1 never added to the forwarding entry")
				}
				b.StartTimer()
				start := time.Now()
				rcv.Process.Signal(syscall.SIGTERM)
				if !waitMFC(l, "lan1", false, 30*time.Second) {
					b.Fatal("lan1 never removed")
				}
				samples = append(samples, time.Since(start))
				rcv.Wait()
			}
			sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
			b.ReportMetric(float64(samples[len(samples)/2])/float64(time.Millisecond), "median-leave-ms")
		})
	}
}

// waitMFC polls the kernel's cache until the entry does (or does not)
// forward out of ifname's VIF. It reads r1's namespace through the daemon's
// /proc/PID/net, which costs microseconds rather than an `ip netns exec`.
func waitMFC(l *lab.Lab, ifname string, want bool, d time.Duration) bool {
	pid, _ := os.ReadFile(filepath.Join(l.Dir, "r1.pid"))
	netDir := "/proc/" + strings.TrimSpace(string(pid)) + "/net/"
	vif := ""
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if vif == "" {
			out, _ := os.ReadFile(netDir + "ip_mr_vif")
			for _, line := range strings.Split(string(out), "\n") {
				if f := strings.Fields(line); len(f) > 1 && f[1] == ifname {
					vif = f[0]
				}
			}
		}
		out, _ := os.ReadFile(netDir + "ip_mr_cache")
		has := false
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 7 || f[0] == "Group" {
				continue
			}
			for _, o := range f[6:] {
				if v, _, ok := strings.Cut(o, ":"); ok && v == vif {
					has = true
				}
			}
		}
		if has == want && vif != "" {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return false
}
