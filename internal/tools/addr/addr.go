// Package addr answers the questions operators ask about IPv4 multicast
// addresses: which MAC a group maps to and which 31 other groups share it,
// which IANA block and scope it sits in (RFC 5771, RFC 2365), GLOP
// (RFC 3180) and unicast-prefix-based (RFC 6034) addresses, and which groups
// in a plan will bite. Pure: no I/O.
package addr

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// MAC is the Ethernet address a group maps to: 01:00:5e plus the low 23
// bits of the group (RFC 1112 section 6.4).
func MAC(g netip.Addr) [6]byte {
	b := g.As4()
	return [6]byte{0x01, 0x00, 0x5e, b[1] & 0x7f, b[2], b[3]}
}

// FormatMAC prints a MAC the way `ip maddr` does.
func FormatMAC(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// SharingMAC returns all 32 groups that map to g's MAC, g included, in
// ascending order. Five bits are lost: the low four of the first octet and
// the top bit of the second.
func SharingMAC(g netip.Addr) []netip.Addr {
	b := g.As4()
	out := make([]netip.Addr, 0, 32)
	for first := byte(224); first <= 239; first++ {
		for _, hi := range []byte{0, 0x80} {
			out = append(out, netip.AddrFrom4([4]byte{first, b[1]&0x7f | hi, b[2], b[3]}))
		}
	}
	return out
}

// Scope says how far a group's packets are meant to travel.
type Scope string

const (
	ScopeLinkLocal Scope = "link-local"   // 224.0.0.0/24: never forwarded, sent with TTL 1
	ScopeLocal     Scope = "local"        // 239.255.0.0/16 (RFC 2365)
	ScopeOrg       Scope = "organization" // 239.192.0.0/14 (RFC 2365)
	ScopeAdmin     Scope = "admin"        // the rest of 239/8: administratively scoped
	ScopeGlobal    Scope = "global"
)

// Info describes one group.
type Info struct {
	Group      netip.Addr `json:"group"`
	MAC        string     `json:"mac"`
	Block      string     `json:"block"`           // the IANA block (RFC 5771)
	Scope      Scope      `json:"scope"`           // how far it travels
	Name       string     `json:"name,omitempty"`  // a well-known assignment
	SSM        bool       `json:"ssm"`             // 232/8: join (S,G) only
	GlopAS     int        `json:"glop_as"`         // 233.X.Y.0/24 belongs to AS X*256+Y; 0 otherwise
	UBMPrefix  string     `json:"ubm_prefix"`      // 234/8: the unicast prefix that owns it
	Reserved   bool       `json:"reserved"`        // in a block IANA reserves
	Notes      []string   `json:"notes,omitempty"` // what an operator should know
	SharingMAC []string   `json:"sharing_mac"`     // the other 31 groups with this MAC
}

// block is one row of the IANA IPv4 multicast registry.
type block struct {
	prefix   netip.Prefix
	name     string
	reserved bool
}

// blocks in the order of RFC 5771 section 3 and the IANA registry; the
// most specific match wins (see Classify).
var blocks = []block{
	{netip.MustParsePrefix("224.0.0.0/24"), "Local Network Control Block", false},
	{netip.MustParsePrefix("224.0.1.0/24"), "Internetwork Control Block", false},
	{netip.MustParsePrefix("224.0.2.0/23"), "AD-HOC Block I", false},
	{netip.MustParsePrefix("224.0.4.0/22"), "AD-HOC Block I", false},
	{netip.MustParsePrefix("224.0.8.0/21"), "AD-HOC Block I", false},
	{netip.MustParsePrefix("224.0.16.0/20"), "AD-HOC Block I", false},
	{netip.MustParsePrefix("224.0.32.0/19"), "AD-HOC Block I", false},
	{netip.MustParsePrefix("224.0.64.0/18"), "AD-HOC Block I", false},
	{netip.MustParsePrefix("224.0.128.0/17"), "AD-HOC Block I", false},
	{netip.MustParsePrefix("224.1.0.0/16"), "Reserved", true},
	{netip.MustParsePrefix("224.2.0.0/16"), "SDP/SAP Block", false},
	{netip.MustParsePrefix("224.3.0.0/16"), "AD-HOC Block II", false},
	{netip.MustParsePrefix("224.4.0.0/16"), "AD-HOC Block II", false},
	{netip.MustParsePrefix("224.0.0.0/8"), "Reserved", true}, // 224.5.0.0-224.251.255.255
	{netip.MustParsePrefix("224.252.0.0/14"), "DIS Transient Groups", false},
	{netip.MustParsePrefix("225.0.0.0/8"), "Reserved", true},
	{netip.MustParsePrefix("226.0.0.0/7"), "Reserved", true},
	{netip.MustParsePrefix("228.0.0.0/6"), "Reserved", true},
	{netip.MustParsePrefix("232.0.0.0/8"), "Source-Specific Multicast Block", false},
	{netip.MustParsePrefix("233.0.0.0/8"), "GLOP Block", false},
	{netip.MustParsePrefix("233.252.0.0/14"), "AD-HOC Block III", false},
	{netip.MustParsePrefix("233.252.0.0/24"), "MCAST-TEST-NET (documentation)", false},
	{netip.MustParsePrefix("234.0.0.0/8"), "Unicast-Prefix-based Block", false},
	{netip.MustParsePrefix("235.0.0.0/8"), "Reserved", true},
	{netip.MustParsePrefix("236.0.0.0/7"), "Reserved", true},
	{netip.MustParsePrefix("238.0.0.0/8"), "Reserved", true},
	{netip.MustParsePrefix("239.0.0.0/8"), "Administratively Scoped Block", false},
}

// WellKnown holds the assignments operators meet on the wire.
var WellKnown = map[netip.Addr]string{
	netip.MustParseAddr("224.0.0.1"):       "All Systems on this subnet",
	netip.MustParseAddr("224.0.0.2"):       "All Routers on this subnet",
	netip.MustParseAddr("224.0.0.4"):       "DVMRP routers",
	netip.MustParseAddr("224.0.0.5"):       "OSPF AllSPFRouters",
	netip.MustParseAddr("224.0.0.6"):       "OSPF AllDRouters",
	netip.MustParseAddr("224.0.0.9"):       "RIPv2 routers",
	netip.MustParseAddr("224.0.0.10"):      "EIGRP routers",
	netip.MustParseAddr("224.0.0.12"):      "DHCP server / relay agent",
	netip.MustParseAddr("224.0.0.13"):      "All PIM Routers",
	netip.MustParseAddr("224.0.0.18"):      "VRRP",
	netip.MustParseAddr("224.0.0.22"):      "IGMPv3 reports (All IGMPv3-capable routers)",
	netip.MustParseAddr("224.0.0.102"):     "HSRPv2 / GLBP",
	netip.MustParseAddr("224.0.0.107"):     "PTP peer delay",
	netip.MustParseAddr("224.0.0.251"):     "mDNS",
	netip.MustParseAddr("224.0.0.252"):     "LLMNR",
	netip.MustParseAddr("224.0.1.1"):       "NTP",
	netip.MustParseAddr("224.0.1.39"):      "Cisco Auto-RP announce",
	netip.MustParseAddr("224.0.1.40"):      "Cisco Auto-RP discovery",
	netip.MustParseAddr("224.0.1.129"):     "PTP primary",
	netip.MustParseAddr("224.2.127.254"):   "SAP announcements",
	netip.MustParseAddr("232.43.211.234"):  "ssmping",
	netip.MustParseAddr("239.255.255.250"): "SSDP (UPnP)",
	netip.MustParseAddr("239.255.255.253"): "SLP",
}

// SSMRange is the IANA source-specific block (RFC 4607).
var SSMRange = netip.MustParsePrefix("232.0.0.0/8")

// Classify describes g. It returns an error unless g is IPv4 multicast.
func Classify(g netip.Addr) (Info, error) {
	if !g.Is4() || !g.IsMulticast() {
		return Info{}, fmt.Errorf("%s is not an IPv4 multicast address (224.0.0.0/4)", g)
	}
	in := Info{Group: g, MAC: FormatMAC(MAC(g)), Scope: ScopeGlobal, Name: WellKnown[g]}
	best := -1
	for _, b := range blocks {
		if b.prefix.Contains(g) && b.prefix.Bits() > best {
			best = b.prefix.Bits()
			in.Block, in.Reserved = b.name, b.reserved
		}
	}
	b := g.As4()
	switch {
	case netip.MustParsePrefix("224.0.0.0/24").Contains(g):
		in.Scope = ScopeLinkLocal
		in.Notes = append(in.Notes, "link-local: routers never forward it, whatever the TTL")
	case netip.MustParsePrefix("239.255.0.0/16").Contains(g):
		in.Scope = ScopeLocal
	case netip.MustParsePrefix("239.192.0.0/14").Contains(g):
		in.Scope = ScopeOrg
	case b[0] == 239:
		in.Scope = ScopeAdmin
	}
	if SSMRange.Contains(g) {
		in.SSM = true
		in.Notes = append(in.Notes, "SSM range: receivers must join (S,G) with IGMPv3; routers ignore ASM (*,G) joins here")
	}
	if b[0] == 233 && b[1] < 252 {
		in.GlopAS = int(b[1])<<8 | int(b[2])
	}
	if b[0] == 234 {
		// RFC 6034: 234.a.b.c is owned by the unicast prefix a.b.c.0/24 (or shorter).
		in.UBMPrefix = netip.PrefixFrom(netip.AddrFrom4([4]byte{b[1], b[2], b[3], 0}), 24).String()
	}
	if g == netip.MustParseAddr("224.0.1.39") || g == netip.MustParseAddr("224.0.1.40") {
		in.Notes = append(in.Notes, "Auto-RP: filter at domain borders (MSDP SA filters too)")
	}
	if in.Reserved {
		in.Notes = append(in.Notes, "IANA reserved: do not use for applications")
	}
	for _, o := range SharingMAC(g) {
		if o != g {
			in.SharingMAC = append(in.SharingMAC, o.String())
		}
	}
	return in, nil
}

// Glop returns the GLOP /24 of a 16-bit AS (RFC 3180). ASes 64512-65535
// would fall into AD-HOC block III (RFC 5771) and AS 0 is reserved.
func Glop(as uint32) (netip.Prefix, error) {
	switch {
	case as == 0:
		return netip.Prefix{}, fmt.Errorf("AS 0 is reserved")
	case as > 65535:
		return netip.Prefix{}, fmt.Errorf("AS %d is a 4-byte AS: GLOP covers 16-bit ASes only; use a unicast-prefix-based 234/8 address (RFC 6034)", as)
	case as >= 64512:
		return netip.Prefix{}, fmt.Errorf("AS %d is private: 233.252.0.0/14 is AD-HOC block III, not GLOP (RFC 5771)", as)
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{233, byte(as >> 8), byte(as), 0}), 24), nil
}

