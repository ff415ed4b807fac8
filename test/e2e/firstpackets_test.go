package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"overcast/internal/tools/mcast"
)

// BenchmarkFirstPacketsOfNewSources: the seed lab with FRR's pimd on every
// router, then Overcast on every router, in one run. 20 times, both
// receivers (behind R3 and behind the RP) join a new ASM group and the
// source sends 200 packets at 1,000 pps: each trial is a new (S,G) that
// starts on the shared tree (registers at R1, the RP's switch from
// Registers to native packets, R3's switch to the SPT). It prints how
// many of the 40 receptions lost packets and how many were lost.
func BenchmarkFirstPacketsOfNewSources(b *testing.B) {
	const trials = 20
	for _, impl := range []string{"frr", "overcast"} {
		b.Run(impl, func(b *testing.B) {
			for b.Loop() {
			}
			d := upDomain(b, impl)
			l := d.l
			bad, lost := 0, uint64(0)
			var where []string
			for i := range trials {
				g := fmt.Sprintf("239.3.0.%d", i+1)
				var outs [2]strings.Builder
				var cmds [2]*exec.Cmd
				for j, node := range []string{"rcv", "rcv2"} {
					c := l.Command(node, bin, "recv", "-json", "-q", "-g", g, "-duration", "4s")
					c.Stdout = &outs[j]
					if err := c.Start(); err != nil {
						b.Fatal(err)
					}
					cmds[j] = c
				}
				time.Sleep(2500 * time.Millisecond) // IGMP reports and (*,G) joins on both kinds of router
				if err := sendErr(l, "src", "-g", g, "-count", "200", "-rate", "1000", "-ttl", "32"); err != nil {
					b.Fatal(err)
				}
				for j, node := range []string{"rcv", "rcv2"} {
					cmds[j].Wait()
					var st mcast.Stats
					if err := json.Unmarshal([]byte(outs[j].String()), &st); err != nil {
						b.Fatalf("recv output %q: %v", outs[j].String(), err)
					}
					if p, _, _ := st.Total(); p < 200 {
						bad++
						lost += 200 - p
						var miss []uint64
						var first uint64
						if len(st.Streams) > 0 {
							miss, first = st.Streams[0].MissingSample, st.Streams[0].FirstSeq
						}
						where = append(where, fmt.Sprintf("%s first %d missing %v", node, first, miss))
					}
				}
			}
			b.ReportMetric(float64(bad), "receptions-with-loss")
			b.ReportMetric(float64(lost), "packets-lost")
			fmt.Printf("%s: new sources: %d of %d receptions lost packets, %d packets lost in all (200 each): %v\n", impl, bad, 2*trials, lost, where)
		})
	}
}
