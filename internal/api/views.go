package api

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
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
	view("igmp interface", []string{"igmp interfaces", "ip igmp interface"}, PathIGMPInterfaces, "", textIGMPInterfaces),
	view("mroute", []string{"ip mroute"}, PathMRoute, "", textMRoutes),
	view("mroute count", []string{"ip mroute count"}, PathMRoute, "", textMRoutes),
	view("pim neighbor", []string{"pim neighbors", "ip pim neighbor"}, PathPIMNeighbors, "", textPIMNeighbors),
	view("pim interface", []string{"pim interfaces", "ip pim interface"}, PathPIMInterfaces, "", textPIMInterfaces),
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
var Actions = []string{PathOverlayPeerAdd, PathOverlayPeerDel, PathMirrorServiceAdd, PathMirrorServiceDel, PathMirrorFlowAdd, PathMirrorFlowDel}

// Action paths.
const (
	PathOverlayPeerAdd   = "/v1/overlay/peer/add"
	PathOverlayPeerDel   = "/v1/overlay/peer/del"
	PathMirrorServiceAdd = "/v1/mirror/service/add"
	PathMirrorServiceDel = "/v1/mirror/service/del"
	PathMirrorFlowAdd    = "/v1/mirror/flow/add"
	PathMirrorFlowDel    = "/v1/mirror/flow/del"
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

// FindView finds the view the words name, and its argument.
func FindView(words []string) (View, string, bool) {
	for _, v := range Views {
		for _, name := range append([]string{v.Words}, v.Aliases...) {
			n := strings.Fields(name)
			if v.Arg != "" {
				if len(words) == len(n)+1 && slices.Equal(words[:len(n)], n) {
					return v, words[len(n)], true
				}
				continue
			}
			if slices.Equal(words, n) {
				return v, "", true
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

func textIGMPGroups(w0 io.Writer, what string, rows []IGMPGroup) {
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "Interface\tGroup\tMode\tVer\tUptime\tExpires\tLast reporter\tSources")
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
		if len(srcs) == 0 {
			srcs = []string{"*"}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", g.Interface, g.Group, mode, g.Version, g.Uptime, g.Expires, dash(g.Reporter), strings.Join(srcs, ", "))
	}
}

func textIGMPInterfaces(w0 io.Writer, what string, rows []IGMPInterface) {
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "Interface\tAddress\tVIF\tVer\tQuerier\tQuery\tNext query\tOther querier\tGroups\tRx rep/leave\tTx queries\tMalformed\tTracking")
	for _, i := range rows {
		q := i.QuerierAddress
		if i.Querier {
			q += " (this router)"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%d/%d\t%d\t%d\t%v\n", i.Name, i.Address, i.VIF, i.Version, q,
			i.QueryInterval, i.NextQuery, i.OtherQuerierExpires, i.Groups,
			i.Stats.RxV1Reports+i.Stats.RxV2Reports+i.Stats.RxV3Reports, i.Stats.RxLeaves, i.Stats.TxQueries, i.Stats.Malformed, i.ExplicitTracking)
	}
}

func textMRoutes(w0 io.Writer, what string, rows []MRoute) {
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	defer w.Flush()
	if strings.HasSuffix(what, "count") {
		fmt.Fprintln(w, "Source\tGroup\tPackets\tBytes\tPkt/s\tkbit/s\tRPF failed (wrong if)")
		for _, r := range rows {
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%.0f\t%.1f\t%d\n", r.Source, r.Group, r.Packets, r.Bytes, r.PPS, r.KBPS, r.WrongIf)
		}
		return
	}
	w.Flush()
	fmt.Fprintln(w0, "Flags: S - Sparse, C - Connected, P - Pruned, F - Register, T - SPT-bit set,\n       R - RP-bit set ((S,G,rpt) pruned upstream), J - SPT threshold crossed")
	for _, r := range rows {
		fmt.Fprintf(w0, "(%s, %s), %s/%s, flags: %s\n", r.Source, r.Group, r.Uptime, r.Expires, r.Flags)
		fmt.Fprintf(w0, "  Incoming interface: %s\n  Outgoing interface list:", r.IIF)
		if len(r.OIFs) == 0 {
			fmt.Fprintln(w0, " Null")
		} else {
			fmt.Fprintln(w0)
			for _, o := range r.OIFs {
				fmt.Fprintf(w0, "    %s, Forward/%s\n", o.Name, o.Origin)
			}
		}
		if n := len(r.Peers); n > 0 {
			list := strings.Join(r.Peers[:min(n, 8)], " ")
			if n > 8 {
				list += " ..."
			}
			fmt.Fprintf(w0, "  Overlay peers: %d (%s)\n", n, list)
		}
	}
}

func textPIMNeighbors(w0 io.Writer, what string, rows []PIMNeighbor) {
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "Interface\tNeighbor\tUptime\tExpires\tDR prio\tGen ID\tDR")
	for _, n := range rows {
		dr := ""
		if n.DR {
			dr = "DR"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%08x\t%s\n", n.Interface, n.Address, n.Uptime, n.Expires, n.DRPriority, n.GenerationID, dr)
	}
}

func textPIMInterfaces(w0 io.Writer, what string, rows []PIMInterface) {
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "Interface\tAddress\tState\tDR\tDR prio\tNbrs\tHello\tNext hello\tHoldtime\tProp delay\tOverride\tJoin suppression")
	for _, i := range rows {
		st := "passive"
		if i.Active {
			st = "up"
		}
		dr := i.DR
		if i.IAmDR {
			dr += " (this router)"
		}
		supp := "off (T bit on all)"
		if i.JoinSuppression {
			supp = "on"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", i.Name, i.Address, st, dr, i.DRPriority, i.Neighbors,
			i.HelloPeriod, i.NextHello, i.Holdtime, i.PropagationDelay, i.OverrideInterval, supp)
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

func textRPF(w0 io.Writer, what string, rows RPF) {
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	defer w.Flush()
	switch {
	case !rows.Found:
		fmt.Fprintf(w, "%s\tno route: RPF fails, joins toward it cannot be sent\n", rows.Address)
	case rows.Local:
		fmt.Fprintf(w, "%s\tlocal address of this router\n", rows.Address)
	default:
		typ := "unicast (" + dash(rows.Protocol) + ")"
		if rows.Table == "mbgp" {
			typ = "mbgp (" + rows.Route + ")"
		}
		fmt.Fprintf(w, "RPF information for %s\n  RPF interface:\t%s\n  RPF neighbor:\t%s\n  RPF type:\t%s\n  Metric preference:\t%d\n  Metric:\t%d\n", rows.Address, rows.Iface,
			dash(rows.Neighbor)+map[bool]string{true: "", false: " (directly connected)"}[rows.Neighbor != ""], typ, rows.Preference, rows.Metric)
	}
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
	fmt.Fprintf(w, "flows\t%d\nkernel routes\t%d\ncounter poll\tevery %s\nheap in use\t%.1f MB\nGo memory\t%.1f MB\n",
		rows.Flows, rows.Routes, rows.CounterPoll, float64(rows.HeapBytes)/(1<<20), float64(rows.GoMemoryBytes)/(1<<20))
	fmt.Fprintf(w, "components\t%s\n", strings.Join(rows.Components, ", "))
}
