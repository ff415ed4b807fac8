package doctor

import (
	"overcast/internal/api"

	"net/netip"
	"strings"
	"testing"
	"time"
)

// healthy is a receiver host with a querier and a sender on its LAN.
func healthy() Facts {
	g := netip.MustParseAddr("239.1.1.1")
	return Facts{
		Opts:     Options{Interface: "eth0", Group: g, Listen: api.Duration(3 * time.Second)},
		ProcIGMP: true, ProcMroute: true,
		Ifaces: []Iface{
			{Name: "lo", Up: true, Loopback: true, Addrs: []string{"127.0.0.1/8"}},
			{Name: "eth0", Up: true, Multicast: true, Addrs: []string{"10.0.2.10/24"}, IGMPInUse: "V3"},
		},
		MaxMembership: 20, MaxMSF: 10,
		GroupRoute: &Route{Iface: "eth0"}, RouteProbe: g,
		Memberships: []Membership{{Iface: "eth0", Group: netip.MustParseAddr("224.0.0.1")}},
		Listen: &Observation{Duration: api.Duration(3 * time.Second),
			Queries: []Query{{From: netip.MustParseAddr("10.0.2.1"), Version: 3, Count: 2}},
			Senders: []Sender{{Source: netip.MustParseAddr("10.0.1.10"), Packets: 300, MinTTL: 31}}},
	}
}

func levels(fs []Finding) map[string]Level {
	m := map[string]Level{}
	for _, f := range fs {
		if m[f.Check] != Fail {
			m[f.Check] = f.Level
		}
	}
	return m
}

func TestHealthyIsAllOK(t *testing.T) {
	fs := Diagnose(healthy())
	for _, f := range fs {
		if f.Level != OK {
			t.Errorf("%s: %s %s", f.Check, f.Level, f.Detail)
		}
	}
	if Worst(fs) != OK || len(fs) < 12 {
		t.Errorf("worst %s over %d findings", Worst(fs), len(fs))
	}
}

