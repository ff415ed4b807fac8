// Package config reads and validates overcast.yaml. Every error names the
// file, the line and the reason; validation never touches running state.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the daemon's configuration file.
type Config struct {
	APISocket string `yaml:"api-socket"`
	Metrics   string `yaml:"metrics"` // host:port for Prometheus's /metrics; "": off
	// RestartGrace is how long routes a predecessor left in the forwarder
	// are kept (their outputs added to what PIM and IGMP relearn) after a
	// restart; 0 drops them at start. Default 90s: a Join/Prune interval
	// and the neighbours' triggered hellos.
	RestartGrace *time.Duration `yaml:"restart-grace"`
	LogLevel     string         `yaml:"log-level"`
	Keepalive    time.Duration  `yaml:"keepalive"` // idle (S,G) entries are removed after this
	PIM          *PIM           `yaml:"pim"`       // router-wide PIM-SM settings; nil: PIM off unless an interface enables it
	MSDP         *MSDP          `yaml:"msdp"`      // MSDP between RPs; nil: off
	BGP          *BGP           `yaml:"bgp"`       // MBGP (IPv4 multicast) for RPF; nil: off
	Overlay      *Overlay       `yaml:"overlay"`   // multicast over a unicast UDP fabric; nil: off
	Mirror       *Mirror        `yaml:"mirror"`    // tap services and flows; nil: none (the API can add them)
	Interfaces   []Interface    `yaml:"interfaces"`

	file string    // the file it was read from
	root yaml.Node // for the lines of fields after validation
}

// Line is the line of the field at a path of map keys and list indices
// ("pim", "rp", 0, "address"), or of its nearest parent present.
func (c *Config) Line(path ...any) int { return lineOf(&c.root, path...) }

// Errorf is an error at a line of this config's file.
func (c *Config) Errorf(line int, format string, a ...any) error {
	return &Error{File: c.file, Line: line, Reason: fmt.Sprintf(format, a...)}
}

// InterfaceIndex is the position of an interface in the file (-1: absent).
func (c *Config) InterfaceIndex(name string) int {
	for i, ic := range c.Interfaces {
		if ic.Name == name {
			return i
		}
	}
	return -1
}

// PIM is the router-wide PIM-SM configuration.
type PIM struct {
	RP                []RP          `yaml:"rp"`
	SSMRange          []string      `yaml:"ssm-range"` // default 232.0.0.0/8
	SPTThreshold      []SPTRule     `yaml:"spt-threshold"`
	JoinPruneInterval time.Duration `yaml:"join-prune-interval"` // default 60s
	SPTSwitchGuard    time.Duration `yaml:"spt-switch-guard"`    // last resort for the SPT switch; default 20ms (the daemon switches when counters show it safe)
	AnycastRP         []AnycastRP   `yaml:"anycast-rp"`          // RFC 4610 anycast RP sets
	// The register filter: Registers only from these senders (DRs) and
	// for these inner sources; unset, any.
	RegisterFrom    []string `yaml:"register-from"`
	RegisterSources []string `yaml:"register-sources"`
	// RegisterRate is Registers per second per sender (default 5000; -1 no limit).
	RegisterRate int       `yaml:"register-rate"`
	Limits       PIMLimits `yaml:"limits"`
}

// PIMLimits bound PIM state; 0 is the default, -1 no limit.
type PIMLimits struct {
	Routes          int `yaml:"routes"`           // (S,G) and (*,G) state in all; 100000
	InterfaceRoutes int `yaml:"interface-routes"` // state made by joins on one interface; 50000
	RegisterSources int `yaml:"register-sources"` // (S,G) made by Registers at this RP; 20000
	Neighbors       int `yaml:"neighbors"`        // per interface; 128
}

// AnycastRP is an RFC 4610 anycast RP set: the RPs sharing Address, by
// their unique addresses (this router's own among them).
type AnycastRP struct {
	Address string   `yaml:"address"`
	Members []string `yaml:"members"`
}

