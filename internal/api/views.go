package api

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// View is one show command: its words, its API path, and how its answer
// prints as text. One registration serves the CLI, the API and --json;
// the daemon's components register the handler for the path.
type View struct {
	Words   string                                 // "igmp groups"
	Aliases []string                               // other spellings ("ip igmp groups", ...)
	Path    string                                 // "/v1/igmp/groups"
	Arg     string                                 // the name of one trailing argument ("ADDR"), or ""
	New     func() any                             // a pointer to decode an answer into
	Text    func(w io.Writer, words string, v any) // prints a decoded answer
}

// Handler answers a view's request (arg is the trailing argument).
type Handler func(arg string) (any, error)

func view[T any](words string, aliases []string, path, arg string, text func(io.Writer, string, T)) View {
	return View{Words: words, Aliases: aliases, Path: path, Arg: arg,
		New:  func() any { return new(T) },
		Text: func(w io.Writer, words string, v any) { text(w, words, *(v.(*T))) }}
}

// API paths of the views.
const (
	PathIGMPGroups     = "/v1/igmp/groups"
	PathIGMPInterfaces = "/v1/igmp/interfaces"
	PathMRoute         = "/v1/mroute"
	PathStatus         = "/v1/status"
	PathPIMNeighbors   = "/v1/pim/neighbors"
	PathPIMInterfaces  = "/v1/pim/interfaces"
	PathPIMRP          = "/v1/pim/rp"
	PathPIMJoin        = "/v1/pim/join"
	PathPIMAssert      = "/v1/pim/assert"
	PathPIMStatistics  = "/v1/pim/statistics"
	PathRPF            = "/v1/rpf"
	PathMSDPPeer       = "/v1/msdp/peer"
	PathMSDPSACache    = "/v1/msdp/sa-cache"
	PathMSDPRPFPeer    = "/v1/msdp/rpf-peer"
	PathBGPMulticast   = "/v1/bgp/ipv4/multicast"
	PathBGPSummary     = "/v1/bgp/ipv4/multicast/summary"
	PathOverlay        = "/v1/overlay"
	PathOverlayPeers   = "/v1/overlay/peers"
	PathOverlayRoutes  = "/v1/overlay/routes"
	PathMirror         = "/v1/mirror"
)

// Views lists every show command.
var Views = []View{
	view("igmp groups", []string{"igmp group", "igmp membership", "ip igmp groups"}, PathIGMPGroups, "", textIGMPGroups),
	view("igmp groups detail", []string{"igmp group detail"}, PathIGMPGroups, "", textIGMPGroups),
	view("igmp interface", []string{"igmp interfaces", "ip igmp interface"}, PathIGMPInterfaces, "", textIGMPInterfaces),
	view("mroute", []string{"ip mroute"}, PathMRoute, "", textMRoutes),
	view("mroute count", []string{"ip mroute count"}, PathMRoute, "", textMRoutes),
	view("mroute", []string{"ip mroute"}, PathMRoute, "GROUP [SOURCE]", textMRoutes),
	view("mroute count", []string{"ip mroute count"}, PathMRoute, "GROUP [SOURCE]", textMRoutes),
	view("pim neighbor", []string{"pim neighbors", "ip pim neighbor"}, PathPIMNeighbors, "", textPIMNeighbors),
	view("pim interface", []string{"pim interfaces", "ip pim interface"}, PathPIMInterfaces, "", textPIMInterfaces),
	view("pim interface detail", []string{"pim interfaces detail"}, PathPIMInterfaces, "", textPIMInterfaces),
	view("pim rp", []string{"ip pim rp", "pim rp mapping"}, PathPIMRP, "", textPIMRPs),
	view("pim join", []string{"ip pim join", "pim state"}, PathPIMJoin, "", textPIMJoins),
	view("pim assert", []string{"ip pim assert"}, PathPIMAssert, "", textPIMAsserts),
	view("pim statistics", []string{"ip pim statistics", "pim traffic", "ip pim traffic"}, PathPIMStatistics, "", textPIMStatistics),
	view("rpf", []string{"ip rpf"}, PathRPF, "ADDR", textRPF),
	view("status", nil, PathStatus, "", textStatus),
	view("msdp peer", []string{"msdp peers", "ip msdp peer", "msdp summary", "ip msdp summary"}, PathMSDPPeer, "", textMSDPPeers),
	view("msdp peer", []string{"ip msdp peer"}, PathMSDPPeer, "ADDR", textMSDPPeers),
	view("msdp sa-cache", []string{"ip msdp sa-cache"}, PathMSDPSACache, "", textMSDPSACache),
	view("msdp sa-cache", []string{"ip msdp sa-cache"}, PathMSDPSACache, "ADDR", textMSDPSACache),
	view("msdp rpf-peer", []string{"ip msdp rpf-peer"}, PathMSDPRPFPeer, "ADDR", textMSDPRPF),
	view("bgp ipv4 multicast", []string{"ip mbgp", "mbgp"}, PathBGPMulticast, "", textBGPRoutes),
	view("bgp ipv4 multicast summary", []string{"mbgp summary"}, PathBGPSummary, "", textBGPSummary),
	view("overlay", nil, PathOverlay, "", textOverlay),
	view("overlay peers", []string{"overlay peer"}, PathOverlayPeers, "", textOverlayPeers),
	view("overlay routes", []string{"overlay route"}, PathOverlayRoutes, "", textOverlayRoutes),
	view("mirror", []string{"mirror sessions", "monitor session"}, PathMirror, "", textMirror),
}