// Each fault, alone, turns exactly its check to WARN or FAIL, and says a fix.
func TestEachFaultIsNamed(t *testing.T) {
	src := netip.MustParseAddr("10.0.1.10")
	cases := []struct {
		name  string
		fault func(*Facts)
		check string
		level Level
		fix   string
	}{
		{"no multicast in kernel", func(f *Facts) { f.ProcIGMP = false }, "kernel multicast", Fail, "CONFIG_IP_MULTICAST"},
		{"interface down", func(f *Facts) { f.Ifaces[1].Up = false }, "interface eth0", Fail, "ip link set dev eth0 up"},
		{"MULTICAST flag off", func(f *Facts) { f.Ifaces[1].Multicast = false }, "interface eth0", Fail, "ip link set dev eth0 multicast on"},
		{"no address", func(f *Facts) { f.Ifaces[1].Addrs = nil }, "interface eth0", Warn, "ip addr add"},
		{"no interface", func(f *Facts) { f.Opts.Interface = "eth9" }, "interface", Fail, "ip -br link"},
		{"no route", func(f *Facts) { f.GroupRoute, f.GroupRouteErr = nil, "network is unreachable" }, "route for 239.1.1.1", Fail, "ip route add 224.0.0.0/4 dev eth0"},
		{"route elsewhere", func(f *Facts) { f.GroupRoute = &Route{Iface: "eth1"} }, "route for 239.1.1.1", Warn, "dev eth0"},
		{"strict rp_filter, asymmetric", func(f *Facts) {
			f.Opts.Source = src
			f.Ifaces[1].RPFilter = 1
			f.SourceRoute = &Route{Iface: "eth1", Gateway: "10.0.5.1"}
		}, "rp_filter", Fail, "rp_filter=2"},
		{"strict rp_filter via all", func(f *Facts) {
			f.Opts.Source = src
			f.AllRPFilter = 1
			f.SourceRoute = &Route{Iface: "eth1"}
		}, "rp_filter", Fail, "rp_filter=2"},
		{"rp_filter drops seen", func(f *Facts) { f.Listen.RPFilterDrops = 12 }, "rp_filter", Fail, "rp_filter"},
		{"no route to source", func(f *Facts) { f.Opts.Source = src; f.SourceRouteEr = "network is unreachable" }, "rp_filter", Warn, "ip route add 10.0.1.10"},
		{"IGMPv2 forced", func(f *Facts) { f.Ifaces[1].ForceIGMP = 2 }, "IGMP version on eth0", Warn, "force_igmp_version=0"},
		{"IGMPv2 forced with SSM", func(f *Facts) {
			f.AllForceIGMP = 2
			f.Opts.Group = netip.MustParseAddr("232.1.1.1")
			f.Opts.Source = src
			f.SourceRoute = &Route{Iface: "eth0"}
			f.Listen.Senders = []Sender{{Source: src, Packets: 1, MinTTL: 30}}
		}, "IGMP version on eth0", Fail, "force_igmp_version=0"},
		{"v2 querier fallback", func(f *Facts) { f.Ifaces[1].IGMPInUse = "V2" }, "IGMP version on eth0", Warn, "IGMPv3"},
		{"nft drops IGMP", func(f *Facts) {
			f.Firewall = []FirewallRule{{Tool: "nft", Where: "inet/f/in", Hook: "input", Rule: "ip protocol igmp drop", Handle: "2", Drops: "igmp"}}
		}, "firewall", Fail, "nft delete rule inet f in handle 2"},
		{"policy drop", func(f *Facts) { f.FirewallNotes = []string{"policy drop"} }, "firewall", Warn, "ip protocol igmp accept"},
		{"SSM group without source", func(f *Facts) { f.Opts.Group = netip.MustParseAddr("232.1.1.1") }, "group 232.1.1.1", Fail, "-s SOURCE"},
		{"link-local group", func(f *Facts) { f.Opts.Group = netip.MustParseAddr("224.0.0.251") }, "group 224.0.0.251", Warn, "239/8"},
		{"MAC collision", func(f *Facts) {
			f.Memberships = append(f.Memberships, Membership{Iface: "eth0", Group: netip.MustParseAddr("239.129.1.1")})
		}, "MAC collision", Warn, "renumber"},
		{"no querier", func(f *Facts) { f.Listen.Queries = nil }, "querier", Warn, "querier"},
		{"v2 querier for SSM", func(f *Facts) {
			f.Opts.Group = netip.MustParseAddr("232.1.1.1")
			f.Opts.Source = src
			f.SourceRoute = &Route{Iface: "eth0"}
			f.Listen.Queries[0].Version = 2
			f.Listen.Senders = []Sender{{Source: src, Packets: 1, MinTTL: 30}}
		}, "querier", Fail, "IGMPv3"},
		{"nothing arrives", func(f *Facts) { f.Listen.Senders = nil }, "traffic for 239.1.1.1", Warn, "overcast send"},
		{"TTL 1 sender", func(f *Facts) { f.Listen.Senders[0].MinTTL = 1 }, "sender TTL", Warn, "-ttl 32"},
		{"join failed", func(f *Facts) { f.Listen.JoinError = "no such device" }, "join", Fail, "interface"},
	}
	for _, c := range cases {
		f := healthy()
		c.fault(&f)
		fs := Diagnose(f)
		var hit *Finding
		for i := range fs {
			if fs[i].Level != OK {
				if fs[i].Check != c.check {
					t.Errorf("%s: also %s on %s: %s", c.name, fs[i].Level, fs[i].Check, fs[i].Detail)
					continue
				}
				hit = &fs[i]
			}
		}
		if hit == nil {
			t.Errorf("%s: no WARN/FAIL on %q; got %v", c.name, c.check, levels(fs))
			continue
		}
		if hit.Level != c.level || !strings.Contains(hit.Fix, c.fix) {
			t.Errorf("%s: %s %q fix %q; want %s with fix containing %q", c.name, hit.Level, hit.Detail, hit.Fix, c.level, c.fix)
		}
	}
}

