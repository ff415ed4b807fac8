package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"overcast/internal/dataplane"
	"overcast/internal/dataplane/linuxmr"
	"overcast/internal/lab"
	"overcast/internal/tools/mcast"
)

// BenchmarkASMBurstVsFRR is the seed lab's ASM burst, FRR 8.4 and
// Overcast side by side in one run: the receiver behind R3 joins N ASM
// groups, then the source starts on all of them at once (4 packets per
// second per group, 25 s). Figures: how long until every group reached
// the receiver (from the first sequence number each group delivered),
// groups never delivered, how long until the last hop (R3) holds every
// group's shortest-path tree (its kernel route's input is to-r1, read
// from the kernel's table, so the same for both), and the CPU time and
// resident memory of each router's daemons. BURST_GROUPS (default
// "1000,5000"):
//
//	cd test/e2e && go test -run XXX -bench ASMBurstVsFRR -benchtime 1x .
func BenchmarkASMBurstVsFRR(b *testing.B) {
	sizes := []int{1000, 5000}
	if s := os.Getenv("BURST_GROUPS"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, _ := strconv.Atoi(f)
			sizes = append(sizes, n)
		}
	}
	const rate = 4.0
	for _, n := range sizes {
		for _, impl := range []string{"frr", "overcast"} {
			b.Run(fmt.Sprintf("%d/%s", n, impl), func(b *testing.B) {
				d := upDomain(b, impl)
				names := []string{"overcast"}
				if impl == "frr" {
					names = []string{"pimd", "zebra"}
				}
				groups := fmt.Sprintf("239.2.0.0+%d", n-1) // G+N is G and the N after it
				done := make(chan struct{})
				var st = struct{ delivered, last uint64 }{}
				go func() {
					defer close(done)
					cmd := d.l.Command("rcv", bin, "recv", "-json", "-q", "-g", groups, "-duration", "45s", "-idle", "4s")
					var out strings.Builder
					cmd.Stdout = &out // the notice about sockets goes to stderr
					if err := cmd.Run(); err != nil {
						b.Errorf("recv: %v", err)
						return
					}
					var s mcast.Stats
					if err := json.Unmarshal([]byte(out.String()), &s); err != nil {
						b.Errorf("recv output %.200q: %v", out.String(), err)
						return
					}
					for _, x := range s.Streams {
						if x.Packets > 0 {
							st.delivered++
							st.last = max(st.last, x.FirstSeq)
						}
					}
				}()
				time.Sleep(6 * time.Second) // joined: IGMP reports, (*,G) joins to the RP
				cpu0 := map[string]int{}
				for _, r := range []string{"r1", "r2", "r3"} {
					for name, p := range daemonStats(b, d.l, r, names...) {
						cpu0[r+" "+name] = p.cpuTicks
					}
				}
				started := time.Now()
				spt := make(chan time.Duration, 1)
				go func() { spt <- untilAllSPT(d.l, "r3", "to-r1", "239.2.", n, 40*time.Second, started) }()
				if out, err := d.l.Exec("src", bin, "send", "-g", groups, "-rate", fmt.Sprint(rate), "-duration", "25s", "-ttl", "32"); err != nil {
					b.Fatalf("send: %v %s", err, out)
				}
				<-done
				sptAll := <-spt
				line := ""
				for _, r := range []string{"r1", "r2", "r3"} {
					for name, p := range daemonStats(b, d.l, r, names...) {
						line += fmt.Sprintf(" %s %s %.2fs %.1fMB", r, name, float64(p.cpuTicks-cpu0[r+" "+name])/100, float64(p.rssKB)/1024)
					}
				}
				all := float64(st.last+1) / rate
				sptLine := fmt.Sprintf("R3 held every SPT %.2f s after the source started", sptAll.Seconds())
				if sptAll < 0 {
					sptLine = "R3 never held every SPT"
				}
				b.Logf("%s, %d groups: %d delivered, every group by %.2f s after the source started; %s; CPU and RSS over the burst:%s", impl, n, st.delivered, all, sptLine, line)
				b.ReportMetric(all, "s-all-delivered")
				b.ReportMetric(sptAll.Seconds(), "s-all-spt")
				b.ReportMetric(float64(uint64(n)-st.delivered), "groups-missed")
			})
		}
	}
}

// untilAllSPT polls node's kernel multicast table until n routes of groups
// with prefix come in on iface (the SPT's input), and returns how long
// after start that was (-1 s if not by timeout).
func untilAllSPT(l *lab.Lab, node, iface, prefix string, n int, timeout time.Duration, start time.Time) time.Duration {
	for time.Since(start) < timeout {
		if vifOut, err := l.Exec(node, "cat", "/proc/net/ip_mr_vif"); err == nil {
			vif := -1
			if vs, err := linuxmr.ParseVIFs([]byte(vifOut)); err == nil {
				for _, v := range vs {
					if v.Name == iface {
						vif = v.Index
					}
				}
			}
			out, err := l.Exec(node, "cat", "/proc/net/ip_mr_cache")
			count := 0
			if err == nil && vif >= 0 {
				linuxmr.ParseMRCacheRoutes([]byte(out), func(k dataplane.SG, iif int, _ []int) {
					if iif == vif && strings.HasPrefix(k.Group.String(), prefix) {
						count++
					}
				})
			}
			if count >= n {
				return time.Since(start)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return -time.Second
}
