package daemon

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/dataplane"
	"overcast/internal/mrib"
	igmpwire "overcast/internal/packet/igmp"
	"overcast/internal/pim"
)

const igmpOnly = `
interfaces:
  - name: eth0
  - name: eth1
  - name: eth2
    igmp: {static-groups: [239.9.9.9]}
`

// An IGMP join becomes a route: the first packet's upcall installs it in
// the forwarder, out of the interface with the member only, and the
// MRIB says who wants each output.
func TestIGMPJoinBecomesRoute(t *testing.T) {
	h := newHarness(t, igmpOnly)
	if !h.io.Listens("eth1", dataplane.IGMP) {
		t.Fatal("IGMP not received on eth1")
	}
	queries := 0
	for _, s := range h.io.Take() {
		if s.Proto == dataplane.IGMP {
			queries++
		}
	}
	if queries != 3 {
		t.Errorf("%d startup queries, want one per interface", queries)
	}
	h.report("eth1", "10.0.1.10", asm("239.1.1.1"))
	out := h.data("eth0", "10.0.0.10", "239.1.1.1")
	if fmt.Sprint(out) != "[eth1]" {
		t.Fatalf("first packet forwarded to %v, want [eth1]", out)
	}
	k := dataplane.SG{Source: netip.MustParseAddr("10.0.0.10"), Group: netip.MustParseAddr("239.1.1.1")}
	e, ok := h.d.Routes().Get(k)
	if !ok || e.IIF != "eth0" || len(e.Outputs) != 1 || e.Outputs[0].Origin != mrib.IGMP || e.Flags.String() != "CT" {
		t.Fatalf("MRIB entry %+v", e)
	}
	// A static group goes out with origin static; a group nobody wants is
	// installed with no outputs (the kernel stops asking).
	if out := h.data("eth0", "10.0.0.10", "239.9.9.9"); fmt.Sprint(out) != "[eth2]" {
		t.Fatalf("static group forwarded to %v", out)
	}
	if out := h.data("eth0", "10.0.0.10", "239.2.2.2"); len(out) != 0 {
		t.Fatalf("unwanted group forwarded to %v", out)
	}
	v, err := h.d.View(h.now, api.PathMRoute, "")
	if err != nil {
		t.Fatal(err)
	}
	rows := v.([]api.MRoute)
	if len(rows) != 3 || rows[0].Group != "239.1.1.1" || rows[0].OIFs[0].Origin != "igmp" || !rows[0].Programs ||
		rows[1].Flags != "TP" || rows[2].OIFs[0].Origin != "static" {
		t.Fatalf("show mroute: %+v", rows)
	}
	// The member leaves (TO_IN{}): after the last-member queries (2 s) the
	// route loses eth1.
	h.report("eth1", "10.0.1.10", igmpwire.GroupRecord{Type: igmpwire.ChangeToInclude, Group: k.Group})
	if r, _ := h.fw.Route(k); fmt.Sprint(r.OIFs) != "[eth1]" {
		t.Fatalf("route changed before the last-member queries ran: %+v", r)
	}
	h.run(3 * time.Second)
	if r, _ := h.fw.Route(k); len(r.OIFs) != 0 {
		t.Fatalf("route after the leave: %+v", r)
	}
}

const pimBase = `
interfaces:
  - name: eth0
  - name: eth1
    pim: true
  - name: eth2
    pim: true
pim:
  rp:
    - address: %s
`

func pimHarness(t testing.TB, rp string) *harness {
	h := newHarness(t, fmt.Sprintf(pimBase, rp))
	h.rt.routes[netip.MustParsePrefix("10.255.0.11/32")] = pim.RPF{Iface: "eth1", Neighbor: netip.MustParseAddr("10.0.1.2"), Protocol: "ospf", Preference: 110, Metric: 20}
	h.rt.routes[netip.MustParsePrefix("10.255.0.12/32")] = pim.RPF{Iface: "eth2", Neighbor: netip.MustParseAddr("10.0.2.2"), Protocol: "ospf", Preference: 110, Metric: 30}
	h.rt.routes[netip.MustParsePrefix("10.9.0.0/16")] = pim.RPF{Iface: "eth1", Neighbor: netip.MustParseAddr("10.0.1.2"), Protocol: "kernel"}
	h.hello("eth1", "10.0.1.2")
	h.hello("eth2", "10.0.2.2")
	h.io.Take()
	return h
}