// MSDP is MSDP between RPs (RFC 3618).
type MSDP struct {
	// Source is this router's address for MSDP sessions (connect-source;
	// each peer may override it); OriginatorID is the RP address in the
	// SAs it originates (default Source; an anycast RP sets its unique
	// address here).
	Source       string                  `yaml:"source"`
	OriginatorID string                  `yaml:"originator-id"`
	SALimit      int                     `yaml:"sa-limit"`
	Keepalive    time.Duration           `yaml:"keepalive"`
	HoldTime     time.Duration           `yaml:"hold-time"`
	ConnectRetry time.Duration           `yaml:"connect-retry"`
	Peers        []MSDPPeer              `yaml:"peers"`
	RPFPeers     []MSDPRPFPeer           `yaml:"rpf-peers"`
	Policies     map[string][]PolicyRule `yaml:"policies"`
}

// BGP is the embedded MBGP speaker: sessions for the IPv4 multicast
// address family, whose best paths RPF prefers to the unicast table.
type BGP struct {
	AS                uint32        `yaml:"as"`
	RouterID          string        `yaml:"router-id"`
	Listen            []string      `yaml:"listen"` // addresses to accept sessions on; default all
	Port              int           `yaml:"port"`   // default 179
	Neighbors         []BGPNeighbor `yaml:"neighbors"`
	MulticastNetworks []string      `yaml:"multicast-networks"` // announced with next hop self
}

// BGPNeighbor is one BGP neighbour.
type BGPNeighbor struct {
	Address  string `yaml:"address"`
	RemoteAS uint32 `yaml:"remote-as"`
	Source   string `yaml:"source"`
	Password string `yaml:"password"`
	Multihop uint8  `yaml:"ebgp-multihop"`
}

// MSDPPeer is one MSDP peer.
type MSDPPeer struct {
	Address     string `yaml:"address"`
	Source      string `yaml:"source"`
	MeshGroup   string `yaml:"mesh-group"`
	Password    string `yaml:"password"`
	SAFilterIn  string `yaml:"sa-filter-in"`
	SAFilterOut string `yaml:"sa-filter-out"`
	SALimit     int    `yaml:"sa-limit"`
	Default     bool   `yaml:"default"`
	RemoteAS    uint32 `yaml:"remote-as"`
}

// MSDPRPFPeer is a static peer-RPF rule: SAs originated by an RP in the
// prefix are accepted from the peer.
type MSDPRPFPeer struct {
	RP   string `yaml:"rp"`
	Peer string `yaml:"peer"`
}

// PolicyRule is one ordered rule of an SA filter: permit or deny entries
// matching every prefix given.
type PolicyRule struct {
	Action string `yaml:"action"`
	Source string `yaml:"source"`
	Group  string `yaml:"group"`
	RP     string `yaml:"rp"`
}

// RP is a static RP for a group range.
type RP struct {
	Address string `yaml:"address"`
	Groups  string `yaml:"groups"` // default 224.0.0.0/4
}

// SPTRule sets when last-hop routers join the shortest-path tree for a
// group range: "immediate" (the default), "infinity" (stay on the shared
// tree), "N kbps" (once a source's rate on the shared tree exceeds N) or
// "N packets" (after N packets of a source on the shared tree).
type SPTRule struct {
	Groups    string `yaml:"groups"`
	Threshold string `yaml:"threshold"`
}

// Parse reads the threshold: never for infinity, else a packet count or a
// rate in kbps (both zero: immediate).
func (r SPTRule) Parse() (never bool, packets, kbps uint64, err error) {
	s := strings.ToLower(strings.TrimSpace(r.Threshold))
	switch s {
	case "immediate", "0", "":
		return false, 0, 0, nil
	case "infinity":
		return true, 0, 0, nil
	}
	for _, unit := range []string{"kbps", "packets"} {
		num, ok := strings.CutSuffix(s, unit)
		if !ok {
			continue
		}
		n, perr := strconv.ParseUint(strings.TrimSpace(num), 10, 32)
		if perr != nil || n == 0 {
			break
		}
		if unit == "kbps" {
			return false, 0, n, nil
		}
		return false, n, 0, nil
	}
	return false, 0, 0, fmt.Errorf("spt-threshold %q: want immediate, infinity, N kbps or N packets", r.Threshold)
}