// GlopAS returns the AS that owns a GLOP group.
func GlopAS(g netip.Addr) (uint32, error) {
	b := g.As4()
	if !g.Is4() || b[0] != 233 || b[1] >= 252 {
		return 0, fmt.Errorf("%s is not in the GLOP block 233.0.0.0-233.251.255.255", g)
	}
	as := uint32(b[1])<<8 | uint32(b[2])
	if as == 0 {
		return 0, fmt.Errorf("%s is in 233.0.0.0/24, the GLOP block of AS 0, which is reserved: no one owns it (RFC 3180)", g)
	}
	return as, nil
}

// UBM returns the unicast-prefix-based multicast block of a unicast prefix
// of length 24 or shorter (RFC 6034): 234 followed by the prefix's first 24
// bits, of length 8+len. A /24 owns exactly one group.
func UBM(p netip.Prefix) (netip.Prefix, error) {
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%s: IPv4 prefixes only", p)
	}
	if p.Bits() > 24 {
		return netip.Prefix{}, fmt.Errorf("%s: RFC 6034 needs a /24 or shorter prefix", p)
	}
	if p.Addr().IsMulticast() {
		return netip.Prefix{}, fmt.Errorf("%s is a multicast prefix; give the unicast prefix you own", p)
	}
	p = p.Masked()
	a := p.Addr().As4()
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{234, a[0], a[1], a[2]}), 8+p.Bits()), nil
}