// Actions change the daemon at run time (POST path/ARG); the daemon
// registers their handlers with the views'.
// An action's argument is the path's last element, or the request's body
// (a JSON object: mirror service and flow add).
var Actions = []string{PathOverlayPeerAdd, PathOverlayPeerDel, PathMirrorServiceAdd, PathMirrorServiceDel, PathMirrorFlowAdd, PathMirrorFlowDel, PathClearMRoute, PathClearIGMP, PathRestart, PathStop}

// Action paths.
const (
	PathOverlayPeerAdd   = "/v1/overlay/peer/add"
	PathOverlayPeerDel   = "/v1/overlay/peer/del"
	PathMirrorServiceAdd = "/v1/mirror/service/add"
	PathMirrorServiceDel = "/v1/mirror/service/del"
	PathMirrorFlowAdd    = "/v1/mirror/flow/add"
	PathMirrorFlowDel    = "/v1/mirror/flow/del"
	// clear ip mroute GROUP|* and clear ip igmp group GROUP|*.
	PathClearMRoute = "/v1/clear/mroute"
	PathClearIGMP   = "/v1/clear/igmp/group"
	// restart [BINARY] hands over to a successor; stop [flush] stops.
	PathRestart = "/v1/restart"
	PathStop    = "/v1/stop"
)

// textBGPRoutes prints Cisco's show bgp ipv4 multicast layout.
func textBGPRoutes(w0 io.Writer, what string, rows []BGPRoute) {
	fmt.Fprintln(w0, "Status codes: * valid, > best, i - internal; Origin: i - IGP")
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "   Network\tNext Hop\tMetric\tPath")
	for _, r := range rows {
		code := "*>"
		if !r.External && !r.Local {
			code = "*>i"
		}
		nh := r.NextHop
		if r.Local {
			nh = "0.0.0.0"
		}
		var path []string
		for _, a := range r.ASPath {
			path = append(path, fmt.Sprint(a))
		}
		fmt.Fprintf(w, "%s %s\t%s\t%d\t%s\n", code, r.Prefix, dash(nh), r.MED, strings.TrimSpace(strings.Join(path, " ")+" i"))
	}
	w.Flush()
	fmt.Fprintf(w0, "Total number of prefixes %d\n", len(rows))
}

func textBGPSummary(w0 io.Writer, what string, s BGPSummary) {
	fmt.Fprintf(w0, "BGP router identifier %s, local AS number %d\nIPv4 multicast best paths: %d\n\n", s.RouterID, s.AS, s.Routes)
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "Neighbor\tAS\tUp/Down\tState/PfxRcd\tMD5")
	for _, n := range s.Neighbors {
		st := n.State
		if st == "Established" {
			st = fmt.Sprint(n.Received)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%v\n", n.Address, n.AS, n.Uptime, dash(st), n.MD5)
	}
}

