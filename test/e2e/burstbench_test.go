package e2e

import (
	"encoding/json"

	"fmt"
	"os"
	"overcast/internal/tools/mcast"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkASMBurstVsFRR is the seed lab's ASM burst, FRR 8.4 and
// Overcast side by side in one run: the receiver behind R3 joins N ASM
// groups, then the source starts on all of them at once (4 packets per
// second per group, 25 s). Figures: how long until every group reached
// the receiver (from the first sequence number each group delivered),
// groups never delivered, and the CPU time each router's daemon used
// over the burst. BURST_GROUPS (default "1000,5000"):
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
				if out, err := d.l.Exec("src", bin, "send", "-g", groups, "-rate", fmt.Sprint(rate), "-duration", "25s", "-ttl", "32"); err != nil {
					b.Fatalf("send: %v %s", err, out)
				}
				<-done
				line := ""
				for _, r := range []string{"r1", "r2", "r3"} {
					for name, p := range daemonStats(b, d.l, r, names...) {
						line += fmt.Sprintf(" %s %s %.2fs", r, name, float64(p.cpuTicks-cpu0[r+" "+name])/100)
					}
				}
				all := float64(st.last+1) / rate
				b.Logf("%s, %d groups: %d delivered, every group by %.2f s after the source started; CPU over the burst:%s", impl, n, st.delivered, all, line)
				b.ReportMetric(all, "s-all-delivered")
				b.ReportMetric(float64(uint64(n)-st.delivered), "groups-missed")
			})
		}
	}
}
