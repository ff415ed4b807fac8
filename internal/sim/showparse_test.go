package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/pim"
	"overcast/internal/testkit/schemacheck"
)

// These tests run real parsers (and a JSON Schema validator) over the show commands of real daemons in
// the states an operator meets (shared tree, SPT, registering, SSM,
// assert): Debian's python3-textfsm with the templates in docs/textfsm,
// written for Cisco IOS's output. The same templates parse IOS's own
// output (docs/textfsm/ios, seed 002's among it), and what they read
// from Overcast's text must be what its JSON says.

// show renders a node's view as the CLI does: the daemon's answer through
// JSON (what the API sends), decoded and printed by the view's text.
func show(t testing.TB, nd *Node, words ...string) (string, []byte) {
	t.Helper()
	v, arg, ok := api.FindView(words)
	if !ok {
		t.Fatalf("no view %q", words)
	}
	ans, err := nd.D.View(nd.net.Now, v.Path, arg)
	if err != nil {
		t.Fatalf("%s: show %v: %v", nd.Name, words, err)
	}
	js, err := api.Marshal(ans) // what the API sends
	if err != nil {
		t.Fatal(err)
	}
	dec := v.New()
	if err := json.Unmarshal(js, dec); err != nil {
		t.Fatalf("%s: show %v: the JSON does not decode: %v", nd.Name, words, err)
	}
	var b bytes.Buffer
	v.Text(&b, v.Words, dec)
	return b.String(), js
}

// checkAllViews validates every view a node answers (PIM's, IGMP's, the
// MRIB's, status, mirror; the components it does not run answer with an
// error, and are validated where they run) against docs/api.schema.json.
func checkAllViews(t *testing.T, nd *Node, g, src netip.Addr) {
	t.Helper()
	schemacheck.Views(t, func(path, arg string) (any, error) { return nd.D.View(nd.net.Now, path, arg) }, g.String(), src.String())
}

// record is one TextFSM record: value names to a string or, for List
// values, a list.
type record map[string]any

func (r record) s(k string) string { v, _ := r[k].(string); return v }

func (r record) list(k string) []string {
	var out []string
	if l, ok := r[k].([]any); ok {
		for _, x := range l {
			out = append(out, fmt.Sprint(x))
		}
	}
	return out
}

// textfsm parses text with a template of docs/textfsm.
func textfsm(t testing.TB, template, text string) []record {
	t.Helper()
	f := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/usr/bin/python3", "testdata/textfsm_parse.py", filepath.Join("../../docs/textfsm", template+".textfsm"), f).CombinedOutput()
	if err != nil {
		t.Fatalf("textfsm %s: %v\n%s\n(python3-textfsm comes from Debian: apt-get install python3-textfsm)", template, err, out)
	}
	var rs []record
	if err := json.Unmarshal(out, &rs); err != nil {
		t.Fatalf("textfsm %s: %v\n%s", template, err, out)
	}
	return rs
}