func TestParseNFT(t *testing.T) {
	// `nft -a list ruleset` as nftables 1.0.6 prints it.
	text := `table inet f { # handle 1
	chain in { # handle 1
		type filter hook input priority filter; policy accept;
		ip protocol igmp drop # handle 2
		ip daddr 224.0.0.0/4 udp dport 5001 drop # handle 3
		ip option ra exists drop # handle 4
		udp dport 5001 @th,188,4 0x5 counter packets 631 bytes 42908 drop comment "seqdrop" # handle 5
		tcp dport 22 drop # handle 6
		meta pkttype multicast reject # handle 7
	}
	chain out { # handle 8
		type filter hook output priority filter; policy accept;
		ip daddr 239.1.1.1 drop # handle 9
	}
}
table ip strict { # handle 2
	chain input { # handle 1
		type filter hook input priority filter; policy drop;
		ct state established accept # handle 2
	}
	chain input2 { # handle 3
		type filter hook input priority filter; policy drop;
		ip protocol igmp accept # handle 4
	}
}`
	rules, notes := ParseNFT(text)
	var got []string
	for _, r := range rules {
		got = append(got, r.Handle+":"+r.Drops+"@"+r.Where+"/"+r.Hook)
	}
	want := "2:igmp@inet/f/in/input 3:multicast@inet/f/in/input 4:ip-options@inet/f/in/input 5:udp-port:5001@inet/f/in/input 7:multicast@inet/f/in/input 9:multicast@inet/f/out/output"
	if strings.Join(got, " ") != want {
		t.Errorf("rules:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "ip/strict/input ") {
		t.Errorf("notes %q", notes)
	}
}

func TestParseIPTables(t *testing.T) {
	text := `# Generated by iptables-save
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p igmp -j DROP
-A INPUT -d 224.0.0.0/4 -p udp -j DROP
-A INPUT -m pkttype --pkt-type multicast -j REJECT
-A INPUT -p tcp --dport 22 -j DROP
-A FORWARD -d 239.1.1.1/32 -j DROP
-A INPUT -p udp --dport 5001 -j DROP
COMMIT`
	rules, notes := ParseIPTables(text)
	var got []string
	for _, r := range rules {
		got = append(got, r.Drops+"@"+r.Hook)
	}
	if strings.Join(got, " ") != "igmp@input multicast@input multicast@input multicast@forward udp-port:5001@input" {
		t.Errorf("rules %v", got)
	}
	if len(notes) != 1 {
		t.Errorf("notes %q", notes)
	}
}

func TestParseProcIGMP(t *testing.T) {
	text := "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n" +
		"1\tlo        :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n" +
		"2\teth0      :     2      V2\n\t\t\t\t010101EF     1 0:00000000\t\t1\n\t\t\t\t010000E0     1 0:00000000\t\t0\n"
	inUse, ms := parseProcIGMP(text)
	if inUse["lo"] != "V3" || inUse["eth0"] != "V2" || len(ms) != 3 {
		t.Fatalf("%v %v", inUse, ms)
	}
	if ms[1].Iface != "eth0" || ms[1].Group.String() != "239.1.1.1" || ms[0].Group.String() != "224.0.0.1" {
		t.Errorf("%v", ms)
	}
}

func TestOverlayMTU(t *testing.T) {
	f := healthy()
	f.OverlayPaths = []OverlayPath{{Device: "ovl0", DeviceMTU: 1468, Iface: "eth0", MTU: 1500}}
	if l := levels(Diagnose(f))["overlay mtu"]; l != OK {
		t.Fatalf("1468 + 32 on 1500: %v", l)
	}
	f.OverlayPaths = []OverlayPath{{Device: "ovl0", DeviceMTU: 1500, Peer: "10.2.0.2", Iface: "eth0", MTU: 1450}}
	fs := Diagnose(f)
	if l := levels(fs)["overlay mtu"]; l != Fail {
		t.Fatalf("1500 + 32 on a 1450 path: %v", l)
	}
	for _, x := range fs {
		if x.Check == "overlay mtu" && !strings.Contains(x.Fix, "overlay mtu: 1418") {
			t.Fatalf("fix %q", x.Fix)
		}
	}
}

// On a multicast router (Overcast's own register device pimreg, VIFs on
// its LANs, no group asked about) doctor reports no false WARN or FAIL.
func TestRouterIsAllOK(t *testing.T) {
	f := healthy()
	f.Opts = Options{}
	f.Listen = nil
	f.AllMcForward = 1
	f.MrouteHolders = []string{"pid 42 (overcast)"}
	f.VIFNames = []string{"eth0", "pimreg"}
	f.VIFs = 2
	f.Ifaces = append(f.Ifaces, Iface{Name: "pimreg", Up: true}) // no MULTICAST, no address
	f.Ifaces[1].IGMPInUse = "V2"                                 // the router's own v2 querier on the LAN
	f.GroupRoute, f.GroupRouteErr = nil, "network is unreachable"
	for _, x := range Diagnose(f) {
		if x.Level != OK {
			t.Errorf("%s: %s %s (fix %q)", x.Check, x.Level, x.Detail, x.Fix)
		}
		if strings.Contains(x.Fix, "IFACE") {
			t.Errorf("%s: a placeholder in the fix: %q", x.Check, x.Fix)
		}
	}
	// A host with no route and no interface named gets a fix it can run.
	h := healthy()
	h.Opts.Interface = ""
	h.GroupRoute, h.GroupRouteErr = nil, "network is unreachable"
	for _, x := range Diagnose(h) {
		if strings.HasPrefix(x.Check, "route for") && x.Fix != "ip route add 224.0.0.0/4 dev eth0" {
			t.Errorf("route fix %q, want one naming eth0", x.Fix)
		}
	}
}

// A rule dropping the stream's UDP port is a fault when the port is the
// stream's (and nothing when it is another); a payload over the path's
// MTU is named with the size that fits.
func TestPortAndMTU(t *testing.T) {
	f := healthy()
	f.Firewall = []FirewallRule{{Tool: "nft", Where: "inet/f/in", Hook: "input", Rule: "udp dport 5001 drop", Handle: "5", Drops: "udp-port:5001"}}
	if l := levels(Diagnose(f))["firewall"]; l != OK {
		t.Errorf("a drop of port 5001 with no port asked about: %s", l)
	}
	f.Opts.Port = 5002
	if l := levels(Diagnose(f))["firewall"]; l != OK {
		t.Errorf("a drop of port 5001 for a stream on 5002: %s", l)
	}
	f.Opts.Port = 5001
	fs := Diagnose(f)
	hit := false
	for _, x := range fs {
		if x.Check == "firewall" && x.Level == Fail && strings.Contains(x.Detail, "port 5001") && x.Fix == "nft delete rule inet f in handle 5" {
			hit = true
		}
	}
	if !hit {
		t.Errorf("the stream's port dropped: %+v", fs)
	}
	m := healthy()
	m.Ifaces[1].MTU = 1400
	m.Opts.Size = 1400
	for _, x := range Diagnose(m) {
		if x.Check == "path MTU" && (x.Level != Fail || !strings.Contains(x.Fix, "--size 1372")) {
			t.Errorf("1400-byte payload over a 1400 MTU: %+v", x)
		}
	}
	m.Opts.Size = 1372
	if l := levels(Diagnose(m))["path MTU"]; l != OK {
		t.Errorf("a payload that fits: %s", l)
	}
}

// VIFs with no router holding the table are what a stopped router left:
// a warning that says how to resume or remove them.
func TestLeftTableWarned(t *testing.T) {
	f := healthy()
	f.AllMcForward = 0
	f.VIFNames = []string{"eth0", "eth1", "pimreg"}
	f.VIFs = 3
	var got Finding
	for _, x := range Diagnose(f) {
		if x.Check == "multicast routing" {
			got = x
		}
	}
	if got.Level != Warn || !strings.Contains(got.Fix, "overcast flush") || !strings.Contains(got.Detail, "3 VIFs (eth0, eth1, pimreg)") {
		t.Fatalf("left table: %+v", got)
	}
	f.VIFs, f.VIFNames = 0, nil
	if l := levels(Diagnose(f))["multicast routing"]; l != OK {
		t.Errorf("a host with no table: %s", l)
	}
}