// Entry is one item of an address plan: a group and, for SSM, its source.
type Entry struct {
	Group  netip.Addr
	Source netip.Addr // invalid when none was given
	Line   int        // where it came from, for messages
}

// Finding is one thing wrong (or worth knowing) about a plan.
type Finding struct {
	Level   string   `json:"level"` // WARN or FAIL
	Groups  []string `json:"groups"`
	Lines   []int    `json:"lines,omitempty"`
	Problem string   `json:"problem"`
	Fix     string   `json:"fix"`
}

// Check finds MAC collisions and groups that often bite in a plan.
func Check(entries []Entry) []Finding {
	var out []Finding
	byMAC := map[[6]byte][]Entry{}
	var macs [][6]byte
	seen := map[netip.Addr]bool{}
	for _, e := range entries {
		m := MAC(e.Group)
		if !seen[e.Group] {
			seen[e.Group] = true
			if byMAC[m] == nil {
				macs = append(macs, m)
			}
			byMAC[m] = append(byMAC[m], e)
		}
		in, err := Classify(e.Group)
		if err != nil {
			out = append(out, Finding{Level: "FAIL", Groups: []string{e.Group.String()}, Lines: []int{e.Line}, Problem: err.Error(), Fix: "use a group in 224.0.0.0/4"})
			continue
		}
		one := func(level, problem, fix string) {
			out = append(out, Finding{Level: level, Groups: []string{e.Group.String()}, Lines: []int{e.Line}, Problem: problem, Fix: fix})
		}
		switch {
		case in.SSM && !e.Source.IsValid():
			one("FAIL", "in the SSM range 232/8 but no source given: an ASM join here is ignored by routers", "join (S,G) with IGMPv3 (e.g. overcast recv -g G -s S) or pick a group outside 232/8")
		case !in.SSM && e.Source.IsValid() && !in.Reserved && in.Scope != ScopeLinkLocal:
			one("WARN", "source given for a group outside 232/8: routers build a shared tree through the RP first", "use a 232/8 group for source-specific channels")
		}
		if in.Scope == ScopeLinkLocal {
			one("FAIL", "link-local group (224.0.0.0/24): never routed beyond the LAN", "use an administratively scoped 239/8 group for applications")
		}
		if in.Reserved {
			one("WARN", fmt.Sprintf("in an IANA reserved block (%s)", in.Block), "use 239/8 inside an organisation, GLOP or 234/8 between domains")
		}
		if in.Block == "Internetwork Control Block" && in.Name != "" {
			one("WARN", fmt.Sprintf("well-known assignment %q", in.Name), "do not reuse it for application data")
		}
	}
	for _, m := range macs {
		es := byMAC[m]
		if len(es) < 2 {
			continue
		}
		f := Finding{Level: "WARN", Problem: fmt.Sprintf("%d groups share MAC %s: switches and NICs filter by MAC, so hosts on one receive and discard the others' traffic", len(es), FormatMAC(m)),
			Fix: "renumber so that groups differ in the low 23 bits (avoid mixing 239.0.x.y with 239.128.x.y and 224-238.x.y.z with the same low bits)"}
		for _, e := range es {
			f.Groups = append(f.Groups, e.Group.String())
			f.Lines = append(f.Lines, e.Line)
		}
		out = append(out, f)
	}
	slices.SortStableFunc(out, func(a, b Finding) int { return firstLine(a) - firstLine(b) })
	return out
}

