package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/lab"
)

// frrNeighborUptime is how long FRR has held the PIM neighbour addr on iface.
func (f *frr) frrNeighborUptime(iface, addr string) (time.Duration, error) {
	out, err := f.vtysh("show ip pim neighbor json")
	if err != nil {
		return 0, err
	}
	var m map[string]map[string]struct {
		UpTime string `json:"upTime"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	n, ok := m[iface][addr]
	if !ok {
		return 0, fmt.Errorf("FRR has no neighbour %s on %s: %s", addr, iface, out)
	}
	var h, mi, s int
	if _, err := fmt.Sscanf(n.UpTime, "%d:%d:%d", &h, &mi, &s); err != nil {
		return 0, fmt.Errorf("upTime %q: %v", n.UpTime, err)
	}
	return time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(s)*time.Second, nil
}

// restartLab is the seed lab with Overcast on R2 (the RP, and the last
// hop for rcv2) and FRR's pimd on R1 and R3, settled, with rcv2 joined.
func restartLab(t *testing.T) (*lab.Lab, map[string]*frr) {
	l := startLab(t, pimLab(map[string]string{"r1": "", "r3": ""}))
	frrs := map[string]*frr{"r1": startFRR(t, l, "r1", frrSeed["r1"]), "r3": startFRR(t, l, "r3", frrSeed["r3"])}
	if _, err := l.Exec("src", "ethtool", "-K", "eth0", "tx", "off"); err != nil {
		t.Fatal(err)
	}
	frrNeighborSettled(t, l, "r2", "to-r1", "10.1.12.1")
	eventually(t, 40*time.Second, "FRR R1 holds R2 as a neighbour", func() string {
		if _, err := frrs["r1"].frrNeighborUptime("to-r2", "10.1.12.2"); err != nil {
			return err.Error()
		}
		return ""
	})
	return l, frrs
}

// streamOnSPT waits until R2 (its daemon at c) forwards (S,G) from its
// SPT input to lan.
func streamOnSPT(t *testing.T, c *api.Client) {
	eventually(t, 10*time.Second, "R2 forwards the stream from to-r1 to lan", func() string {
		rs, err := c.MRoutes()
		if err != nil {
			return err.Error()
		}
		for _, r := range rs {
			if r.Source == "10.0.1.10" && r.Group == G && r.IIF == "to-r1" && oifNames(r) == "lan" {
				return ""
			}
		}
		return fmt.Sprintf("%+v", rs)
	})
}

// A planned restart of the RP/last-hop router under a 1,000 pps stream,
// twice (overcast restart onto a new binary, then SIGUSR2): no packet
// lost, the PID kept, the kernel's route taken over, the neighbours
// known at once, and FRR's neighbour uptime for it never reset.
func TestPlannedRestartLosesNothing(t *testing.T) {
	l, frrs := restartLab(t)
	sock := l.Socket("r2")
	c := api.NewClient(sock)
	rcv := startRecv(t, l, "rcv2", "-g", G)
	time.Sleep(3 * time.Second)
	wait := sendBackground(t, l, "src", "-g", G, "-count", "14000", "-rate", "1000")
	time.Sleep(3 * time.Second)
	streamOnSPT(t, c)
	st0, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	up0, err := frrs["r1"].frrNeighborUptime("to-r2", "10.1.12.2")
	if err != nil {
		t.Fatal(err)
	}
	at0 := time.Now()

	// An upgrade: a successor binary at another path.
	next := filepath.Join(t.TempDir(), "overcast-next")
	if b, err := os.ReadFile(bin); err != nil || os.WriteFile(next, b, 0o755) != nil {
		t.Fatal("copying the binary", err)
	}
	out, err := exec.Command(bin, "restart", "--binary", next, "--socket", sock, "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("overcast restart: %v\n%s", err, out)
	}
	var res struct {
		Adopted int `json:"adopted_routes"`
		PID     int `json:"pid"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.PID != st0.PID || res.Adopted < 1 {
		t.Errorf("restart: pid %d -> %d, %d routes taken over; want the same pid and the stream's route", st0.PID, res.PID, res.Adopted)
	}
	// The neighbours' last Hellos came with the handover: R2 knows FRR's
	// R1 now, not at its next Hello.
	ns, err := c.PIMNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fmt.Sprint(ns), "10.1.12.1") {
		t.Errorf("right after the restart R2's neighbours are %+v; want FRR's R1 (10.1.12.1)", ns)
	}
	if r, ok := mroute(t, l, "r2", "10.0.1.10", G); !ok || r.IIF != "to-r1" {
		t.Errorf("right after the restart R2's (S,G): %+v; want input to-r1", r)
	}

	time.Sleep(3 * time.Second)
	// The same binary again, by signal.
	if err := l.Signal("r2", syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the second handover", func() string {
		st, err := c.Status()
		if err != nil {
			return err.Error()
		}
		if st.Handovers != 2 || st.PID != st0.PID {
			return fmt.Sprintf("handovers %d, pid %d", st.Handovers, st.PID)
		}
		return ""
	})
	wait(20 * time.Second)
	time.Sleep(300 * time.Millisecond)
	wholeAfterStart(t, rcv.stop(t), 14000, "two planned restarts")
	up1, err := frrs["r1"].frrNeighborUptime("to-r2", "10.1.12.2")
	if err != nil {
		t.Fatal(err)
	}
	if want := up0 + time.Since(at0) - 2*time.Second; up1 < want {
		t.Errorf("FRR's uptime for R2 went %s -> %s over %s: reset by the restart", up0, up1, time.Since(at0).Round(time.Second))
	}
}