func iosSample(t testing.TB, name string) string {
	b, err := os.ReadFile(filepath.Join("../../docs/textfsm/ios", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The templates read IOS's own output: seed 002's and the IOS samples.
func TestTextFSMTemplatesReadIOS(t *testing.T) {
	rs := textfsm(t, "cisco_ios_show_ip_mroute", iosSample(t, "seed002_show_ip_mroute.txt"))
	if len(rs) != 2 || rs[0].s("SOURCE") != "*" || rs[0].s("RP") != "198.129.245.2" || rs[0].s("FLAGS") != "SJC" || rs[0].s("INCOMING_INTERFACE") != "Null" ||
		!slices.Equal(rs[0].list("OUTGOING_INTERFACE"), []string{"Vlan110"}) ||
		rs[1].s("SOURCE") != "64.65.64.31" || rs[1].s("RPF_NBR") != "198.129.76.25" || rs[1].s("UPTIME") != "1d20h" ||
		!slices.Equal(rs[1].list("OUTGOING_INTERFACE"), []string{"Vlan110", "Vlan220"}) {
		t.Errorf("seed 002 show ip mroute: %v", rs)
	}
	rs = textfsm(t, "cisco_ios_show_ip_mroute", iosSample(t, "show_ip_mroute.txt"))
	if len(rs) != 4 || rs[2].s("REGISTERING") != "Registering" || len(rs[2].list("OUTGOING_INTERFACE")) != 0 || rs[3].s("FLAGS") != "sTI" ||
		!slices.Equal(rs[3].list("OUTGOING_TIMERS"), []string{"1d20h/00:02:29", "1w3d/00:02:02"}) {
		t.Errorf("IOS show ip mroute: %v", rs)
	}
	rs = textfsm(t, "cisco_ios_show_ip_mroute_count", iosSample(t, "seed002_show_ip_mroute_count.txt"))
	if len(rs) != 5 || rs[1].s("SOURCE") != "128.111.252.50" || rs[1].s("PACKETS") != "718" || rs[1].s("PPS") != "10" || rs[1].s("AVG_SIZE") != "72" ||
		rs[4].s("OTHER_DROPS") != "1" || rs[4].s("GROUP_RECEIVED") != "44832" {
		t.Errorf("seed 002 show ip mroute count: %v", rs)
	}
	rs = textfsm(t, "cisco_ios_show_ip_pim_neighbor", iosSample(t, "show_ip_pim_neighbor.txt"))
	if len(rs) != 2 || rs[1].s("INTERFACE") != "Ethernet0/1" || rs[1].s("MODE") != "DR S P G" || rs[0].s("UPTIME") != "1d02h" {
		t.Errorf("IOS show ip pim neighbor: %v", rs)
	}
	rs = textfsm(t, "cisco_ios_show_ip_pim_interface", iosSample(t, "show_ip_pim_interface.txt"))
	if len(rs) != 3 || rs[1].s("INTERFACE") != "Ethernet0/1" || rs[1].s("VERSION_MODE") != "v2/S" || rs[2].s("NBR_COUNT") != "0" || rs[0].s("DR") != "10.1.13.3" {
		t.Errorf("IOS show ip pim interface: %v", rs)
	}
	rs = textfsm(t, "cisco_ios_show_ip_rpf", iosSample(t, "show_ip_rpf.txt"))
	if len(rs) != 1 || rs[0].s("NEIGHBOR") != "10.1.13.1" || rs[0].s("ROUTE") != "10.0.1.0/24" || rs[0].s("TYPE") != "unicast (ospf 1)" {
		t.Errorf("IOS show ip rpf: %v", rs)
	}
	rs = textfsm(t, "cisco_ios_show_ip_igmp_groups", iosSample(t, "show_ip_igmp_groups.txt"))
	if len(rs) != 2 || rs[0].s("LAST_REPORTER") != "10.0.3.10" || rs[1].s("UPTIME") != "1d02h" {
		t.Errorf("IOS show ip igmp groups: %v", rs)
	}
}

// checkMroute parses a node's show ip mroute and show ip mroute count and
// compares every entry with the JSON view; it returns the entries.
func checkMroute(t *testing.T, nd *Node, state string) []api.MRoute {
	t.Helper()
	text, js := show(t, nd, "ip", "mroute")
	var rows []api.MRoute
	json.Unmarshal(js, &rows)
	rs := textfsm(t, "cisco_ios_show_ip_mroute", text)
	if len(rs) != len(rows) {
		t.Fatalf("%s, %s: TextFSM read %d entries, the JSON has %d:\n%s", state, nd.Name, len(rs), len(rows), text)
	}
	for i, r := range rows {
		p := rs[i]
		var oifs, timers []string
		for _, o := range r.OIFs {
			if o.Name != "pimreg" {
				oifs = append(oifs, o.Name)
				timers = append(timers, o.Uptime.Uptime()+"/"+o.Expires.String())
			}
		}
		iif := r.IIF
		switch iif {
		case "":
			iif = "Null"
		case "pimreg":
			iif = "Register"
		}
		nbr := r.RPFNbr
		if nbr == "" {
			nbr = "0.0.0.0"
		}
		reg := ""
		if r.Registering {
			reg = "Registering"
		}
		rp := ""
		if r.Source == "*" {
			rp = r.RP
		}
		got := fmt.Sprint(p.s("SOURCE"), p.s("GROUP"), p.s("RP"), p.s("FLAGS"), p.s("INCOMING_INTERFACE"), p.s("RPF_NBR"), p.s("REGISTERING"), p.list("OUTGOING_INTERFACE"), p.list("OUTGOING_TIMERS"), p.s("UPTIME")+"/"+p.s("EXPIRES"))
		want := fmt.Sprint(r.Source, r.Group, rp, r.Flags, iif, nbr, reg, oifs, timers, r.Uptime.Uptime()+"/"+r.Expires.String())
		if got != want {
			t.Errorf("%s, %s: TextFSM read\n  %s\nthe JSON says\n  %s\n%s", state, nd.Name, got, want, text)
		}
		for _, st := range p.list("OUTGOING_STATE") {
			if st != "Forward/Sparse" {
				t.Errorf("%s, %s: outgoing state %q, want Forward/Sparse", state, nd.Name, st)
			}
		}
	}
	text, _ = show(t, nd, "ip", "mroute", "count")
	cs := textfsm(t, "cisco_ios_show_ip_mroute_count", text)
	var sg []api.MRoute
	for _, r := range rows {
		if r.Source != "*" {
			sg = append(sg, r)
		}
	}
	if len(cs) != len(sg) {
		t.Fatalf("%s, %s: count: TextFSM read %d sources, the JSON has %d:\n%s", state, nd.Name, len(cs), len(sg), text)
	}
	for i, r := range sg {
		if c := cs[i]; c.s("SOURCE") != r.Source || c.s("GROUP") != r.Group || c.s("TOTAL") != fmt.Sprint(r.Packets+r.WrongIf) || c.s("RPF_FAILED") != fmt.Sprint(r.WrongIf) {
			t.Errorf("%s, %s: count record %v for %+v:\n%s", state, nd.Name, c, r, text)
		}
	}
	return rows
}

// checkOthers parses show ip pim neighbor, show ip rpf SOURCE and show ip
// igmp groups against their JSON.
func checkOthers(t *testing.T, nd *Node, src netip.Addr) {
	t.Helper()
	text, js := show(t, nd, "ip", "pim", "neighbor")
	var ns []api.PIMNeighbor
	json.Unmarshal(js, &ns)
	rs := textfsm(t, "cisco_ios_show_ip_pim_neighbor", text)
	if len(rs) != len(ns) || len(ns) == 0 {
		t.Fatalf("%s: pim neighbor: TextFSM read %d, JSON %d:\n%s", nd.Name, len(rs), len(ns), text)
	}
	for i, n := range ns {
		if r := rs[i]; r.s("NEIGHBOR") != n.Address || r.s("INTERFACE") != n.Interface || r.s("DR_PRIORITY") != fmt.Sprint(n.DRPriority) || strings.Contains(r.s("MODE"), "DR") != n.DR {
			t.Errorf("%s: pim neighbor record %v for %+v", nd.Name, r, n)
		}
	}
	text, js = show(t, nd, "ip", "pim", "interface")
	var pis []api.PIMInterface
	json.Unmarshal(js, &pis)
	rs = textfsm(t, "cisco_ios_show_ip_pim_interface", text)
	if len(rs) != len(pis) || len(pis) == 0 {
		t.Fatalf("%s: pim interface: TextFSM read %d, JSON %d:\n%s", nd.Name, len(rs), len(pis), text)
	}
	for i, p := range pis {
		if r := rs[i]; r.s("ADDRESS") != p.Address || r.s("INTERFACE") != p.Name || r.s("NBR_COUNT") != fmt.Sprint(p.Neighbors) || r.s("DR") != p.DR {
			t.Errorf("%s: pim interface record %v for %+v", nd.Name, r, p)
		}
	}
	if d, _ := show(t, nd, "ip", "pim", "interface", "detail"); !strings.Contains(d, "PIM neighbor count: ") || !strings.Contains(d, "PIM messages refused") {
		t.Errorf("%s: show ip pim interface detail:\n%s", nd.Name, d)
	}
	text, js = show(t, nd, "ip", "rpf", src.String())
	var rpf api.RPF
	json.Unmarshal(js, &rpf)
	rs = textfsm(t, "cisco_ios_show_ip_rpf", text)
	nbr := rpf.Neighbor
	if nbr == "" {
		nbr = src.String() // directly connected: IOS names the source itself
	}
	if len(rs) != 1 || rs[0].s("INTERFACE") != rpf.Iface || rs[0].s("NEIGHBOR") != nbr || rs[0].s("ROUTE") != rpf.Route || !strings.HasPrefix(rs[0].s("TYPE"), "unicast") {
		t.Errorf("%s: rpf %v for %+v:\n%s", nd.Name, rs, rpf, text)
	}
	text, js = show(t, nd, "ip", "igmp", "groups")
	var gs []api.IGMPGroup
	json.Unmarshal(js, &gs)
	rs = textfsm(t, "cisco_ios_show_ip_igmp_groups", text)
	if len(rs) != len(gs) {
		t.Fatalf("%s: igmp groups: TextFSM read %d, JSON %d:\n%s", nd.Name, len(rs), len(gs), text)
	}
	for i, g := range gs {
		if r := rs[i]; r.s("GROUP") != g.Group || r.s("INTERFACE") != g.Interface || r.s("LAST_REPORTER") != g.Reporter {
			t.Errorf("%s: igmp group record %v for %+v", nd.Name, r, g)
		}
	}
}

// entry finds one entry of show mroute.
func entry(rows []api.MRoute, s, g string) (api.MRoute, bool) {
	for _, r := range rows {
		if r.Source == s && r.Group == g {
			return r, true
		}
	}
	return api.MRoute{}, false
}

func TestShowOutputParsesAsIOS(t *testing.T) {
	t.Run("shared tree, registering, then SPT", func(t *testing.T) {
		l := newSeedLab(t, pim.Config{})
		n := l.n
		n.HostJoin(l.rcvLAN, l.rcv, G)
		n.HostJoin(l.r2LAN, l.rcv2, G)
		rows := checkMroute(t, l.r2, "joined, no source")
		if r, ok := entry(rows, "*", G.String()); !ok || r.IIF != "" || r.RP != "10.255.0.2" || !strings.HasPrefix(r.Flags, "S") || len(r.OIFs) != 2 {
			t.Errorf("the RP's (*,G) with receivers and no source: %+v", rows)
		}
		rows = checkMroute(t, l.r3, "joined, no source")
		if r, ok := entry(rows, "*", G.String()); !ok || r.IIF != "r2r3" || r.RPFNbr != l.r2.Ports["r2r3"].Addr.String() || r.Flags != "SCJ" {
			t.Errorf("the last hop's (*,G): %+v", rows)
		}
		// R1 registers the first packet to the RP. Settle nothing yet: the
		// RP's Register-Stop has not come back.
		n.SendData(l.srcLAN, l.src, G)
		rows = checkMroute(t, l.r1, "first packet")
		if r, ok := entry(rows, l.src.String(), G.String()); !ok || !r.Registering || !strings.Contains(r.Flags, "F") {
			t.Errorf("the first hop registering: %+v", rows)
		}
		for range 30 {
			n.SendData(l.srcLAN, l.src, G)
			n.Run(time.Millisecond)
		}
		n.Run(5 * time.Second)
		for _, nd := range []*Node{l.r1, l.r2, l.r3} {
			rows = checkMroute(t, nd, "SPT")
			checkOthers(t, nd, l.src)
			checkAllViews(t, nd, G, l.src)
		}
		if r, ok := entry(rows, l.src.String(), G.String()); !ok || r.IIF != "r1r3" || r.RPFNbr != l.r1.Ports["r1r3"].Addr.String() || !strings.Contains(r.Flags, "T") {
			t.Errorf("R3 on the SPT: %+v", rows)
		}
		// The group filter and IOS's count order.
		text, _ := show(t, l.r3, "ip", "mroute", G.String(), l.src.String())
		if rs := textfsm(t, "cisco_ios_show_ip_mroute", text); len(rs) != 1 || rs[0].s("SOURCE") != l.src.String() {
			t.Errorf("show ip mroute G S: %v", rs)
		}
		text, _ = show(t, l.r3, "ip", "mroute", "239.9.9.9")
		if rs := textfsm(t, "cisco_ios_show_ip_mroute", text); len(rs) != 0 {
			t.Errorf("show ip mroute for a group with no state: %v", rs)
		}
		text, _ = show(t, l.r3, "ip", "mroute", G.String(), "count")
		if rs := textfsm(t, "cisco_ios_show_ip_mroute_count", text); len(rs) != 1 || rs[0].s("PACKETS") == "0" {
			t.Errorf("show ip mroute G count: %v\n%s", rs, text)
		}
	})
	t.Run("SPT threshold infinity", func(t *testing.T) {
		l := newSeedLab(t, pim.Config{SwitchToSPT: func(netip.Addr) pim.SPTThreshold { return pim.SPTThreshold{Never: true} }})
		n := l.n
		n.HostJoin(l.rcvLAN, l.rcv, G)
		for range 10 {
			n.SendData(l.srcLAN, l.src, G)
			n.Run(time.Millisecond)
		}
		rows := checkMroute(t, l.r3, "shared tree")
		if r, ok := entry(rows, l.src.String(), G.String()); !ok || r.IIF != "r2r3" || strings.Contains(r.Flags, "T") {
			t.Errorf("R3 on the shared tree: %+v", rows)
		}
		if r, ok := entry(rows, "*", G.String()); !ok || strings.Contains(r.Flags, "J") {
			t.Errorf("R3's (*,G) under threshold infinity has no J: %+v", rows)
		}
	})
	t.Run("SSM", func(t *testing.T) {
		l := newSeedLab(t, pim.Config{})
		n := l.n
		g := netip.MustParseAddr("232.1.1.1")
		n.HostJoin(l.rcvLAN, l.rcv, g, l.src)
		for range 5 {
			n.SendData(l.srcLAN, l.src, g)
			n.Run(time.Millisecond)
		}
		rows := checkMroute(t, l.r3, "SSM")
		if r, ok := entry(rows, l.src.String(), g.String()); !ok || !strings.HasPrefix(r.Flags, "s") || !strings.Contains(r.Flags, "I") || r.RP != "" || r.Mode != "ssm" {
			t.Errorf("R3's SSM channel: %+v", rows)
		}
		if _, ok := entry(rows, "*", g.String()); ok {
			t.Errorf("a (*,G) for an SSM group: %+v", rows)
		}
		checkOthers(t, l.r3, l.src)
		checkAllViews(t, l.r3, g, l.src)
	})
	t.Run("assert", func(t *testing.T) {
		l := newAssertLab(t, "")
		n := l.n
		g := netip.MustParseAddr("232.1.1.1")
		n.HostJoin(l.lanC, l.rcvC, g, l.src)
		n.HostJoin(l.lanD, l.rcvD, g, l.src)
		for range 5 {
			n.SendData(l.srcLAN, l.src, g)
			n.Run(time.Millisecond)
		}
		checkAllViews(t, l.a, g, l.src)
		rows := checkMroute(t, l.b, "assert winner")
		text, _ := show(t, l.b, "ip", "mroute")
		if r, ok := entry(rows, l.src.String(), g.String()); !ok || len(r.OIFs) != 1 || !r.OIFs[0].AssertWinner || !strings.Contains(text, "x, Forward/Sparse, ") || !strings.Contains(text, ", A\n") {
			t.Errorf("the assert winner's output: %+v\n%s", rows, text)
		}
		rows = checkMroute(t, l.a, "assert loser")
		if r, ok := entry(rows, l.src.String(), g.String()); !ok || len(r.OIFs) != 0 {
			t.Errorf("the assert loser forwards: %+v", rows)
		}
	})
}
