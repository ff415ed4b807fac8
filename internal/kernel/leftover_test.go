package kernel

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"overcast/internal/dataplane"
	"overcast/internal/dataplane/linuxmr"
)

// inNetns runs the calling test again in a new network namespace (unshare
// -n), where it may program the kernel's multicast table; it reports
// whether this is that run.
func inNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv("OVERCAST_TEST_NETNS") == "1" {
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: it programs the kernel's multicast routing table in a namespace")
	}
	if _, err := os.Stat("/proc/net/ip_mr_vif"); err != nil {
		t.Skip("this kernel cannot route multicast (no CONFIG_IP_MROUTE)")
	}
	cmd := exec.Command("unshare", "-n", os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "OVERCAST_TEST_NETNS=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in a network namespace: %v\n%s", err, out)
	}
	return false
}

func veths(t *testing.T, names ...string) map[string]int {
	t.Helper()
	idx := map[string]int{}
	for _, n := range names {
		for _, args := range [][]string{{"link", "add", n, "type", "veth", "peer", "name", "p" + n}, {"link", "set", n, "multicast", "on", "up"}} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v %s", args, err, out)
			}
		}
		ni, err := net.InterfaceByName(n)
		if err != nil {
			t.Fatal(err)
		}
		idx[n] = ni.Index
	}
	return idx
}

// What a run leaves in the kernel's table outlives its routing socket
// (VIFs and routes are static), and the next run adopts it: the same
// VIFs for the same devices, the routes listed by name before it opened
// a socket; a VIF for a device it does not run on is removed; Flush
// empties the table, the static entries too.
func TestLeftTableAdopted(t *testing.T) {
	if !inNetns(t) {
		return
	}
	idx := veths(t, "d0", "d1", "d2")
	log := slog.New(slog.DiscardHandler)
	k := dataplane.SG{Source: netip.MustParseAddr("10.0.0.10"), Group: netip.MustParseAddr("239.1.1.1")}

	a, err := Open(log, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"d0", "d1", "d2"} {
		if err := a.AddInterface(n, idx[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.EnableRegister(); err != nil {
		t.Fatal(err)
	}
	if err := a.SetRoute(dataplane.Route{SG: k, IIF: "d0", OIFs: []string{"d1", "d2"}}); err != nil {
		t.Fatal(err)
	}
	vifs := map[string]int{}
	for _, n := range []string{"d0", "d1", "d2", dataplane.RegisterName} {
		vifs[n], _ = a.VIF(n)
	}
	a.Close() // as a crash would: the socket goes

	b, err := Open(log, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	left, err := b.ListRoutes()
	if err != nil || len(left) != 1 || left[0].IIF != "d0" || !slices.Equal(left[0].OIFs, []string{"d1", "d2"}) {
		t.Fatalf("the routes left, before any socket: %+v %v", left, err)
	}
	// This run has d0 and d1 (and PIM); d2 is no longer configured.
	for _, n := range []string{"d0", "d1"} {
		if err := b.AddInterface(n, idx[n]); err != nil {
			t.Fatal(err)
		}
		if v, _ := b.VIF(n); v != vifs[n] {
			t.Errorf("%s has VIF %d, the previous run's was %d", n, v, vifs[n])
		}
	}
	if err := b.EnableRegister(); err != nil {
		t.Fatalf("register VIF: %v", err)
	}
	if v, _ := b.VIF(dataplane.RegisterName); v != vifs[dataplane.RegisterName] {
		t.Errorf("register VIF %d, was %d", v, vifs[dataplane.RegisterName])
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := b.Start(ctx, nopSink{}); err != nil {
		t.Fatal(err)
	}
	vs, _ := linuxmr.VIFs()
	var names []string
	for _, v := range vs {
		names = append(names, v.Name)
	}
	if slices.Contains(names, "d2") || !slices.Contains(names, "d0") || !slices.Contains(names, "pimreg") {
		t.Errorf("VIFs after the start: %v; want d0, d1 and pimreg, not d2", names)
	}
	// A new interface gets a free VIF, not one in use.
	if err := b.AddInterface("d2", idx["d2"]); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if rs, _ := b.ListRoutes(); len(rs) != 0 {
		t.Errorf("after Flush %d routes", len(rs))
	}
	if vs, _ := linuxmr.VIFs(); len(vs) != 0 {
		t.Errorf("after Flush VIFs %+v", vs)
	}
}

type nopSink struct{}

func (nopSink) Packet(string, dataplane.Proto, []byte) {}
func (nopSink) Upcall(dataplane.Upcall)                {}
func (nopSink) RoutingChanged()                        {}