// A reload that changes the RP moves the (*,G) joins to the new RP's RPF
// neighbour in the same burst: a prune to the old one, a join to the new.
func TestReloadRPMovesJoins(t *testing.T) {
	h := pimHarness(t, "10.255.0.11")
	h.report("eth0", "10.0.0.10", asm("239.1.1.1"))
	if js, _ := joins(h.sentPIM(), "eth1", "10.0.1.2"); !slices.Contains(js, "*,239.1.1.1") {
		t.Fatalf("no (*,G) join toward the first RP: %v", js)
	}
	h.write(fmt.Sprintf(pimBase, "10.255.0.12"))
	if err := h.d.ReloadFile(h.now); err != nil {
		t.Fatal(err)
	}
	sent := h.sentPIM()
	if _, ps := joins(sent, "eth1", "10.0.1.2"); !slices.Contains(ps, "*,239.1.1.1") {
		t.Errorf("no prune to the old RP's neighbour in the reload burst: %v", ps)
	}
	if js, _ := joins(sent, "eth2", "10.0.2.2"); !slices.Contains(js, "*,239.1.1.1") {
		t.Errorf("no join to the new RP's neighbour in the reload burst: %v", js)
	}
	v, _ := h.d.View(h.now, api.PathPIMRP, "")
	if rps := v.([]api.PIMRP); rps[0].RP != "10.255.0.12" || rps[0].RPFIf != "eth2" {
		t.Errorf("show pim rp after reload: %+v", rps)
	}
	if st, _ := h.d.View(h.now, api.PathStatus, ""); st.(api.Status).Reloads != 1 {
		t.Errorf("reloads %d", st.(api.Status).Reloads)
	}
}

// Adding and removing a PIM interface by reload: hellos start on the new
// one (and it is in the forwarder and listened on), a goodbye goes out on
// the removed one; turning PIM off on an interface says goodbye too.
func TestReloadPIMInterfaces(t *testing.T) {
	h := pimHarness(t, "10.255.0.11")
	cfg := fmt.Sprintf(pimBase, "10.255.0.11")
	h.write(cfg + "  - name: eth3\n    pim: {dr-priority: 7}\n")
	// The list under pim: is the RP list; interfaces go under interfaces:.
	if err := h.d.ReloadFile(h.now); err == nil {
		t.Fatal("an interface under pim.rp accepted")
	}
	withEth3 := strings.Replace(cfg, "pim:\n  rp:", "  - name: eth3\n    pim: {dr-priority: 7}\npim:\n  rp:", 1)
	h.write(withEth3)
	if err := h.d.ReloadFile(h.now); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.fw.Ifaces["eth3"]; !ok || !h.io.Listens("eth3", dataplane.PIM) || !h.io.Listens("eth3", dataplane.IGMP) {
		t.Fatalf("eth3 not up: forwarder %v", h.fw.Ifaces)
	}
	if holds, prios := hellos(h.sentPIM(), "eth3"); len(holds) == 0 || holds[0] == 0 || prios[0] != 7 {
		t.Fatalf("hellos on the new interface: %v %v", holds, prios)
	}
	// eth2 passive, eth3 removed.
	passive := strings.Replace(withEth3, "  - name: eth2\n    pim: true\n", "  - name: eth2\n", 1)
	passive = strings.Replace(passive, "  - name: eth3\n    pim: {dr-priority: 7}\n", "", 1)
	h.write(passive)
	if err := h.d.ReloadFile(h.now); err != nil {
		t.Fatal(err)
	}
	sent := h.sentPIM()
	for _, ifc := range []string{"eth2", "eth3"} {
		if holds, _ := hellos(sent, ifc); len(holds) != 1 || holds[0] != 0 {
			t.Errorf("%s: hellos %v, want one goodbye (holdtime 0)", ifc, holds)
		}
	}
	if _, ok := h.fw.Ifaces["eth3"]; ok || h.io.Listens("eth3", dataplane.PIM) || h.io.Listens("eth2", dataplane.PIM) {
		t.Errorf("eth3 still in the forwarder or eth2/eth3 still listened on")
	}
	h.run(40 * time.Second)
	if holds, _ := hellos(h.sentPIM(), "eth2"); len(holds) != 0 {
		t.Errorf("passive eth2 still sends hellos: %v", holds)
	}
	v, _ := h.d.View(h.now, api.PathPIMInterfaces, "")
	for _, i := range v.([]api.PIMInterface) {
		if i.Name == "eth2" && i.Active || i.Name == "eth3" {
			t.Errorf("show pim interface after reload: %+v", i)
		}
	}
}