// Interface enables Overcast on one network interface.
type Interface struct {
	Name string `yaml:"name"`
	IGMP IGMP   `yaml:"igmp"`
	PIM  IfPIM  `yaml:"pim"`

	// Overlay marks the overlay's own device, added to the list from the
	// overlay section (not written in the file).
	Overlay bool `yaml:"-"`
}

// IfPIM is PIM on an interface: `pim: true`, or a map of settings.
type IfPIM struct {
	Enabled       bool
	DRPriority    uint32        `yaml:"dr-priority"`
	HelloInterval time.Duration `yaml:"hello-interval"`
	// NeighborFilter lists the only addresses accepted as neighbours.
	NeighborFilter []string `yaml:"neighbor-filter"`
}

// UnmarshalYAML accepts `pim: true|false` or `pim: {dr-priority: N, hello-interval: D}`.
func (p *IfPIM) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&p.Enabled)
	}
	type plain struct {
		Enabled        *bool         `yaml:"enabled"`
		DRPriority     uint32        `yaml:"dr-priority"`
		HelloInterval  time.Duration `yaml:"hello-interval"`
		NeighborFilter []string      `yaml:"neighbor-filter"`
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			switch k := n.Content[i]; k.Value {
			case "enabled", "dr-priority", "hello-interval", "neighbor-filter":
			default:
				return fmt.Errorf("line %d: field %s not found in interface pim settings (valid: enabled, dr-priority, hello-interval, neighbor-filter)", k.Line, k.Value)
			}
		}
	}
	var v plain
	if err := n.Decode(&v); err != nil {
		return err
	}
	p.Enabled = v.Enabled == nil || *v.Enabled
	p.DRPriority, p.HelloInterval, p.NeighborFilter = v.DRPriority, v.HelloInterval, v.NeighborFilter
	return nil
}

// PIMEnabled says whether the router runs PIM at all.
func (c *Config) PIMEnabled() bool {
	if c.PIM != nil {
		return true
	}
	for _, i := range c.Interfaces {
		if i.PIM.Enabled {
			return true
		}
	}
	return false
}

// IGMP is the per-interface IGMP configuration (RFC 3376 section 8 names).
type IGMP struct {
	Version                 int           `yaml:"version"`
	Robustness              int           `yaml:"robustness"`
	QueryInterval           time.Duration `yaml:"query-interval"`
	QueryResponseInterval   time.Duration `yaml:"query-response-interval"`
	LastMemberQueryInterval time.Duration `yaml:"last-member-query-interval"`
	LastMemberQueryCount    int           `yaml:"last-member-query-count"`
	ExplicitTracking        bool          `yaml:"explicit-tracking"`
	Querier                 *bool         `yaml:"querier"` // default true
	StaticGroups            []string      `yaml:"static-groups"`
	MaxGroups               int           `yaml:"max-groups"`          // default 10000; -1 no limit
	MaxSources              int           `yaml:"max-sources"`         // per group; default 1024; -1 no limit
	MaxGroupsPerHost        int           `yaml:"max-groups-per-host"` // groups one host's reports can make; 0: no bound
}

// Defaults.
const (
	DefaultAPISocket = "/run/overcast.sock"
	DefaultKeepalive = 210 * time.Second
	// DefaultRestartGrace is how long a restarted daemon keeps the routes
	// its predecessor left.
	DefaultRestartGrace = 90 * time.Second
)

// Error is a validation error at a place in the file.
type Error struct {
	File   string
	Line   int
	Reason string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Reason)
}

// Load reads and validates a file. ifExists reports whether a network
// interface exists (nil skips that check).
func Load(path string, ifExists func(string) bool) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, &Error{File: path, Reason: fmt.Sprintf("larger than %d bytes: a config this big is not a router's (split the mirror rules, or check the file is the right one)", MaxFileSize)}
	}
	return Parse(path, b, ifExists)
}