// textMSDPPeers prints one block per peer, as Cisco's show ip msdp peer.
func textMSDPPeers(w io.Writer, what string, rows []MSDPPeer) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "no MSDP peers")
		return
	}
	for _, p := range rows {
		as := "?"
		if p.RemoteAS != 0 {
			as = fmt.Sprint(p.RemoteAS)
		}
		fmt.Fprintf(w, "MSDP Peer %s, AS %s\n", p.Address, as)
		fmt.Fprintf(w, "  Connection status:\n")
		fmt.Fprintf(w, "    State: %s (%s), Resets: %d, Connection source: %s\n", p.State, p.Role, p.Resets, p.Local)
		fmt.Fprintf(w, "    Uptime(Downtime): %s, Messages sent/received: %d/%d\n", p.Uptime, p.SAOut+p.KeepalivesOut, p.SAIn+p.KeepalivesIn+p.RequestsIn+p.ResponsesIn)
		if p.LastReset != "" {
			fmt.Fprintf(w, "    Last reset: %s\n", p.LastReset)
		}
		md5 := "none"
		if p.MD5 {
			md5 = "TCP-MD5 (RFC 2385)"
		}
		fmt.Fprintf(w, "    Authentication: %s, failures: %d, connections refused: %d\n", md5, p.AuthFailures, p.Refused)
		fmt.Fprintf(w, "  SA Filtering:\n    Input (S,G) filter: %s, Output (S,G) filter: %s\n", orNone(p.FilterIn), orNone(p.FilterOut))
		mesh := "none"
		if p.MeshGroup != "" {
			mesh = p.MeshGroup
		}
		fmt.Fprintf(w, "  Peer ttl threshold: 0, Mesh group: %s, Default peer: %v\n", mesh, p.Default)
		limit := "No-limit"
		if p.SALimit > 0 {
			limit = fmt.Sprint(p.SALimit)
		}
		fmt.Fprintf(w, "  SAs learned from this peer: %d, SAs limit: %s\n", p.SALearned, limit)
		fmt.Fprintf(w, "  SA messages in/out: %d/%d (entries %d/%d), SA-Requests in: %d, SA-Responses in: %d, with data: %d\n",
			p.SAIn, p.SAOut, p.EntriesIn, p.EntriesOut, p.RequestsIn, p.ResponsesIn, p.DataIn)
		fmt.Fprintf(w, "  Dropped: RPF failures %d, filtered in/out %d/%d, over limit %d, own SAs back %d, unknown TLVs %d, malformed %d\n",
			p.RPFFailures, p.FilteredIn, p.FilteredOut, p.LimitDrops, p.OwnSAs, p.Unknown, p.Malformed)
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// textMSDPSACache prints Cisco's layout: (S, G), RP x, BGP/AS n,
// uptime/expires, Peer y.
func textMSDPSACache(w io.Writer, what string, rows []MSDPSA) {
	fmt.Fprintf(w, "MSDP Source-Active Cache - %d entries\n", len(rows))
	for _, r := range rows {
		peer := r.Peer
		if r.Local {
			peer = "local (originated here)"
		}
		exp := "-"
		if r.Expires > 0 {
			exp = r.Expires.String()
		}
		joined := ""
		if r.Joined {
			joined = ", joined"
		}
		fmt.Fprintf(w, "(%s, %s), RP %s, BGP/AS %d, %s/%s, Peer %s%s\n", r.Source, r.Group, r.RP, r.AS, r.Uptime, exp, peer, joined)
	}
}

func textMSDPRPF(w io.Writer, what string, r MSDPRPF) {
	if r.Peer == "" {
		fmt.Fprintf(w, "RPF peer for RP %s: none\n  %s\n", r.RP, r.Reason)
	} else {
		fmt.Fprintf(w, "RPF peer for RP %s: %s\n  Rule: %s\n", r.RP, r.Peer, r.Rule)
	}
	if r.Table != "" {
		fmt.Fprintf(w, "  Route toward the RP: %s (%s), next hop %s, interface %s\n", r.Table, dash(r.Protocol), dash(r.NextHop), dash(r.Iface))
	}
}

// FindView finds the view the words name, and its argument. Every view
// is also accepted after "ip" (show ip pim neighbor), and IOS's order
// "mroute GROUP [SOURCE] count" is accepted for "mroute count GROUP".
// An argument of two words ("GROUP [SOURCE]") is passed as "G,S".
func FindView(words []string) (View, string, bool) {
	if v, arg, ok := findView(words); ok {
		return v, arg, true
	}
	if len(words) > 1 && words[0] == "ip" {
		words = words[1:]
	}
	if n := len(words); n > 2 && words[0] == "mroute" && words[n-1] == "count" {
		words = append([]string{"mroute", "count"}, words[1:n-1]...)
	}
	return findView(words)
}

func findView(words []string) (View, string, bool) {
	for _, v := range Views {
		for _, name := range append([]string{v.Words}, v.Aliases...) {
			n := strings.Fields(name)
			if len(words) < len(n) || !slices.Equal(words[:len(n)], n) {
				continue
			}
			rest := words[len(n):]
			switch {
			case v.Arg == "" && len(rest) == 0:
				return v, "", true
			case v.Arg != "" && !strings.Contains(v.Arg, "[") && len(rest) == 1:
				return v, rest[0], true
			case strings.Contains(v.Arg, "[") && len(rest) >= 1 && len(rest) <= len(strings.Fields(v.Arg)) && !slices.Contains(rest, "count"):
				return v, strings.Join(rest, ","), true
			}
		}
	}
	return View{}, "", false
}

// ViewList is the views' words, for usage and error messages.
func ViewList() string {
	var out []string
	for _, v := range Views {
		w := v.Words
		if v.Arg != "" {
			w += " " + v.Arg
		}
		out = append(out, w)
	}
	return strings.Join(out, ", ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// textIGMPGroups is IOS's show ip igmp groups (group, interface, uptime,
// expires, last reporter), then the version, IGMPv3's filter mode and
// source list (a v1/v2 group has neither: "-").
func textIGMPGroups(w0 io.Writer, what string, rows []IGMPGroup) {
	if strings.HasSuffix(what, "detail") {
		textIGMPGroupsDetail(w0, rows)
		return
	}
	fmt.Fprintln(w0, "IGMP Connected Group Membership")
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "Group Address\tInterface\tUptime\tExpires\tLast Reporter\tVer\tMode\tSources")
	for _, g := range rows {
		mode := g.Mode
		if g.Static {
			mode = "STATIC"
		}
		var srcs []string
		for _, s := range g.Sources {
			flag := ""
			if !s.Forward {
				flag = " (blocked)"
			}
			srcs = append(srcs, fmt.Sprintf("%s %s%s", s.Source, s.Expires, flag))
		}
		exp := g.Expires.String()
		if g.Static {
			exp = "never"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\tv%d\t%s\t%s\n", g.Group, g.Interface, g.Uptime.Uptime(), exp, dash(g.Reporter), g.Version, dash(mode), dash(strings.Join(srcs, ", ")))
	}
}

// textIGMPGroupsDetail is IOS's show ip igmp groups detail: a block per
// group with its mode, reporter and source list, and the hosts explicit
// tracking knows.
func textIGMPGroupsDetail(w io.Writer, rows []IGMPGroup) {
	for _, g := range rows {
		mode := dash(g.Mode)
		if g.Static {
			mode = "STATIC"
		}
		fmt.Fprintf(w, "\nInterface:\t%s\nGroup:\t\t%s\nUptime:\t\t%s\nGroup mode:\t%s (Expires: %s)\nLast reporter:\t%s\nIGMP version:\t%d\n",
			g.Interface, g.Group, g.Uptime.Uptime(), mode, g.Expires, dash(g.Reporter), g.Version)
		if len(g.Sources) > 0 {
			fmt.Fprintln(w, "Group source list:\n  Source Address   Expires   Fwd")
			for _, src := range g.Sources {
				fwd := "Yes"
				if !src.Forward {
					fwd = "No"
				}
				fmt.Fprintf(w, "  %-16s %-9s %s\n", src.Source, src.Expires, fwd)
			}
		}
		if len(g.Hosts) > 0 {
			fmt.Fprintf(w, "Hosts (explicit tracking): %s\n", strings.Join(g.Hosts, " "))
		}
	}
}

// textIGMPInterfaces is IOS's show ip igmp interface, one block per
// interface, with the querier and the counters.
func textIGMPInterfaces(w io.Writer, what string, rows []IGMPInterface) {
	for _, i := range rows {
		q := i.QuerierAddress
		if i.Querier {
			q += " (this system)"
		}
		s := i.Stats
		vif := ""
		if i.VIF >= 0 {
			vif = fmt.Sprintf(" (kernel VIF %d)", i.VIF)
		}
		fmt.Fprintf(w, "%s is up\n  Internet address is %s\n  IGMP is enabled on interface%s\n  Current IGMP router version is %d\n", i.Name, i.Address, vif, i.Version)
		fmt.Fprintf(w, "  IGMP query interval is %d seconds\n  IGMP max query response time is %d seconds\n  Last member query response time is %d ms\n  IGMP robustness variable is %d\n",
			int(time.Duration(i.QueryInterval).Seconds()), int(time.Duration(i.QueryResponseInterval).Seconds()), time.Duration(i.LastMemberQueryTime).Milliseconds(), i.Robustness)
		fmt.Fprintf(w, "  IGMP querying router is %s\n", q)
		if i.Querier {
			fmt.Fprintf(w, "  Next general query in %s\n", i.NextQuery)
		} else {
			fmt.Fprintf(w, "  Other querier present, expires in %s\n", i.OtherQuerierExpires)
		}
		tracking := "off"
		if i.ExplicitTracking {
			tracking = "on (the last IGMPv3 host's leave prunes at once)"
		}
		fmt.Fprintf(w, "  Explicit tracking: %s\n  Groups: %d\n", tracking, i.Groups)
		fmt.Fprintf(w, "  IGMP activity: %d reports (v1 %d, v2 %d, v3 %d), %d leaves, %d queries received, %d sent\n",
			s.RxV1Reports+s.RxV2Reports+s.RxV3Reports, s.RxV1Reports, s.RxV2Reports, s.RxV3Reports, s.RxLeaves, s.RxQueries, s.TxQueries)
		fmt.Fprintf(w, "  IGMP dropped: %d malformed, %d bad checksum, %d truncated, %d ignored; refused: %d at max-groups, %d at max-sources, %d at max-groups-per-host\n",
			s.Malformed, s.BadChecksum, s.Truncated, s.Ignored, s.GroupLimit, s.SourceLimit, s.HostLimit)
	}
}

// mrouteLegend is IOS's legend for show ip mroute, letter for letter: the
// letters Overcast sets mean what they mean there (S, s, C, P, R, F, T, J,
// M, A, I; outgoing A), and the rest are never set.
const mrouteLegend = `IP Multicast Routing Table
Flags: D - Dense, S - Sparse, B - Bidir Group, s - SSM Group, C - Connected,
       L - Local, P - Pruned, R - RP-bit set, F - Register flag,
       T - SPT-bit set, J - Join SPT, M - MSDP created entry,
       X - Proxy Join Timer Running, A - Candidate for MSDP Advertisement,
       U - URD, I - Received Source Specific Host Report, Z - Multicast Tunnel
Outgoing interface flags: H - Hardware switched, A - Assert winner
 Timers: Uptime/Expires
 Interface state: Interface, Next-Hop or VCD, State/Mode
`

// iosIIF is an input as IOS names it: Null at the top of a tree, Register
// for decapsulated Registers.
func iosIIF(s string) string {
	switch s {
	case "":
		return "Null"
	case "pimreg":
		return "Register"
	}
	return s
}

func orZero(a string) string {
	if a == "" {
		return "0.0.0.0"
	}
	return a
}

func textMRoutes(w io.Writer, what string, rows []MRoute) {
	if strings.HasSuffix(what, "count") {
		textMRouteCount(w, rows)
		return
	}
	fmt.Fprint(w, mrouteLegend)
	for _, r := range rows {
		fmt.Fprintln(w)
		rp := ""
		if r.Source == "*" && r.RP != "" {
			rp = ", RP " + r.RP
		}
		fmt.Fprintf(w, "(%s, %s), %s/%s%s, flags: %s\n", r.Source, r.Group, r.Uptime.Uptime(), r.Expires, rp, r.Flags)
		reg := ""
		if r.Registering {
			reg = ", Registering"
		}
		fmt.Fprintf(w, "  Incoming interface: %s, RPF nbr %s%s\n", iosIIF(r.IIF), orZero(r.RPFNbr), reg)
		mode := "Sparse"
		if r.Mode == "igmp" {
			mode = "Local" // IGMP alone routes it (no PIM on this router)
		}
		var oifs []string
		for _, o := range r.OIFs {
			if o.Name == "pimreg" {
				continue // registering: said on the incoming line, as IOS does
			}
			line := fmt.Sprintf("    %s, Forward/%s, %s/%s", o.Name, mode, o.Uptime.Uptime(), o.Expires)
			if o.AssertWinner {
				line += ", A"
			}
			oifs = append(oifs, line)
		}
		if len(oifs) == 0 {
			fmt.Fprintln(w, "  Outgoing interface list: Null")
		} else {
			fmt.Fprintln(w, "  Outgoing interface list:")
			for _, l := range oifs {
				fmt.Fprintln(w, l)
			}
		}
		if n := len(r.Peers); n > 0 {
			list := strings.Join(r.Peers[:min(n, 8)], " ")
			if n > 8 {
				list += " ..."
			}
			fmt.Fprintf(w, "  Overlay peers: %d (%s)\n", n, list)
		}
	}
}

// textMRouteCount is IOS's show ip mroute count: per group, its sources'
// forwarding counts (packets/pps/average size/kbps) and other counts
// (total/RPF failed/other drops: received with no output).
func textMRouteCount(w io.Writer, rows []MRoute) {
	var groups []string
	sources := map[string][]MRoute{}
	for _, r := range rows {
		if _, ok := sources[r.Group]; !ok {
			groups = append(groups, r.Group)
			sources[r.Group] = nil
		}
		if r.Source != "*" {
			sources[r.Group] = append(sources[r.Group], r)
		}
	}
	n := 0
	for _, g := range groups {
		n += len(sources[g])
	}
	avg := 0.0
	if len(groups) > 0 {
		avg = float64(n) / float64(len(groups))
	}
	fmt.Fprintf(w, "IP Multicast Statistics\n%d routes\n%d groups, %.2f average sources per group\n", len(rows), len(groups), avg)
	fmt.Fprintln(w, "Forwarding Counts: Pkt Count/Pkts per second/Avg Pkt Size/Kilobits per second")
	fmt.Fprintln(w, "Other counts: Total/RPF failed/Other drops(OIF-null, rate-limit etc)")
	for _, g := range groups {
		var fwd, rcv uint64
		for _, r := range sources[g] {
			fwd += forwarded(r)
			rcv += r.Packets + r.WrongIf
		}
		fmt.Fprintf(w, "\nGroup: %s, Source count: %d, Packets forwarded: %d, Packets received: %d\n", g, len(sources[g]), fwd, rcv)
		fmt.Fprintln(w, "  RP-tree: Forwarding: 0/0/0/0, Other: 0/0/0") // the kernel forwards by (S,G) only
		for _, r := range sources[g] {
			f := forwarded(r)
			size := uint64(0)
			if r.Packets > 0 {
				size = r.Bytes / r.Packets
			}
			fmt.Fprintf(w, "  Source: %s/32, Forwarding: %d/%d/%d/%d, Other: %d/%d/%d\n", r.Source, f, int64(r.PPS+0.5), size, int64(r.KBPS+0.5),
				r.Packets+r.WrongIf, r.WrongIf, r.Packets-f)
		}
	}
}

// forwarded is what an (S,G) sent on: the packets it took in, unless it
// has no output (then they were dropped: OIF-null).
func forwarded(r MRoute) uint64 {
	for _, o := range r.OIFs {
		if o.Name != "" {
			return r.Packets
		}
	}
	return 0
}

// textPIMNeighbors is IOS's show ip pim neighbor: the neighbour first,
// then the interface, uptime/expires, version and DR priority/mode.
func textPIMNeighbors(w0 io.Writer, what string, rows []PIMNeighbor) {
	fmt.Fprint(w0, `PIM Neighbor Table
Mode: B - Bidir Capable, DR - Designated Router, N - Default DR Priority,
      P - Proxy Capable, S - State Refresh Capable, G - GenID Capable,
      L - DR Load-balancing Capable
`)
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "Neighbor\tInterface\tUptime/Expires\tVer\tDR")
	fmt.Fprintln(w, "Address\t\t\t\tPrio/Mode")
	for _, n := range rows {
		mode := "G"
		if n.DR {
			mode = "DR " + mode
		}
		if n.DRPriority == 1 {
			mode = "N " + mode
		}
		fmt.Fprintf(w, "%s\t%s\t%s/%s\tv2\t%d / %s\n", n.Address, n.Interface, n.Uptime.Uptime(), n.Expires, n.DRPriority, mode)
	}
}

// textPIMInterfaces is IOS's show ip pim interface (address, interface,
// Ver/Mode, neighbour count, query interval, DR priority, DR); with
// "detail", every setting and counter of each interface.
func textPIMInterfaces(w0 io.Writer, what string, rows []PIMInterface) {
	if strings.HasSuffix(what, "detail") {
		for _, i := range rows {
			dr := i.DR
			if i.IAmDR {
				dr += " (this system)"
			}
			state := "active (sends hellos)"
			if !i.Active {
				state = "passive (receivers only, no hellos)"
			}
			supp := "on"
			if !i.JoinSuppression {
				supp = "off (every router sets the T bit)"
			}
			fmt.Fprintf(w0, "%s is up\n  Internet address is %s\n  PIM: enabled, %s\n    PIM version: 2, mode: sparse\n    PIM DR: %s\n    PIM DR priority: %d\n    PIM neighbor count: %d\n    PIM Hello/Query interval: %d seconds, next in %s\n    PIM Hello holdtime: %d seconds\n    PIM generation ID: %08x\n    PIM LAN prune delay: propagation %s, override %s\n    PIM join suppression: %s\n",
				i.Name, i.Address, state, dr, i.DRPriority, i.Neighbors, int(time.Duration(i.HelloPeriod).Seconds()), i.NextHello,
				int(time.Duration(i.Holdtime).Seconds()), i.GenerationID, time.Duration(i.PropagationDelay), time.Duration(i.OverrideInterval), supp)
			n := 0
			for _, r := range slices.Sorted(maps.Keys(i.Rejected)) {
				if c := i.Rejected[r]; c > 0 {
					if n == 0 {
						fmt.Fprintln(w0, "    PIM messages refused:")
					}
					fmt.Fprintf(w0, "      %s: %d\n", r, c)
					n++
				}
			}
			if n == 0 {
				fmt.Fprintln(w0, "    PIM messages refused: none")
			}
		}
		return
	}
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "Address\tInterface\tVer/\tNbr\tQuery\tDR\tDR")
	fmt.Fprintln(w, "\t\tMode\tCount\tIntvl\tPrior\t")
	for _, i := range rows {
		fmt.Fprintf(w, "%s\t%s\tv2/S\t%d\t%d\t%d\t%s\n", i.Address, i.Name, i.Neighbors, int(time.Duration(i.HelloPeriod).Seconds()), i.DRPriority, i.DR)
	}
}

func textPIMRPs(w0 io.Writer, what string, rows []PIMRP) {
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "Group range\tRP\tRPF interface\tNote")
	for _, r := range rows {
		note := ""
		switch {
		case r.SSM:
			note = "SSM: (S,G) only, no RP"
		case r.Local:
			note = "this router is the RP"
		}
		if len(r.Anycast) > 0 {
			note += fmt.Sprintf("; anycast RP set %s (RFC 4610), %d Registers forwarded", strings.Join(r.Anycast, " "), r.Forwarded)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Groups, dash(r.RP), dash(r.RPFIf), note)
	}
}