// DR priority and hello interval change in place: one hello with the new
// values at once, neighbours kept.
func TestReloadDRPriority(t *testing.T) {
	h := pimHarness(t, "10.255.0.11")
	h.write(strings.Replace(fmt.Sprintf(pimBase, "10.255.0.11"), "  - name: eth1\n    pim: true\n", "  - name: eth1\n    pim: {dr-priority: 50, hello-interval: 10s}\n", 1))
	if err := h.d.ReloadFile(h.now); err != nil {
		t.Fatal(err)
	}
	if _, prios := hellos(h.sentPIM(), "eth1"); len(prios) != 1 || prios[0] != 50 {
		t.Fatalf("hellos after the priority change: %v", prios)
	}
	v, _ := h.d.View(h.now, api.PathPIMInterfaces, "")
	for _, i := range v.([]api.PIMInterface) {
		if i.Name == "eth1" && (i.DRPriority != 50 || i.Neighbors != 1 || time.Duration(i.HelloPeriod) != 10*time.Second || !i.IAmDR) {
			t.Errorf("eth1 after reload: %+v", i)
		}
	}
	h.run(25 * time.Second)
	if holds, _ := hellos(h.sentPIM(), "eth1"); len(holds) < 2 {
		t.Errorf("%d hellos in 25 s at a 10 s interval", len(holds))
	}
}

// SPT thresholds and SSM ranges apply on reload.
func TestReloadSPTThresholdAndSSMRange(t *testing.T) {
	h := pimHarness(t, "10.255.0.11")
	base := fmt.Sprintf(pimBase, "10.255.0.11")
	g := netip.MustParseAddr("239.5.1.1")
	if th := h.d.PIM().Config().SwitchToSPT; th != nil {
		t.Fatal("a threshold before any was configured")
	}
	h.write(base + "  spt-threshold:\n    - {groups: 239.5.0.0/16, threshold: infinity}\n  ssm-range: [232.0.0.0/8, 239.232.0.0/16]\n")
	if err := h.d.ReloadFile(h.now); err != nil {
		t.Fatal(err)
	}
	if th := h.d.PIM().Config().SwitchToSPT; th == nil || !th(g).Never {
		t.Fatal("threshold infinity not applied")
	}
	// An ASM join in the new SSM range is ignored and counted.
	h.report("eth0", "10.0.0.10", asm("239.232.1.1"))
	if js, _ := joins(h.sentPIM(), "eth1", "10.0.1.2"); len(js) != 0 {
		t.Errorf("ASM join in the new SSM range sent joins %v", js)
	}
	st, _ := h.d.View(h.now, api.PathStatus, "")
	if st.(api.Status).PIM.ASMInSSM != 1 {
		t.Errorf("asm joins in the SSM range counted %d", st.(api.Status).PIM.ASMInSSM)
	}
	v, _ := h.d.View(h.now, api.PathPIMRP, "")
	if rps := v.([]api.PIMRP); len(rps) != 3 || !rps[2].SSM || rps[2].Groups != "239.232.0.0/16" {
		t.Errorf("show pim rp: %+v", rps)
	}
	h.write(base)
	if err := h.d.ReloadFile(h.now); err != nil {
		t.Fatal(err)
	}
	if th := h.d.PIM().Config().SwitchToSPT; th != nil && th(g).Never {
		t.Error("threshold infinity kept after it was removed")
	}
	// With 239.232/16 back in ASM, the member's (*,G) join goes upstream now.
	h.report("eth0", "10.0.0.10", asm("239.232.1.1"))
	if js, _ := joins(h.sentPIM(), "eth1", "10.0.1.2"); !slices.Contains(js, "*,239.232.1.1") {
		t.Errorf("no (*,G) join once the range is ASM again: %v", js)
	}
}

// A change only a restart can apply is rejected with file:line and the
// running config stays; so is a file that does not validate.
func TestReloadRejected(t *testing.T) {
	h := pimHarness(t, "10.255.0.11")
	for _, c := range []struct{ yaml, want string }{
		{"api-socket: /tmp/other.sock\n" + fmt.Sprintf(pimBase, "10.255.0.11"), ":1: api-socket /run/overcast.sock -> /tmp/other.sock: the API socket is opened at start, so this needs a restart"},
		{"interfaces:\n  - name: eth0\n  - name: eth1\n", "needs a restart"},
		{fmt.Sprintf(pimBase, "10.255.0.11") + "  join-prune-interval: 1ms\n", "join-prune-interval 1ms: want 1s..5h"},
		{"interfaces:\n  - name: eth77\n" + "pim: {}\n", `interface "eth77" does not exist`},
	} {
		h.write(c.yaml)
		err := h.d.ReloadFile(h.now)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), h.path+":") {
			t.Errorf("reload of %q: %v, want %q at %s:line", c.yaml, err, c.want, h.path)
		}
		st, _ := h.d.View(h.now, api.PathStatus, "")
		if s := st.(api.Status); s.Reloads != 0 || s.ReloadError != err.Error() {
			t.Errorf("status after a rejected reload: %+v", s)
		}
		if h.d.Config().APISocket != "/run/overcast.sock" || len(h.d.Config().Interfaces) != 3 {
			t.Errorf("running config changed by a rejected reload")
		}
	}
	// PIM on from off needs a restart too.
	g := newHarness(t, igmpOnly)
	g.write(igmpOnly + "pim: {}\n")
	if err := g.d.ReloadFile(g.now); err == nil || !strings.Contains(err.Error(), "turning it on needs a restart") {
		t.Errorf("PIM turned on by reload: %v", err)
	}
}