// MaxFileSize is the largest config file Load reads.
const MaxFileSize = 4 << 20

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// Parse validates the bytes of a config file called name.
func Parse(name string, b []byte, ifExists func(string) bool) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err)
	}
	var second yaml.Node
	if err := dec.Decode(&second); err == nil {
		return nil, &Error{File: name, Line: second.Line, Reason: "a second YAML document (after ---): the config is one document; remove the --- and merge the two"}
	}
	c.file = name
	_ = yaml.Unmarshal(b, &c.root)
	at := func(path ...any) int { return lineOf(&c.root, path...) }
	bad := func(line int, format string, a ...any) error {
		return &Error{File: name, Line: line, Reason: fmt.Sprintf(format, a...)}
	}
	if c.APISocket == "" {
		c.APISocket = DefaultAPISocket
	}
	if c.Metrics != "" {
		i := strings.LastIndex(c.Metrics, ":")
		host, port := c.Metrics[:max(i, 0)], c.Metrics[i+1:]
		if _, perr := strconv.ParseUint(port, 10, 16); i < 0 || perr != nil || port == "0" {
			return nil, bad(at("metrics"), "metrics %q: want HOST:PORT to serve /metrics on, such as 127.0.0.1:9477 (or :9477 for every address)", c.Metrics)
		}
		if host != "" {
			if a, err := netip.ParseAddr(host); err != nil || !a.IsValid() {
				return nil, bad(at("metrics"), "metrics %q: %q is not an IP address (give 127.0.0.1:9477, or :9477 for every address)", c.Metrics, host)
			}
		}
	}
	if c.Keepalive == 0 {
		c.Keepalive = DefaultKeepalive
	}
	if c.RestartGrace == nil {
		g := DefaultRestartGrace
		c.RestartGrace = &g
	} else if *c.RestartGrace < 0 || *c.RestartGrace > 10*time.Minute {
		return nil, bad(at("restart-grace"), "restart-grace %v: want 0 (drop a predecessor's routes at start) up to 10m", *c.RestartGrace)
	}
	if c.Keepalive < 10*time.Second {
		return nil, bad(at("keepalive"), "keepalive %v is below 10s", c.Keepalive)
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return nil, bad(at("log-level"), "log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if len(c.Interfaces) == 0 && c.Overlay == nil && c.Mirror == nil {
		return nil, bad(0, "no interfaces: list at least one under 'interfaces:'")
	}
	if err := checkOverlay(&c, at, bad); err != nil {
		return nil, err
	}
	if err := checkMirror(&c, at, bad, ifExists); err != nil {
		return nil, err
	}
	if len(c.Interfaces) > 31 {
		return nil, bad(at("interfaces"), "%d interfaces: the kernel allows 32 VIFs per multicast routing table", len(c.Interfaces))
	}
	seen := map[string]int{}
	for i, ifc := range c.Interfaces {
		line := at("interfaces", i, "name")
		if ifc.Name == "" {
			return nil, bad(at("interfaces", i), "interface without a name")
		}
		if prev, dup := seen[ifc.Name]; dup {
			return nil, bad(line, "interface %q listed twice (first on line %d)", ifc.Name, prev)
		}
		seen[ifc.Name] = line
		if ifExists != nil && !ifc.Overlay && !ifExists(ifc.Name) {
			return nil, bad(line, "interface %q does not exist", ifc.Name)
		}
		g := ifc.IGMP
		if g.Version != 0 && (g.Version < 2 || g.Version > 3) {
			return nil, bad(at("interfaces", i, "igmp", "version"), "igmp version %d: want 2 or 3", g.Version)
		}
		if g.Robustness < 0 || g.Robustness > 7 {
			return nil, bad(at("interfaces", i, "igmp", "robustness"), "robustness %d: want 1..7", g.Robustness)
		}
		if g.MaxGroupsPerHost < 0 {
			return nil, bad(at("interfaces", i, "igmp", "max-groups-per-host"), "max-groups-per-host %d: want a positive number, or 0 for no bound", g.MaxGroupsPerHost)
		}
		if g.MaxGroups < -1 || g.MaxSources < -1 {
			return nil, bad(at("interfaces", i, "igmp"), "max-groups %d, max-sources %d: want a positive number, 0 for the default or -1 for no limit", g.MaxGroups, g.MaxSources)
		}
		if g.LastMemberQueryCount < 0 || g.LastMemberQueryCount > 7 {
			return nil, bad(at("interfaces", i, "igmp", "last-member-query-count"), "last-member-query-count %d: want 1..7", g.LastMemberQueryCount)
		}
		for _, d := range []struct {
			key string
			v   time.Duration
			max time.Duration
		}{
			{"query-interval", g.QueryInterval, 31744 * time.Second},
			{"query-response-interval", g.QueryResponseInterval, 3174 * time.Second},
			{"last-member-query-interval", g.LastMemberQueryInterval, 3174 * time.Second},
		} {
			if d.v < 0 || (d.v > 0 && d.v < 100*time.Millisecond) || d.v > d.max {
				return nil, bad(at("interfaces", i, "igmp", d.key), "%s %v: want 100ms..%v", d.key, d.v, d.max)
			}
		}
		if g.QueryInterval > 0 && g.QueryResponseInterval >= g.QueryInterval {
			return nil, bad(at("interfaces", i, "igmp", "query-response-interval"), "query-response-interval must be shorter than query-interval")
		}
		for j, s := range g.StaticGroups {
			a, err := netip.ParseAddr(s)
			if err != nil || !a.Is4() || !a.IsMulticast() {
				return nil, bad(at("interfaces", i, "igmp", "static-groups", j), "static group %q is not an IPv4 multicast address", s)
			}
			if netip.MustParsePrefix("224.0.0.0/24").Contains(a) {
				return nil, bad(at("interfaces", i, "igmp", "static-groups", j), "static group %s is link-local (224.0.0.0/24): it is never routed; use a group outside 224.0.0.0/24", s)
			}
		}
	}
	if err := checkPIM(&c, at, bad); err != nil {
		return nil, err
	}
	if err := checkMSDP(&c, at, bad); err != nil {
		return nil, err
	}
	if err := checkBGP(&c, at, bad); err != nil {
		return nil, err
	}
	return &c, nil
}

