package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/lab"
)

// procStat is a routing daemon's resident memory and CPU time so far.
type procStat struct {
	rssKB    int
	anonKB   int // RssAnon: the process's own memory (RSS also counts the binary's and libraries' mapped pages)
	cpuTicks int // utime + stime, in clock ticks (100 per second)
}

// daemonStats reads /proc for the named processes running in a node's
// namespace (overcast; pimd and zebra for FRR), summed per name.
func daemonStats(b *testing.B, l *lab.Lab, node string, names ...string) map[string]procStat {
	out, err := exec.Command("ip", "netns", "pids", l.NS(node)).Output()
	if err != nil {
		b.Fatal(err)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	res := map[string]procStat{}
	for _, p := range strings.Fields(string(out)) {
		comm, err := os.ReadFile("/proc/" + p + "/comm")
		if err != nil || !want[strings.TrimSpace(string(comm))] {
			continue
		}
		name := strings.TrimSpace(string(comm))
		st := res[name]
		status, _ := os.ReadFile("/proc/" + p + "/status")
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.Atoi(f[1])
				st.rssKB += kb
			} else if len(f) >= 2 && f[0] == "RssAnon:" {
				kb, _ := strconv.Atoi(f[1])
				st.anonKB += kb
			}
		}
		stat, _ := os.ReadFile("/proc/" + p + "/stat")
		// Fields after the command name (which may hold spaces): state is
		// field 3, utime 14, stime 15.
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
			f := strings.Fields(string(stat)[i+1:])
			if len(f) > 12 {
				u, _ := strconv.Atoi(f[11])
				s, _ := strconv.Atoi(f[12])
				st.cpuTicks += u + s
			}
		}
		res[name] = st
	}
	return res
}

// joinedAtR1 counts the (S,G) states at R1 with a downstream join on
// to-r3: the far end of the domain has them all once this reaches n.
func (d *pimDomain) joinedAtR1() (int, error) {
	if f := d.frrs["r1"]; f != nil {
		out, err := f.vtysh("show ip pim join json")
		if err != nil {
			return 0, err
		}
		var m map[string]map[string]json.RawMessage
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			return 0, fmt.Errorf("%v: %.200s", err, out)
		}
		n := 0
		for g, v := range m["to-r3"] {
			if strings.Contains(g, ".") {
				var srcs map[string]json.RawMessage
				if json.Unmarshal(v, &srcs) == nil {
					n += len(srcs)
				}
			}
		}
		return n, nil
	}
	js, err := api.NewClient(d.l.Socket("r1")).PIMJoins()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, j := range js {
		for _, down := range j.Downstream {
			if down.Interface == "to-r3" && down.State == "Join" {
				n++
			}
		}
	}
	return n, nil
}

type scaleFigures struct {
	converge     time.Duration
	rss, rssBase map[string]int // "r1 overcast", "r3 pimd", ...
	cpuPerMin    map[string]float64
}