// show pim rp marks the local RP for every range it serves, 224.0.0.0/4
// (whose first address is link-local) included.
func TestShowPIMRPLocal(t *testing.T) {
	h := newHarness(t, "interfaces:\n  - name: eth0\n    pim: true\npim:\n  rp:\n    - address: 10.255.0.1\n    - {address: 10.0.0.1, groups: 239.1.0.0/16}\n    - {address: 10.9.9.9, groups: 239.2.0.0/16}\n")
	v, _ := h.d.View(h.now, api.PathPIMRP, "")
	got := map[string]bool{}
	for _, r := range v.([]api.PIMRP) {
		got[r.Groups] = r.Local
	}
	if !got["224.0.0.0/4"] || !got["239.1.0.0/16"] || got["239.2.0.0/16"] {
		t.Errorf("local RP marks: %v", got)
	}
}

// show rpf carries the route's protocol, preference and metric.
func TestShowRPFProtocolAndMetric(t *testing.T) {
	h := pimHarness(t, "10.255.0.11")
	v, err := h.d.View(h.now, api.PathRPF, "10.255.0.12")
	if err != nil {
		t.Fatal(err)
	}
	if r := v.(api.RPF); r.Iface != "eth2" || r.Neighbor != "10.0.2.2" || r.Protocol != "ospf" || r.Preference != 110 || r.Metric != 30 {
		t.Errorf("show rpf: %+v", r)
	}
	if _, err := h.d.View(h.now, api.PathRPF, "not-an-address"); err == nil || !strings.Contains(err.Error(), "is not an IPv4 address") {
		t.Errorf("bad address: %v", err)
	}
	g := newHarness(t, igmpOnly)
	if _, err := g.d.View(g.now, api.PathPIMJoin, ""); err == nil || !strings.Contains(err.Error(), "PIM is not running") {
		t.Errorf("pim view without PIM: %v", err)
	}
}

// An SSM join from a receiver becomes (S,G) state and a route installed
// before any packet (the first packet is forwarded by the forwarder).
func TestSSMJoinInstallsRouteBeforeData(t *testing.T) {
	h := pimHarness(t, "10.255.0.11")
	h.report("eth0", "10.0.0.10", ssm("232.1.1.1", "10.9.0.5"))
	if js, _ := joins(h.sentPIM(), "eth1", "10.0.1.2"); !slices.Contains(js, "10.9.0.5,232.1.1.1") {
		t.Fatalf("no (S,G) join upstream: %v", js)
	}
	k := dataplane.SG{Source: netip.MustParseAddr("10.9.0.5"), Group: netip.MustParseAddr("232.1.1.1")}
	r, ok := h.fw.Route(k)
	if !ok || r.IIF != "eth1" || fmt.Sprint(r.OIFs) != "[eth0]" {
		t.Fatalf("route before data: %+v %v", r, ok)
	}
	if out := h.data("eth1", "10.9.0.5", "232.1.1.1"); fmt.Sprint(out) != "[eth0]" {
		t.Fatalf("first packet to %v", out)
	}
	if e, _ := h.d.Routes().Get(k); e.IIFOrigin != mrib.PIM || e.Outputs[0].Origin != mrib.IGMP || !strings.Contains(e.Flags.String(), "C") {
		t.Errorf("MRIB entry %+v flags %s", e, e.Flags)
	}
}

// Removing an interface removes every route through it before the
// forwarder drops it.
func TestReloadRemovesInterfaceAndItsRoutes(t *testing.T) {
	h := newHarness(t, igmpOnly)
	h.report("eth1", "10.0.1.10", asm("239.1.1.1"))
	h.data("eth0", "10.0.0.10", "239.1.1.1")
	h.write("interfaces:\n  - name: eth0\n  - name: eth2\n")
	if err := h.d.ReloadFile(h.now); err != nil {
		t.Fatal(err)
	}
	k := dataplane.SG{Source: netip.MustParseAddr("10.0.0.10"), Group: netip.MustParseAddr("239.1.1.1")}
	if r, _ := h.fw.Route(k); slices.Contains(r.OIFs, "eth1") {
		t.Fatalf("route still uses eth1: %+v", r)
	}
	if _, ok := h.fw.Ifaces["eth1"]; ok {
		t.Fatal("eth1 still in the forwarder")
	}
	// Removing the input interface removes the flow.
	h.write("interfaces:\n  - name: eth2\n")
	if err := h.d.ReloadFile(h.now); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.fw.Route(k); ok || h.d.Routes().Len() != 0 {
		t.Fatalf("route of a flow whose input went away is still there")
	}
}