func checkPIM(c *Config, at func(...any) int, bad func(int, string, ...any) error) error {
	for i, ifc := range c.Interfaces {
		if ifc.PIM.HelloInterval != 0 && (ifc.PIM.HelloInterval < time.Second || ifc.PIM.HelloInterval > 18000*time.Second) {
			return bad(at("interfaces", i, "pim", "hello-interval"), "hello-interval %v: want 1s..5h", ifc.PIM.HelloInterval)
		}
		for j, f := range ifc.PIM.NeighborFilter {
			if _, err := UnicastPrefix(f); err != nil {
				return bad(at("interfaces", i, "pim", "neighbor-filter", j), "neighbor-filter %q: %v", f, err)
			}
		}
	}
	p := c.PIM
	if p == nil {
		return nil
	}
	mcast := netip.MustParsePrefix("224.0.0.0/4")
	prefix := func(s string, line int, what string) (netip.Prefix, error) {
		pf, err := netip.ParsePrefix(s)
		if err != nil || !pf.Addr().Is4() || pf.Bits() < 4 || !mcast.Contains(pf.Addr()) {
			return netip.Prefix{}, bad(line, "%s %q is not a multicast prefix inside 224.0.0.0/4", what, s)
		}
		return pf, nil
	}
	seen := map[netip.Prefix]int{}
	for i, rp := range p.RP {
		a, err := netip.ParseAddr(rp.Address)
		if err != nil || !a.Is4() || a.IsMulticast() || a.IsUnspecified() {
			return bad(at("pim", "rp", i, "address"), "rp address %q is not a unicast IPv4 address", rp.Address)
		}
		if rp.Groups == "" {
			p.RP[i].Groups = "224.0.0.0/4"
		}
		pf, err := prefix(p.RP[i].Groups, at("pim", "rp", i, "groups"), "rp groups")
		if err != nil {
			return err
		}
		if prev, dup := seen[pf.Masked()]; dup {
			return bad(at("pim", "rp", i), "rp for %s given twice (first on line %d)", pf.Masked(), prev)
		}
		seen[pf.Masked()] = at("pim", "rp", i)
	}
	ssm := []netip.Prefix{netip.MustParsePrefix("232.0.0.0/8")}
	if len(p.SSMRange) > 0 {
		ssm = nil
	}
	for i, s := range p.SSMRange {
		pf, err := prefix(s, at("pim", "ssm-range", i), "ssm-range")
		if err != nil {
			return err
		}
		ssm = append(ssm, pf.Masked())
	}
	for i, rp := range p.RP {
		g := netip.MustParsePrefix(p.RP[i].Groups).Masked()
		for _, s := range ssm {
			if s.Bits() <= g.Bits() && s.Contains(g.Addr()) {
				return bad(at("pim", "rp", i, "groups"), "rp %s for %s: the range is inside the SSM range %s, where there is no RP (RFC 4607); use another range, or change ssm-range", rp.Address, g, s)
			}
		}
	}
	for i, r := range p.SPTThreshold {
		if _, err := prefix(r.Groups, at("pim", "spt-threshold", i, "groups"), "spt-threshold groups"); err != nil {
			return err
		}
		if _, _, _, err := r.Parse(); err != nil {
			return bad(at("pim", "spt-threshold", i, "threshold"), "%v", err)
		}
	}
	for i, a := range p.AnycastRP {
		addr, err := netip.ParseAddr(a.Address)
		if err != nil || !addr.Is4() || addr.IsMulticast() {
			return bad(at("pim", "anycast-rp", i, "address"), "anycast-rp address %q is not a unicast IPv4 address", a.Address)
		}
		isRP := false
		for _, rp := range p.RP {
			isRP = isRP || rp.Address == a.Address
		}
		if !isRP {
			return bad(at("pim", "anycast-rp", i, "address"), "anycast-rp %s is not one of the rp addresses: list it under pim rp too", a.Address)
		}
		if len(a.Members) < 2 {
			return bad(at("pim", "anycast-rp", i, "members"), "anycast-rp %s: list every RP of the set by its unique address (at least two, this router's included)", a.Address)
		}
		seenM := map[string]bool{}
		for j, m := range a.Members {
			ma, err := netip.ParseAddr(m)
			if err != nil || !ma.Is4() || ma.IsMulticast() || m == a.Address {
				return bad(at("pim", "anycast-rp", i, "members", j), "anycast-rp member %q is not a unicast IPv4 address other than the anycast one", m)
			}
			if seenM[m] {
				return bad(at("pim", "anycast-rp", i, "members", j), "anycast-rp member %s listed twice", m)
			}
			seenM[m] = true
		}
	}
	if p.JoinPruneInterval != 0 && (p.JoinPruneInterval < time.Second || p.JoinPruneInterval > 18000*time.Second) {
		return bad(at("pim", "join-prune-interval"), "join-prune-interval %v: want 1s..5h", p.JoinPruneInterval)
	}
	if p.SPTSwitchGuard < 0 || p.SPTSwitchGuard > time.Second {
		return bad(at("pim", "spt-switch-guard"), "spt-switch-guard %v: want 0..1s", p.SPTSwitchGuard)
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"register-from", p.RegisterFrom}, {"register-sources", p.RegisterSources}} {
		for j, f := range l.list {
			if _, err := UnicastPrefix(f); err != nil {
				return bad(at("pim", l.key, j), "%s %q: %v", l.key, f, err)
			}
		}
	}
	for _, l := range []struct {
		key string
		v   int
	}{{"register-rate", p.RegisterRate}, {"limits.routes", p.Limits.Routes}, {"limits.interface-routes", p.Limits.InterfaceRoutes},
		{"limits.register-sources", p.Limits.RegisterSources}, {"limits.neighbors", p.Limits.Neighbors}} {
		if l.v < -1 {
			line := at("pim", l.key)
			if k, ok := strings.CutPrefix(l.key, "limits."); ok {
				line = at("pim", "limits", k)
			}
			return bad(line, "%s %d: want a positive number, 0 for the default or -1 for no limit", l.key, l.v)
		}
	}
	return nil
}