func textPIMJoins(w0 io.Writer, what string, rows []PIMJoin) {
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "Source\tGroup\tUpstream\tRPF if\tRPF neighbor\tSPT\tRegister\tKeepalive\tDownstream\t(S,G,rpt) pruned on\tLocal")
	for _, j := range rows {
		var down, rpt []string
		for _, d := range j.Downstream {
			down = append(down, fmt.Sprintf("%s %s %s", d.Interface, d.State, d.Expires))
		}
		for _, d := range j.RPTPrunes {
			rpt = append(rpt, fmt.Sprintf("%s %s", d.Interface, d.State))
		}
		spt := ""
		switch {
		case j.SPT:
			spt = "yes"
		case j.Source != "*" && j.SPTThreshold != "immediate":
			// Waiting on a threshold: show the rule and the rate seen.
			spt = fmt.Sprintf("no (%s, now %d kbps)", j.SPTThreshold, j.RateKbps)
		}
		reg := j.Register
		if reg == "NoInfo" {
			reg = ""
		}
		up := j.Upstream
		if j.JoinSuppressed > 0 {
			up += ", suppressed " + j.JoinSuppressed.String() // another router's join stands for ours
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.Source, j.Group, up, dash(j.RPFIf), dash(j.RPFNbr), dash(spt),
			dash(reg), j.Keepalive, dash(strings.Join(down, ", ")), dash(strings.Join(rpt, ", ")), dash(strings.Join(j.Local, ",")))
	}
}