// BenchmarkPIMScaleVsFRR measures the control-plane cost of 1,000 and
// 10,000 (S,G) states on the seed lab, FRR 8.4 against Overcast in the
// same run: the receiver behind R3 joins N SSM channels at once (IGMPv3),
// and we time until R1, two hops up, holds all N joins; then read each
// routing daemon's resident memory and its CPU time over a minute of
// steady state (periodic joins, IGMP queries). Trials alternate FRR and
// Overcast; the table has medians. Run (SCALE_TRIALS, default 3, about
// 5 minutes per trial; SCALE_STEADY, default 1m):
//
//	cd test/e2e && go test -run XXX -bench BenchmarkPIMScaleVsFRR -benchtime 1x -timeout 60m .
func BenchmarkPIMScaleVsFRR(b *testing.B) {
	steady := time.Minute
	if s := os.Getenv("SCALE_STEADY"); s != "" {
		steady, _ = time.ParseDuration(s)
	}
	trials := 3
	if s := os.Getenv("SCALE_TRIALS"); s != "" {
		trials, _ = strconv.Atoi(s)
	}
	results := map[string][]*scaleFigures{}
	for trial := range trials {
		for _, n := range []int{1000, 10000} {
			for _, impl := range []string{"frr", "overcast"} {
				b.Run(fmt.Sprintf("%s/%d/%d", impl, n, trial+1), func(b *testing.B) {
					for b.Loop() {
					}
					fig := scaleTrial(b, impl, n, steady)
					results[fmt.Sprintf("%s/%d", impl, n)] = append(results[fmt.Sprintf("%s/%d", impl, n)], fig)
					b.ReportMetric(fig.converge.Seconds(), "converge-s")
				})
			}
		}
	}
	var t strings.Builder
	fmt.Fprintf(&t, "\nmedians of %d trials\n%-10s %-20s %11s %14s %14s %14s\n", trials, "(S,G)", "daemon", "converge", "RSS idle", "RSS with N", "CPU s/min")
	for _, n := range []int{1000, 10000} {
		for _, impl := range []string{"frr", "overcast"} {
			figs := results[fmt.Sprintf("%s/%d", impl, n)]
			if len(figs) == 0 {
				continue
			}
			first := true
			for _, node := range []string{"r1", "r3"} {
				names := []string{"overcast"}
				if impl == "frr" {
					names = []string{"pimd", "zebra"}
				}
				for _, name := range names {
					k := node + " " + name
					conv := ""
					if first {
						conv = fmt.Sprintf("%.2f s", medianOf(figs, func(f *scaleFigures) float64 { return f.converge.Seconds() }))
						first = false
					}
					fmt.Fprintf(&t, "%-10d %-20s %11s %11.1f MB %11.1f MB %14.2f\n", n, k, conv,
						medianOf(figs, func(f *scaleFigures) float64 { return float64(f.rssBase[k]) / 1024 }),
						medianOf(figs, func(f *scaleFigures) float64 { return float64(f.rss[k]) / 1024 }),
						medianOf(figs, func(f *scaleFigures) float64 { return f.cpuPerMin[k] }))
				}
			}
		}
	}
	b.Log(t.String())
	fmt.Println(t.String())
}

// medianOf is the median of one figure over trials.
func medianOf(figs []*scaleFigures, f func(*scaleFigures) float64) float64 {
	xs := make([]float64, len(figs))
	for i, fig := range figs {
		xs[i] = f(fig)
	}
	return median(xs)
}

// scaleTrial builds the lab with impl on every router, joins n SSM
// channels behind R3 and measures convergence, memory and steady CPU.
func scaleTrial(b *testing.B, impl string, n int, steady time.Duration) *scaleFigures {
	d := upDomain(b, impl)
	names := []string{"overcast"}
	if impl == "frr" {
		names = []string{"pimd", "zebra"}
	}
	fig := &scaleFigures{rss: map[string]int{}, rssBase: map[string]int{}, cpuPerMin: map[string]float64{}}
	for _, node := range []string{"r1", "r3"} {
		for name, st := range daemonStats(b, d.l, node, names...) {
			fig.rssBase[node+" "+name] = st.rssKB
		}
	}
	start := time.Now()
	rc := d.l.Command("rcv", bin, "recv", "-q", "-g", fmt.Sprintf("232.20.0.0+%d", n-1), "-s", "10.0.1.10", "-duration", "20m")
	if err := rc.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { rc.Process.Kill(); rc.Wait() }()
	for {
		got, err := d.joinedAtR1()
		if err == nil && got >= n {
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("%s: %d of %d joins at R1 after 5 minutes (%v)", impl, got, n, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	fig.converge = time.Since(start)
	time.Sleep(5 * time.Second) // settle
	before := map[string]procStat{}
	for _, node := range []string{"r1", "r3"} {
		for name, st := range daemonStats(b, d.l, node, names...) {
			before[node+" "+name] = st
		}
	}
	time.Sleep(steady)
	for _, node := range []string{"r1", "r3"} {
		for name, st := range daemonStats(b, d.l, node, names...) {
			k := node + " " + name
			fig.rss[k] = st.rssKB
			fig.cpuPerMin[k] = float64(st.cpuTicks-before[k].cpuTicks) / 100 / steady.Minutes()
		}
	}
	return fig
}