// UnicastPrefix parses an IPv4 unicast prefix ("10.0.0.0/8") or address
// (a /32) for a filter.
func UnicastPrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if !a.Is4() || a.IsMulticast() {
			return netip.Prefix{}, fmt.Errorf("not an IPv4 unicast address or prefix (write 10.0.0.0/8 or 10.0.0.1)")
		}
		return netip.PrefixFrom(a, 32), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() || p.Addr().IsMulticast() {
		return netip.Prefix{}, fmt.Errorf("not an IPv4 unicast address or prefix (write 10.0.0.0/8 or 10.0.0.1)")
	}
	return p.Masked(), nil
}

// BuiltinPolicies are the SA filter names every config may use without
// defining them (internal/msdp.Builtin).
var BuiltinPolicies = map[string]bool{"scoped": true}

func checkMSDP(c *Config, at func(...any) int, bad func(int, string, ...any) error) error {
	m := c.MSDP
	if m == nil {
		return nil
	}
	if c.PIM == nil {
		return bad(at("msdp"), "msdp runs between RPs: add a pim section with this router as an rp")
	}
	unicast := func(s string, line int, what string) error {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() || a.IsMulticast() || a.IsUnspecified() {
			return bad(line, "%s %q is not a unicast IPv4 address", what, s)
		}
		return nil
	}
	if m.Source != "" {
		if err := unicast(m.Source, at("msdp", "source"), "msdp source"); err != nil {
			return err
		}
	}
	if m.OriginatorID != "" {
		if err := unicast(m.OriginatorID, at("msdp", "originator-id"), "msdp originator-id"); err != nil {
			return err
		}
	}
	if m.SALimit < 0 {
		return bad(at("msdp", "sa-limit"), "sa-limit %d: want 0 (default) or more", m.SALimit)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"keepalive", m.Keepalive}, {"hold-time", m.HoldTime}, {"connect-retry", m.ConnectRetry}} {
		if d.v < 0 || (d.v > 0 && d.v < time.Second) || d.v > time.Hour {
			return bad(at("msdp", d.key), "msdp %s %v: want 1s..1h", d.key, d.v)
		}
	}
	if m.Keepalive > 0 && m.HoldTime > 0 && m.Keepalive >= m.HoldTime {
		return bad(at("msdp", "keepalive"), "msdp keepalive %v must be shorter than hold-time %v", m.Keepalive, m.HoldTime)
	}
	for name, rules := range m.Policies {
		if BuiltinPolicies[name] {
			return bad(at("msdp", "policies", name), "policy %q is built in; choose another name", name)
		}
		for j, r := range rules {
			switch r.Action {
			case "permit", "deny":
			default:
				return bad(at("msdp", "policies", name, j), "policy %s rule %d: action %q, want permit or deny", name, j+1, r.Action)
			}
			for _, f := range []struct{ k, v string }{{"source", r.Source}, {"group", r.Group}, {"rp", r.RP}} {
				if f.v == "" {
					continue
				}
				if _, err := ParsePrefixOrAddr(f.v); err != nil {
					return bad(at("msdp", "policies", name, j, f.k), "policy %s rule %d: %s %q is not an IPv4 prefix or address", name, j+1, f.k, f.v)
				}
			}
		}
	}
	seen := map[string]int{}
	for i, p := range m.Peers {
		line := at("msdp", "peers", i)
		if err := unicast(p.Address, at("msdp", "peers", i, "address"), "msdp peer address"); err != nil {
			return err
		}
		if prev, dup := seen[p.Address]; dup {
			return bad(line, "msdp peer %s listed twice (first on line %d)", p.Address, prev)
		}
		seen[p.Address] = line
		src := p.Source
		if src == "" {
			src = m.Source
		}
		if src == "" {
			return bad(line, "msdp peer %s: no source address (set msdp source, or source on the peer: this router's address the peer connects to)", p.Address)
		}
		if err := unicast(src, at("msdp", "peers", i, "source"), "msdp peer source"); err != nil {
			return err
		}
		if src == p.Address {
			return bad(line, "msdp peer %s is this router's own source address", p.Address)
		}
		if len(p.Password) > 80 {
			return bad(at("msdp", "peers", i, "password"), "msdp peer %s: password of %d bytes; TCP-MD5 keys are at most 80", p.Address, len(p.Password))
		}
		for _, f := range []struct{ k, v string }{{"sa-filter-in", p.SAFilterIn}, {"sa-filter-out", p.SAFilterOut}} {
			if f.v == "" || BuiltinPolicies[f.v] {
				continue
			}
			if _, ok := m.Policies[f.v]; !ok {
				return bad(at("msdp", "peers", i, f.k), "msdp peer %s: %s %q is not a policy (define it under msdp policies, or use scoped)", p.Address, f.k, f.v)
			}
		}
		if p.SALimit < 0 {
			return bad(at("msdp", "peers", i, "sa-limit"), "sa-limit %d: want 0 (none) or more", p.SALimit)
		}
	}
	for i, r := range m.RPFPeers {
		if _, err := ParsePrefixOrAddr(r.RP); err != nil {
			return bad(at("msdp", "rpf-peers", i, "rp"), "rpf-peer rp %q is not an IPv4 prefix or address", r.RP)
		}
		if _, ok := seen[r.Peer]; !ok {
			return bad(at("msdp", "rpf-peers", i, "peer"), "rpf-peer %q is not one of the msdp peers", r.Peer)
		}
	}
	return nil
}