func textPIMAsserts(w0 io.Writer, what string, rows []PIMAssert) {
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "Source\tGroup\tInterface\tState\tWinner\tTree\tPreference\tMetric\tExpires")
	for _, a := range rows {
		tree := "SPT"
		if a.RPT {
			tree = "RPT"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", a.Source, a.Group, a.Interface, a.State, a.Winner, tree, a.Preference, a.Metric, a.Expires)
	}
}

// textRPF is IOS's show ip rpf.
func textRPF(w io.Writer, what string, r RPF) {
	switch {
	case !r.Found:
		fmt.Fprintf(w, "RPF information for ? (%s) failed, no route exists\n", r.Address)
		return
	case r.Local:
		fmt.Fprintf(w, "RPF information for ? (%s): an address of this router\n", r.Address)
		return
	}
	fmt.Fprintf(w, "RPF information for ? (%s)\n  RPF interface: %s\n", r.Address, r.Iface)
	if r.Neighbor == "" {
		fmt.Fprintf(w, "  RPF neighbor: ? (%s) - directly connected\n", r.Address)
	} else {
		fmt.Fprintf(w, "  RPF neighbor: ? (%s)\n", r.Neighbor)
	}
	fmt.Fprintf(w, "  RPF route/mask: %s\n", dash(r.Route))
	switch r.Table {
	case "mbgp":
		fmt.Fprintln(w, "  RPF type: multicast (bgp)")
	case "overlay":
		fmt.Fprintln(w, "  RPF type: overlay")
	default:
		fmt.Fprintf(w, "  RPF type: unicast (%s)\n", dash(r.Protocol))
	}
	fmt.Fprintln(w, "  Doing distance-preferred lookups across tables")
	fmt.Fprintf(w, "  RPF metric preference: %d\n  RPF metric: %d\n", r.Preference, r.Metric)
}