func firstLine(f Finding) int {
	if len(f.Lines) == 0 {
		return 0
	}
	return slices.Min(f.Lines)
}

// ParsePlan reads an address plan: one item per line, each a group "G", a
// range "G+N", or a channel "S,G" / "(S,G)"; several items may share a line
// separated by spaces; "#" starts a comment. Errors name the file and line.
func ParsePlan(name, text string) ([]Entry, error) {
	var out []Entry
	for i, line := range strings.Split(text, "\n") {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		for _, tok := range strings.Fields(line) {
			es, err := parseItem(tok)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", name, i+1, err)
			}
			for k := range es {
				es[k].Line = i + 1
			}
			out = append(out, es...)
		}
	}
	return out, nil
}

func parseItem(tok string) ([]Entry, error) {
	tok = strings.TrimSuffix(strings.TrimPrefix(tok, "("), ")")
	if s, g, ok := strings.Cut(tok, ","); ok {
		src, err := netip.ParseAddr(s)
		if err != nil || !src.Is4() || src.IsMulticast() {
			return nil, fmt.Errorf("%q: source must be an IPv4 unicast address", s)
		}
		grp, err := netip.ParseAddr(g)
		if err != nil || !grp.Is4() {
			return nil, fmt.Errorf("%q is not an IPv4 address", g)
		}
		return []Entry{{Group: grp, Source: src}}, nil
	}
	base, n := tok, 0
	if s, cnt, ok := strings.Cut(tok, "+"); ok {
		v, err := strconv.Atoi(cnt)
		if err != nil || v < 0 || v > 65535 {
			return nil, fmt.Errorf("%q: want G+N with N from 0 to 65535", tok)
		}
		base, n = s, v
	}
	g, err := netip.ParseAddr(base)
	if err != nil || !g.Is4() {
		return nil, fmt.Errorf("%q is not an IPv4 address", base)
	}
	var out []Entry
	for range n + 1 {
		if !g.IsMulticast() {
			return nil, fmt.Errorf("%q: %s is not multicast", tok, g)
		}
		out = append(out, Entry{Group: g})
		g = g.Next()
	}
	return out, nil
}
