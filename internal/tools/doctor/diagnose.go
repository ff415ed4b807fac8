// Package doctor finds why a host does not send or receive multicast: it
// gathers facts about the host (gather.go, listen.go: /proc, sysctls,
// netlink routes, the firewall, a short listen on the wire) and judges them
// in Diagnose, a pure function, so every verdict is unit-tested on facts
// and end-to-end on faults built in namespaces.
package doctor

import (
	"overcast/internal/api"

	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"overcast/internal/tools/addr"
)

// Level is a verdict.
type Level string

const (
	OK   Level = "OK"
	Warn Level = "WARN"
	Fail Level = "FAIL"
)

// Finding is one check's verdict, its evidence and the command that fixes it.
type Finding struct {
	Check  string `json:"check"`
	Level  Level  `json:"level"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Options says what the operator is debugging.
type Options struct {
	Interface string       `json:"interface"`     // the interface multicast should use ("" = all)
	Group     netip.Addr   `json:"group"`         // a group to check (invalid = none)
	Source    netip.Addr   `json:"source"`        // the source, for SSM or rp_filter checks
	Peers     []netip.Addr `json:"overlay_peers"` // overlay peers whose path MTU to check
	Listen    api.Duration `json:"listen_time"`   // how long to listen on the wire (with Group)
	Port      int          `json:"udp_port"`      // the stream's UDP port (0: not known): firewall rules for it
	Size      int          `json:"payload_size"`  // the stream's UDP payload in bytes (0: not known): the path MTU
}

// Iface is one interface as the kernel sees it.
type Iface struct {
	Name         string   `json:"name"`
	Up           bool     `json:"up"`
	Multicast    bool     `json:"multicast"`
	Loopback     bool     `json:"loopback"`
	Addrs        []string `json:"addrs"`
	RPFilter     int      `json:"rp_filter"`
	ForceIGMP    int      `json:"force_igmp_version"`
	IGMPInUse    string   `json:"igmp_version_in_use"` // /proc/net/igmp: V3 normally, V2/V1 after hearing an old querier
	McForwarding int      `json:"mc_forwarding"`
	MTU          int      `json:"mtu"`
	TUN          bool     `json:"tun,omitempty"` // a TUN device (Overcast's overlay device is one)
}

// OverlayPath is an overlay device's encapsulated datagrams' way out: to
// a peer (Peer set) or, without one, by the interface holding the
// device's own address.
type OverlayPath struct {
	Device    string `json:"device"`
	DeviceMTU int    `json:"device_mtu"`
	Peer      string `json:"peer,omitempty"`
	Iface     string `json:"iface"`
	MTU       int    `json:"mtu"` // the route's MTU if it has one, else the interface's
	Err       string `json:"error,omitempty"`
}

// OverlayOverhead is what the overlay adds to a packet: outer IPv4, UDP
// and its 4-octet header.
const OverlayOverhead = 32

// Route is the kernel's answer to a route lookup.
type Route struct {
	Iface   string `json:"iface"`
	Gateway string `json:"gateway,omitempty"`
	Src     string `json:"src,omitempty"`
}

// Membership is a group joined on an interface (/proc/net/igmp).
type Membership struct {
	Iface string     `json:"iface"`
	Group netip.Addr `json:"group"`
	Users int        `json:"users"`
}

// Query is an IGMP query heard while listening.
type Query struct {
	From    netip.Addr `json:"from"`
	Version int        `json:"igmp_version"`
	Group   string     `json:"group,omitempty"` // empty for a general query
	Count   int        `json:"count"`
}

// Sender is a source seen sending to the group while listening.
type Sender struct {
	Source  netip.Addr `json:"source"`
	Packets int        `json:"packets"`
	MinTTL  int        `json:"min_ttl"`
}

// Observation is what arrived while listening.
type Observation struct {
	Duration      api.Duration `json:"duration"`
	Queries       []Query      `json:"queries"`
	Senders       []Sender     `json:"senders"`
	RPFilterDrops int          `json:"rp_filter_drops"` // kernel IPReversePathFilter counter delta
	JoinError     string       `json:"join_error,omitempty"`
}

// FirewallRule is a rule that drops or rejects, with what it matches.
type FirewallRule struct {
	Tool   string `json:"tool"`  // nft or iptables
	Where  string `json:"where"` // table/chain
	Hook   string `json:"hook"`  // input, forward, prerouting, output...
	Rule   string `json:"rule"`
	Handle string `json:"handle,omitempty"`
	Drops  string `json:"blocks"` // igmp, multicast, ip-options, udp
}

// Facts is everything Diagnose judges.
type Facts struct {
	Opts          Options           `json:"options"`
	ProcIGMP      bool              `json:"proc_igmp"`     // /proc/net/igmp: CONFIG_IP_MULTICAST
	ProcMroute    bool              `json:"proc_mroute"`   // /proc/net/ip_mr_vif: CONFIG_IP_MROUTE
	KernelConfig  map[string]string `json:"kernel_config"` // CONFIG_IP_* when the config is readable
	Ifaces        []Iface           `json:"interfaces"`
	AllRPFilter   int               `json:"all_rp_filter"`
	AllForceIGMP  int               `json:"all_force_igmp_version"`
	AllMcForward  int               `json:"all_mc_forwarding"`
	MaxMembership int               `json:"igmp_max_memberships"`
	MaxMSF        int               `json:"igmp_max_msf"`
	GroupRoute    *Route            `json:"group_route"` // route the kernel uses for Opts.Group (or a probe group)
	GroupRouteErr string            `json:"group_route_error,omitempty"`
	RouteProbe    netip.Addr        `json:"route_probe"` // the group the route was looked up for
	SourceRoute   *Route            `json:"source_route"`
	SourceRouteEr string            `json:"source_route_error,omitempty"`
	VIFs          int               `json:"vifs"`           // entries in /proc/net/ip_mr_vif
	VIFNames      []string          `json:"vif_interfaces"` // the interfaces a multicast router runs on
	MrouteHolders []string          `json:"mroute_holders"` // processes holding a raw IGMP socket ("pid 12 (overcast)")
	Firewall      []FirewallRule    `json:"firewall"`
	FirewallNotes []string          `json:"firewall_notes"` // e.g. chains with policy drop
	Memberships   []Membership      `json:"memberships"`
	Listen        *Observation      `json:"observation"`
	OverlayPaths  []OverlayPath     `json:"overlay_paths"`
}

func (f *Facts) iface(name string) *Iface {
	for i := range f.Ifaces {
		if f.Ifaces[i].Name == name {
			return &f.Ifaces[i]
		}
	}
	return nil
}

// intended is the interface multicast should use: the one asked for, or the
// one the kernel's route for the group picks.
func (f *Facts) intended() string {
	if f.Opts.Interface != "" {
		return f.Opts.Interface
	}
	if f.GroupRoute != nil {
		return f.GroupRoute.Iface
	}
	return ""
}

// firstMulticast is the first interface up with the MULTICAST flag ("" none).
func firstMulticast(ifs []Iface) string {
	for _, i := range ifs {
		if i.Up && i.Multicast && !i.Loopback {
			return i.Name
		}
	}
	return ""
}

// Diagnose judges the facts. Findings come in a fixed order: kernel,
// interfaces, routes, rp_filter, IGMP version, limits, multicast routing,
// firewall, memberships, the group, and what was heard on the wire.
func Diagnose(f Facts) []Finding {
	var out []Finding
	add := func(check string, l Level, fix, format string, a ...any) {
		out = append(out, Finding{Check: check, Level: l, Detail: fmt.Sprintf(format, a...), Fix: fix})
	}

	// Kernel.
	if f.ProcIGMP {
		add("kernel multicast", OK, "", "IP multicast support present (/proc/net/igmp)")
	} else {
		add("kernel multicast", Fail, "use a kernel built with CONFIG_IP_MULTICAST=y", "/proc/net/igmp is missing: this kernel has no IP multicast")
	}
	if f.ProcMroute {
		add("kernel multicast routing", OK, "", "multicast routing support present (/proc/net/ip_mr_vif)")
	} else {
		add("kernel multicast routing", Warn, "a router needs CONFIG_IP_MROUTE=y (hosts do not)", "/proc/net/ip_mr_vif is missing: this kernel cannot route multicast")
	}
	if len(f.KernelConfig) > 0 {
		var parts []string
		for _, k := range []string{"CONFIG_IP_MULTICAST", "CONFIG_IP_MROUTE", "CONFIG_IP_MROUTE_MULTIPLE_TABLES", "CONFIG_IP_PIMSM_V2"} {
			v := f.KernelConfig[k]
			if v == "" {
				v = "not set"
			}
			parts = append(parts, k+"="+v)
		}
		l := OK
		if f.KernelConfig["CONFIG_IP_MULTICAST"] != "y" {
			l = Fail
		}
		add("kernel config", l, "", "%s", strings.Join(parts, " "))
	}

	// A multicast router on this host (Overcast, FRR, pimd) owns its VIF
	// interfaces: their querier and its register device are its own.
	router := f.AllMcForward == 1 || len(f.MrouteHolders) > 0
	vif := map[string]bool{}
	for _, n := range f.VIFNames {
		vif[n] = true
	}

	// Interfaces.
	want := f.intended()
	var check []Iface
	for _, i := range f.Ifaces {
		if (want == "" && !i.Loopback) || i.Name == want {
			check = append(check, i)
		}
	}
	if f.Opts.Interface != "" && f.iface(f.Opts.Interface) == nil {
		add("interface", Fail, "ip -br link   # list interfaces", "no interface %q in this namespace", f.Opts.Interface)
	}
	for _, i := range check {
		name := "interface " + i.Name
		switch {
		case router && strings.HasPrefix(i.Name, "pimreg"):
			add(name, OK, "", "%s is the multicast router's register device (PIM Registers; no MULTICAST flag by design)", i.Name)
		case !i.Up:
			add(name, Fail, "ip link set dev "+i.Name+" up", "%s is down", i.Name)
		case !i.Multicast:
			add(name, Fail, "ip link set dev "+i.Name+" multicast on",
				"%s has no MULTICAST flag: the kernel neither joins groups (no IGMP reports) nor sends multicast on it", i.Name)
		case len(i.Addrs) == 0:
			add(name, Warn, "ip addr add ADDR/LEN dev "+i.Name, "%s has no IPv4 address: IGMP reports go out from 0.0.0.0 and routers may ignore them", i.Name)
		default:
			add(name, OK, "", "%s up, MULTICAST, %s", i.Name, strings.Join(i.Addrs, " "))
		}
	}

	// Route for the group: the group asked about, or on a host a probe
	// group (a router forwards by its own table: it needs none).
	probe := f.RouteProbe
	switch {
	case router && !f.Opts.Group.IsValid():
	case f.GroupRoute == nil:
		dev := want
		if dev == "" {
			dev = firstMulticast(f.Ifaces)
		}
		fix := "ip route add 224.0.0.0/4 dev " + dev
		if dev == "" {
			fix = "bring an interface up with the MULTICAST flag, then: ip route add 224.0.0.0/4 dev THAT-INTERFACE"
		}
		add("route for "+probe.String(), Fail, fix,
			"no route for %s (%s): senders get 'network unreachable' and joins without an interface fail", probe, f.GroupRouteErr)
	case f.Opts.Interface != "" && f.GroupRoute.Iface != f.Opts.Interface && f.iface(f.Opts.Interface) != nil:
		add("route for "+probe.String(), Warn, fmt.Sprintf("ip route add %s/32 dev %s   # or 224.0.0.0/4, or give the sender/receiver the interface", probe, f.Opts.Interface),
			"the kernel sends %s out of %s, not %s: senders and joins without an explicit interface use %s", probe, f.GroupRoute.Iface, f.Opts.Interface, f.GroupRoute.Iface)
	default:
		add("route for "+probe.String(), OK, "", "the kernel sends %s out of %s", probe, f.GroupRoute.Iface)
	}

	// rp_filter: the kernel takes the larger of conf.all and conf.IFACE.
	if i := f.iface(want); i != nil {
		eff := max(f.AllRPFilter, i.RPFilter)
		mode := map[int]string{0: "off", 1: "strict", 2: "loose"}[eff]
		fix := fmt.Sprintf("sysctl -w net.ipv4.conf.%s.rp_filter=2 net.ipv4.conf.all.rp_filter=2   # loose; or 0", i.Name)
		switch {
		case f.Opts.Source.IsValid() && f.SourceRoute == nil:
			l := Warn
			if eff != 0 {
				l = Fail
			}
			add("rp_filter", l, "ip route add "+f.Opts.Source.String()+" via GATEWAY   # a route back to the source", "no route back to source %s (%s) and rp_filter is %s on %s", f.Opts.Source, f.SourceRouteEr, mode, i.Name)
		case f.Opts.Source.IsValid() && f.SourceRoute.Iface != i.Name && eff == 1:
			add("rp_filter", Fail, fix, "rp_filter is strict on %s, but the route back to %s goes out of %s: the kernel drops the source's packets arriving on %s",
				i.Name, f.Opts.Source, f.SourceRoute.Iface, i.Name)
		case f.Listen != nil && f.Listen.RPFilterDrops > 0:
			add("rp_filter", Fail, fix, "the kernel dropped %d packets by rp_filter (%s on %s) while listening", f.Listen.RPFilterDrops, mode, i.Name)
		default:
			add("rp_filter", OK, "", "rp_filter %s on %s (all=%d, %s=%d)", mode, i.Name, f.AllRPFilter, i.Name, i.RPFilter)
		}
	}

	// IGMP version.
	for _, i := range check {
		forced := max(f.AllForceIGMP, i.ForceIGMP)
		name := "IGMP version on " + i.Name
		switch {
		case vif[i.Name] || router && strings.HasPrefix(i.Name, "pimreg"):
			add(name, OK, "", "%s is a multicast router's interface: its querier sets the LAN's IGMP version (overcast show ip igmp interface), not this host's reports", i.Name)
		case forced == 1 || forced == 2:
			l := Warn
			if f.Opts.Source.IsValid() || addr.SSMRange.Contains(f.Opts.Group) {
				l = Fail
			}
			add(name, l, fmt.Sprintf("sysctl -w net.ipv4.conf.%s.force_igmp_version=0 net.ipv4.conf.all.force_igmp_version=0", i.Name),
				"IGMPv%d forced by sysctl: (S,G) joins are reported as (*,G) and SSM does not work", forced)
		case i.IGMPInUse == "V1" || i.IGMPInUse == "V2":
			l := Warn
			if f.Opts.Source.IsValid() || addr.SSMRange.Contains(f.Opts.Group) {
				l = Fail
			}
			add(name, l, "make the LAN's querier speak IGMPv3 (overcast: igmp: {version: 3})",
				"the host heard an IGMP%s querier and fell back to %s reports: SSM (S,G) joins are lost", strings.ToLower(i.IGMPInUse), i.IGMPInUse)
		default:
			add(name, OK, "", "IGMPv3 (not forced)")
		}
	}

	// Limits.
	joined := map[string]int{}
	for _, m := range f.Memberships {
		joined[m.Iface]++
	}
	add("membership limits", OK, "", "net.ipv4.igmp_max_memberships=%d groups per socket, igmp_max_msf=%d sources per group per socket (overcast recv spreads larger sets over sockets)", f.MaxMembership, f.MaxMSF)

	// Multicast routing.
	switch {
	case f.AllMcForward == 1 && len(f.MrouteHolders) > 0:
		add("multicast routing", OK, "", "a multicast routing daemon holds the kernel's routing socket: %s; %d VIFs", strings.Join(f.MrouteHolders, ", "), f.VIFs)
	case f.AllMcForward == 1:
		add("multicast routing", OK, "", "mc_forwarding=1: a daemon holds the kernel's multicast routing socket; %d VIFs", f.VIFs)
	case f.VIFs > 0:
		// Static VIFs and routes outlive their router (Overcast leaves
		// them for its next start): nothing forwards them, and another
		// router cannot add its own VIFs over them.
		add("multicast routing", Warn, "overcast daemon (it resumes them), or overcast flush (before another router starts)",
			"no router runs, but the kernel's multicast table still holds %d VIFs (%s) a stopped router left: nothing is forwarded", f.VIFs, strings.Join(f.VIFNames, ", "))
	default:
		add("multicast routing", OK, "", "no multicast routing daemon on this host (mc_forwarding=0): fine for a host. A router needs one: the sysctl is read-only and only a daemon (overcast daemon) sets it")
	}

	// Firewall.
	reported := 0
	for _, r := range f.Firewall {
		if p, ok := strings.CutPrefix(r.Drops, "udp-port:"); ok {
			if strconv.Itoa(f.Opts.Port) != p {
				continue // a port this stream does not use
			}
			r.Drops = "udp-port"
		}
		what := map[string]string{
			"udp-port":   fmt.Sprintf("drops UDP to port %d, the stream's", f.Opts.Port),
			"igmp":       "drops IGMP: the router never hears this host's joins and the host never hears queries",
			"multicast":  "drops multicast traffic",
			"ip-options": "drops packets with IP options: IGMP reports carry Router Alert and are lost",
			"udp":        "drops UDP, which multicast data uses",
		}[r.Drops]
		fix := "remove or narrow the rule"
		if r.Tool == "nft" && r.Handle != "" {
			fix = fmt.Sprintf("nft delete rule %s handle %s", strings.ReplaceAll(r.Where, "/", " "), r.Handle)
		}
		if r.Tool == "iptables" {
			fix = "iptables -D " + strings.TrimPrefix(r.Rule, "-A ")
		}
		add("firewall", Fail, fix, "%s rule in %s (%s hook) %s: %s", r.Tool, r.Where, r.Hook, what, r.Rule)
		reported++
	}
	for _, n := range f.FirewallNotes {
		add("firewall", Warn, "accept IGMP and the groups you use before the policy drops them (nft: ip protocol igmp accept)", "%s", n)
	}
	if reported == 0 && len(f.FirewallNotes) == 0 {
		add("firewall", OK, "", "no rule drops IGMP, multicast, IP options or UDP")
	}

	// Path MTU: a packet larger than the interface's MTU leaves in
	// fragments, and a lost fragment loses the packet.
	if f.Opts.Size > 0 {
		dev := want
		if dev == "" && f.GroupRoute != nil {
			dev = f.GroupRoute.Iface
		}
		if i := f.iface(dev); i != nil && i.MTU > 0 {
			if pkt := f.Opts.Size + 28; pkt > i.MTU {
				add("path MTU", Fail, fmt.Sprintf("send at most %d bytes of payload (overcast send --size %d), or raise the MTU: ip link set dev %s mtu %d", i.MTU-28, i.MTU-28, i.Name, pkt),
					"%d-byte packets (%d of payload, 28 of IPv4 and UDP headers) exceed %s's MTU of %d: they leave in fragments, and routers and receivers drop the whole packet when one fragment is lost", pkt, f.Opts.Size, i.Name, i.MTU)
			} else {
				add("path MTU", OK, "", "%d-byte packets fit %s's MTU of %d", pkt, i.Name, i.MTU)
			}
		}
	}

	// Memberships.
	if want != "" {
		var gs []string
		for _, m := range f.Memberships {
			if m.Iface == want {
				gs = append(gs, m.Group.String())
			}
		}
		add("memberships on "+want, OK, "", "%d group(s) joined: %s", len(gs), strings.Join(gs, " "))
	}

	// The group.
	g := f.Opts.Group
	if g.IsValid() {
		info, err := addr.Classify(g)
		if err != nil {
			add("group", Fail, "use a group in 224.0.0.0/4", "%v", err)
		} else {
			switch {
			case info.SSM && !f.Opts.Source.IsValid():
				add("group "+g.String(), Fail, fmt.Sprintf("join (S,G): overcast recv -g %s -s SOURCE (IGMPv3 INCLUDE), or use a group outside 232/8", g),
					"%s is in the SSM range 232/8 and no source was given: an ASM (*,G) join there is ignored by routers", g)
			case info.Scope == addr.ScopeLinkLocal:
				add("group "+g.String(), Warn, "use a 239/8 group for application traffic", "%s is link-local (%s): never routed, whatever the TTL", g, info.Block)
			default:
				add("group "+g.String(), OK, "", "%s, %s, scope %s, MAC %s", g, info.Block, info.Scope, info.MAC)
			}
			var coll []string
			seen := map[netip.Addr]bool{}
			for _, m := range f.Memberships {
				if m.Group != g && !seen[m.Group] && addr.MAC(m.Group) == addr.MAC(g) {
					seen[m.Group] = true
					coll = append(coll, fmt.Sprintf("%s on %s", m.Group, m.Iface))
				}
			}
			if len(coll) > 0 {
				add("MAC collision", Warn, "renumber one of them so they differ in the low 23 bits",
					"%s shares MAC %s with groups joined here: %s; the NIC accepts both and the kernel discards the extra traffic", g, info.MAC, strings.Join(coll, ", "))
			}
		}
	}

	// On the wire.
	if o := f.Listen; o != nil {
		secs := time.Duration(o.Duration).Round(100 * time.Millisecond)
		if o.JoinError != "" {
			add("join", Fail, "check the interface and group above", "joining %s failed: %s", g, o.JoinError)
		}
		if len(o.Queries) == 0 {
			add("querier", Warn, "enable an IGMP querier on the LAN's router (overcast: an interface with igmp, querier: true) or on the switch; or listen longer: queriers send every 125 s by default (-listen 130s)",
				"no IGMP query heard in %s: without a querier, snooping switches age out memberships and routers may never learn of receivers", secs)
		} else {
			qs := slices.Clone(o.Queries)
			sort.Slice(qs, func(i, j int) bool { return qs[i].From.Less(qs[j].From) })
			var parts []string
			for _, q := range qs {
				kind := "general"
				if q.Group != "" {
					kind = "group " + q.Group
				}
				parts = append(parts, fmt.Sprintf("%s (IGMPv%d, %d %s queries)", q.From, q.Version, q.Count, kind))
			}
			l, fix, note := OK, "", ""
			if qs[0].Version < 3 && (f.Opts.Source.IsValid() || addr.SSMRange.Contains(g)) {
				l, fix, note = Fail, "configure the querier for IGMPv3", ": an IGMPv2 querier makes hosts drop their (S,G) joins"
			}
			add("querier", l, fix, "querier heard: %s%s", strings.Join(parts, ", "), note)
		}
		if g.IsValid() {
			var parts []string
			var ttl1 []string
			fromSource := false
			for _, s := range o.Senders {
				parts = append(parts, fmt.Sprintf("%s: %d packets, TTL %d", s.Source, s.Packets, s.MinTTL))
				if s.MinTTL <= 1 {
					ttl1 = append(ttl1, s.Source.String())
				}
				if s.Source == f.Opts.Source {
					fromSource = true
				}
			}
			switch {
			case len(o.Senders) == 0:
				add("traffic for "+g.String(), Warn, "check the sender (overcast send -g G -ttl 32) and the path (overcast ping, show mroute on the routers)",
					"no packet for %s arrived in %s", g, secs)
			case f.Opts.Source.IsValid() && !fromSource:
				add("traffic for "+g.String(), Warn, "check the source address (is it NATed or multihomed?)", "packets for %s arrived, but not from %s: %s", g, f.Opts.Source, strings.Join(parts, "; "))
			default:
				add("traffic for "+g.String(), OK, "", "%s", strings.Join(parts, "; "))
			}
			if len(ttl1) > 0 {
				add("sender TTL", Warn, "raise the sender's multicast TTL: overcast send -ttl 32, iperf -T 32, setsockopt IP_MULTICAST_TTL",
					"%s sends %s with TTL 1: no router forwards it beyond this LAN", strings.Join(ttl1, ", "), g)
			}
		}
	}
	for _, p := range f.OverlayPaths {
		to := "its own address's interface " + p.Iface
		if p.Peer != "" {
			to = "peer " + p.Peer + " by " + p.Iface
		}
		switch {
		case p.Err != "":
			add("overlay mtu", Warn, "check the route to the peer (ip route get "+p.Peer+")", "overlay %s: no path to %s: %s", p.Device, p.Peer, p.Err)
		case p.DeviceMTU+OverlayOverhead > p.MTU:
			add("overlay mtu", Fail, fmt.Sprintf("set overlay mtu: %d in overcast.yaml (or raise %s's MTU to %d)", p.MTU-OverlayOverhead, p.Iface, p.DeviceMTU+OverlayOverhead),
				"overlay %s: mtu %d + %d octets of encapsulation exceed the %d of %s: full-size multicast packets will be fragmented or dropped on the way",
				p.Device, p.DeviceMTU, OverlayOverhead, p.MTU, to)
		default:
			add("overlay mtu", OK, "", "overlay %s: mtu %d + %d fits the %d of %s", p.Device, p.DeviceMTU, OverlayOverhead, p.MTU, to)
		}
	}
	return out
}

// Worst returns the most severe level among findings.
func Worst(fs []Finding) Level {
	w := OK
	for _, f := range fs {
		switch {
		case f.Level == Fail:
			return Fail
		case f.Level == Warn:
			w = Warn
		}
	}
	return w
}