// textPIMStatistics prints the message counters and, per interface, what
// admission refused by reason (only reasons that counted, and a total).
func textPIMStatistics(w0 io.Writer, what string, st PIMStatistics) {
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "PIM messages received\t%d\nPIM messages sent\t%d\nmalformed (dropped)\t%d\nsend errors\t%d\nrefused (total)\t%d\n",
		st.RxPackets, st.TxPackets, st.Malformed, st.SendErrors, st.RejectedTotal)
	fmt.Fprintln(w, "\nInterface\tRefused\tReason")
	for _, i := range st.Interfaces {
		n := 0
		for _, r := range slices.Sorted(maps.Keys(i.Rejected)) {
			if c := i.Rejected[r]; c > 0 {
				fmt.Fprintf(w, "%s\t%d\t%s\n", i.Name, c, r)
				n++
			}
		}
		if n == 0 {
			fmt.Fprintf(w, "%s\t0\t-\n", i.Name)
		}
	}
}

func textStatus(w0 io.Writer, what string, rows Status) {
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "version\t%s\npid\t%d\nuptime\t%s\nconfig\t%s\nreloads\t%d\nreload error\t%s\nupcalls\t%d\nkernel errors\t%d\n",
		rows.Version, rows.PID, rows.Uptime, rows.Config, rows.Reloads, dash(rows.ReloadError), rows.Upcalls, rows.KernelErrs)
	fmt.Fprintf(w, "restarts handed over\t%d\nroutes taken over at start\t%d\n", rows.Handovers, rows.AdoptedRoutes)
	fmt.Fprintf(w, "flows\t%d\nkernel routes\t%d\ncounter poll\tevery %s\nheap in use\t%.1f MB\nGo memory\t%.1f MB\n",
		rows.Flows, rows.Routes, rows.CounterPoll, float64(rows.HeapBytes)/(1<<20), float64(rows.GoMemoryBytes)/(1<<20))
	fmt.Fprintf(w, "components\t%s\n", strings.Join(rows.Components, ", "))
}