// A crash (SIGKILL) of the same router under the stream: the kernel kept
// the routes (static: programmed from the second socket), so forwarding
// comes back at the new daemon's start, on the SPT input, not through
// the register path.
func TestCrashRestartResumesAtOnce(t *testing.T) {
	l, _ := restartLab(t)
	rcv := startRecv(t, l, "rcv2", "-g", G)
	time.Sleep(3 * time.Second)
	wait := sendBackground(t, l, "src", "-g", G, "-count", "8000", "-rate", "1000")
	time.Sleep(3 * time.Second)
	streamOnSPT(t, api.NewClient(l.Socket("r2")))
	if err := l.Signal("r2", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	eventually(t, 5*time.Second, "the killed daemon gone", func() string {
		for _, n := range l.Status() {
			if n.Node == "r2" && strings.HasPrefix(n.Daemon, "running") {
				return n.Daemon
			}
		}
		return ""
	})
	// Dead: the kernel forwards nothing while no routing socket is open.
	gap := time.Since(killed)
	started := time.Now()
	if err := l.StartDaemon("r2"); err != nil {
		t.Fatal(err)
	}
	answered := time.Since(started)
	r, ok := mroute(t, l, "r2", "10.0.1.10", G)
	if !ok || r.IIF != "to-r1" || oifNames(r) != "lan" || r.Registering {
		t.Errorf("right after the restart R2's (S,G): %+v; want to-r1 -> lan, not registering", r)
	}
	wait(15 * time.Second)
	time.Sleep(300 * time.Millisecond)
	rs := rcv.stop(t)
	p, lost, dups := rs.Total()
	if len(rs.Streams) != 1 {
		t.Fatalf("receiver saw %d streams", len(rs.Streams))
	}
	s := rs.Streams[0]
	out := lost - uint64(s.LostInFirst100)
	// At 1,000 pps a lost packet is a millisecond without forwarding.
	outage := time.Duration(out) * time.Millisecond
	t.Logf("rcv2: %d packets; %d lost at the crash: %s without forwarding (dead %s before the new start, which answered after %s)", p, out, outage, gap.Round(time.Millisecond), answered.Round(time.Millisecond))
	if outage > gap+time.Second || dups != 0 {
		t.Errorf("forwarding came back %s after the new daemon started (lost %d, %d duplicates); want within 1 s", outage-gap, out, dups)
	}
	st, err := api.NewClient(l.Socket("r2")).Status()
	if err != nil || st.AdoptedRoutes < 1 {
		t.Errorf("the new daemon took over %d routes (%v); want the stream's", st.AdoptedRoutes, err)
	}
}

// overcast stop leaves the kernel's routes (not forwarded: no routing
// socket) for the next start, which takes them over; stop --flush
// removes them and the VIFs.
func TestStopFlushOnlyWhenAsked(t *testing.T) {
	l := startLab(t, routerLab("query-interval: 5s"))
	sock := l.Socket("r1")
	rcv := startRecv(t, l, "rcv1", "-g", G)
	defer rcv.stop(t)
	eventually(t, 5*time.Second, "rcv1 joined", func() string { return hasGroup(api.NewClient(sock), "lan1", G) })
	send(t, l, "src", "-g", G, "-count", "20", "-rate", "100")
	table := func(file string) string {
		out, err := l.Exec("r1", "cat", "/proc/net/"+file)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	lines := func(s string) int { return strings.Count(strings.TrimSpace(s), "\n") } // after the header
	stop := func(args ...string) string {
		out, err := exec.Command(bin, append([]string{"stop", "--socket", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("overcast stop %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := stop()
	if !strings.Contains(out, "routes stay") || lines(table("ip_mr_cache")) != 1 || lines(table("ip_mr_vif")) != 4 {
		t.Fatalf("after overcast stop: %q\n%s\n%s", out, table("ip_mr_cache"), table("ip_mr_vif"))
	}
	if err := l.StartDaemon("r1"); err != nil {
		t.Fatal(err)
	}
	st, err := api.NewClient(sock).Status()
	if err != nil || st.AdoptedRoutes != 1 {
		t.Fatalf("the next start took over %d routes (%v), want 1", st.AdoptedRoutes, err)
	}
	if lines(table("ip_mr_vif")) != 4 {
		t.Errorf("VIFs after the next start (adopted, not added again):\n%s", table("ip_mr_vif"))
	}
	// overcast flush is for a table no router holds: it refuses here.
	if out, err := l.Exec("r1", bin, "flush"); err == nil || !strings.Contains(out, "overcast stop --flush") {
		t.Errorf("overcast flush beside a running router: %v %q; want a refusal naming overcast stop --flush", err, out)
	}
	out = stop("--flush")
	if !strings.Contains(out, "removed") || lines(table("ip_mr_cache")) != 0 || lines(table("ip_mr_vif")) != 0 {
		t.Fatalf("after overcast stop --flush: %q\n%s\n%s", out, table("ip_mr_cache"), table("ip_mr_vif"))
	}
	// A table left by a stopped router, removed by overcast flush.
	if err := l.StartDaemon("r1"); err != nil {
		t.Fatal(err)
	}
	send(t, l, "src", "-g", G, "-count", "20", "-rate", "100")
	stop()
	if lines(table("ip_mr_cache")) != 1 {
		t.Fatalf("no route left to flush:\n%s", table("ip_mr_cache"))
	}
	if out, err := l.Exec("r1", bin, "flush"); err != nil || !strings.Contains(out, "4 VIFs and 1 routes removed") || lines(table("ip_mr_vif")) != 0 {
		t.Errorf("overcast flush: %v %q\n%s", err, out, table("ip_mr_vif"))
	}
}