func checkBGP(c *Config, at func(...any) int, bad func(int, string, ...any) error) error {
	b := c.BGP
	if b == nil {
		return nil
	}
	if b.AS == 0 {
		return bad(at("bgp"), "bgp needs as: this router's autonomous system number")
	}
	unicast := func(s string, line int, what string) error {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() || a.IsMulticast() || a.IsUnspecified() {
			return bad(line, "%s %q is not a unicast IPv4 address", what, s)
		}
		return nil
	}
	if err := unicast(b.RouterID, at("bgp", "router-id"), "bgp router-id"); err != nil {
		return err
	}
	for i, a := range b.Listen {
		if err := unicast(a, at("bgp", "listen", i), "bgp listen address"); err != nil {
			return err
		}
	}
	if b.Port < -1 || b.Port > 65535 {
		return bad(at("bgp", "port"), "bgp port %d: want 1..65535 (or -1: do not listen)", b.Port)
	}
	seen := map[string]int{}
	for i, n := range b.Neighbors {
		if err := unicast(n.Address, at("bgp", "neighbors", i, "address"), "bgp neighbor address"); err != nil {
			return err
		}
		if prev, dup := seen[n.Address]; dup {
			return bad(at("bgp", "neighbors", i), "bgp neighbor %s listed twice (first on line %d)", n.Address, prev)
		}
		seen[n.Address] = at("bgp", "neighbors", i)
		if n.RemoteAS == 0 {
			return bad(at("bgp", "neighbors", i), "bgp neighbor %s needs remote-as", n.Address)
		}
		if n.Source != "" {
			if err := unicast(n.Source, at("bgp", "neighbors", i, "source"), "bgp neighbor source"); err != nil {
				return err
			}
		}
		if len(n.Password) > 80 {
			return bad(at("bgp", "neighbors", i, "password"), "bgp neighbor %s: password of %d bytes; TCP-MD5 keys are at most 80", n.Address, len(n.Password))
		}
	}
	for i, s := range b.MulticastNetworks {
		if _, err := ParsePrefixOrAddr(s); err != nil {
			return bad(at("bgp", "multicast-networks", i), "multicast-network %q is not an IPv4 prefix", s)
		}
	}
	return nil
}

// ParsePrefixOrAddr reads "a.b.c.d/n" or "a.b.c.d" (a /32).
func ParsePrefixOrAddr(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
		return netip.PrefixFrom(a, 32), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 prefix", s)
	}
	return p.Masked(), nil
}

// yamlError turns yaml.v3's messages into file:line: reason.
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		if m := yamlLine.FindStringSubmatch(te.Errors[0]); m != nil {
			n, _ := strconv.Atoi(m[1])
			return &Error{File: name, Line: n, Reason: m[2]}
		}
	}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &Error{File: name, Line: n, Reason: m[2]}
	}
	return &Error{File: name, Reason: err.Error()}
}

// lineOf finds the line of the node at a path of map keys and list indices.
func lineOf(n *yaml.Node, path ...any) int {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						next = n.Content[i+1]
						if next.Kind == yaml.ScalarNode {
							next = n.Content[i] // the key's line reads better for scalars
						}
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
			}
		}
		if next == nil {
			return n.Line
		}
		n = next
	}
	return n.Line
}
