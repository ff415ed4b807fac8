package mirror

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Service is a tap service: where copies go, and how they are cut.
type Service struct {
	Name string `json:"name"`
	// Collector: copies go VXLAN-encapsulated (UDP, default port 4789)
	// with VNI to this address. Or Port: copies go out of this local
	// port (a monitor's port or a bridge).
	Collector netip.AddrPort `json:"collector,omitzero"`
	VNI       uint32         `json:"vni,omitempty"`
	Port      string         `json:"port,omitempty"`
	Truncate  uint32         `json:"truncate,omitempty"` // octets of each copy (its Ethernet frame); 0: whole
	Rate      Rate           `json:"rate,omitzero"`
	StripVLAN bool           `json:"strip_vlan,omitempty"`
	MAC       string         `json:"mac,omitempty"` // rewrite the copies' destination MAC (for delivery through a bridge)
}

// Rate is a service's limit: packets or bits per second of copies.
type Rate struct {
	PPS uint64 `json:"pps,omitempty"`
	BPS uint64 `json:"bps,omitempty"`
}

func (r Rate) String() string {
	switch {
	case r.PPS > 0:
		return fmt.Sprintf("%dpps", r.PPS)
	case r.BPS > 0:
		return fmt.Sprintf("%dbps", r.BPS)
	}
	return "none"
}

// ParseRate reads N pps, or N bps / kbps / mbps / gbps (no space needed).
func ParseRate(s string) (Rate, error) {
	t := strings.ToLower(strings.ReplaceAll(s, " ", ""))
	for _, u := range []struct {
		suffix string
		mul    uint64
		pps    bool
	}{{"pps", 1, true}, {"kbps", 1e3, false}, {"mbps", 1e6, false}, {"gbps", 1e9, false}, {"bps", 1, false}} {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			v, err := strconv.ParseUint(n, 10, 64)
			if err != nil || v == 0 || v > 1e12/u.mul {
				break
			}
			if u.pps {
				return Rate{PPS: v}, nil
			}
			return Rate{BPS: v * u.mul}, nil
		}
	}
	return Rate{}, fmt.Errorf("rate %q: want N followed by pps, bps, kbps, mbps or gbps (10000pps, 100mbps)", s)
}

// ParseTarget reads vxlan://ADDR[:PORT] or port:IFNAME.
func ParseTarget(s string) (collector netip.AddrPort, port string, err error) {
	if rest, ok := strings.CutPrefix(s, "vxlan://"); ok {
		if ap, err := netip.ParseAddrPort(rest); err == nil {
			collector = ap
		} else if a, err := netip.ParseAddr(rest); err == nil {
			collector = netip.AddrPortFrom(a, DefaultVXLANPort)
		} else {
			return collector, "", fmt.Errorf("target %q: want vxlan://IPV4[:PORT]", s)
		}
		a := collector.Addr()
		if !a.Is4() || a.IsMulticast() || a.IsUnspecified() || a.IsLoopback() || collector.Port() == 0 {
			return netip.AddrPort{}, "", fmt.Errorf("target %q: the collector must be a unicast IPv4 address with a port (vxlan://192.0.2.10:4789)", s)
		}
		return collector, "", nil
	}
	if name, ok := strings.CutPrefix(s, "port:"); ok && validIfname(name) {
		return collector, name, nil
	}
	return collector, "", fmt.Errorf("target %q: want vxlan://COLLECTOR[:PORT] or port:IFNAME", s)
}

// Target is the service's target in ParseTarget's syntax.
func (s Service) Target() string {
	if s.Port != "" {
		return "port:" + s.Port
	}
	return "vxlan://" + s.Collector.String()
}

// DefaultVXLANPort is the IANA VXLAN port.
const DefaultVXLANPort = 4789

// Limits on a service.
const (
	MinTruncate = 64 // an Ethernet, IPv4 and transport header with room
	MaxTruncate = 65535
	MaxVNI      = 1<<24 - 1
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$`)

func validIfname(s string) bool {
	return s != "" && len(s) < 16 && !strings.ContainsAny(s, "/ \t") && s != "." && s != ".."
}

// Check says what is wrong with a service, or nil.
func (s Service) Check() error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("service name %q: want letters, digits, '_', '.', ':' or '-', up to 63", s.Name)
	}
	switch {
	case s.Port != "" && s.Collector.IsValid():
		return fmt.Errorf("service %s: both a collector and a port: give one --to", s.Name)
	case s.Port != "":
		if !validIfname(s.Port) {
			return fmt.Errorf("service %s: port %q is not an interface name", s.Name, s.Port)
		}
		if s.VNI != 0 {
			return fmt.Errorf("service %s: a VNI means nothing for port delivery: drop it, or use --to vxlan://COLLECTOR", s.Name)
		}
	case s.Collector.IsValid():
		if _, _, err := ParseTarget("vxlan://" + s.Collector.String()); err != nil {
			return fmt.Errorf("service %s: %v", s.Name, err)
		}
		if s.VNI == 0 || s.VNI > MaxVNI {
			return fmt.Errorf("service %s: VNI %d: want 1..%d (the session's VNI, as AWS Traffic Mirroring)", s.Name, s.VNI, MaxVNI)
		}
	default:
		return fmt.Errorf("service %s: no target: want --to vxlan://COLLECTOR[:PORT] or --to port:IFNAME", s.Name)
	}
	if s.Truncate != 0 && (s.Truncate < MinTruncate || s.Truncate > MaxTruncate) {
		return fmt.Errorf("service %s: truncate %d: want %d..%d octets, or 0 for whole packets", s.Name, s.Truncate, MinTruncate, MaxTruncate)
	}
	if s.Rate.PPS > 0 && s.Rate.BPS > 0 {
		return fmt.Errorf("service %s: a rate in packets and in bits: give one", s.Name)
	}
	if s.MAC != "" {
		if _, err := ParseMAC(s.MAC); err != nil {
			return fmt.Errorf("service %s: %v", s.Name, err)
		}
	}
	return nil
}

// ParseMAC reads a unicast MAC address aa:bb:cc:dd:ee:ff.
func ParseMAC(s string) ([6]byte, error) {
	var m [6]byte
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return m, fmt.Errorf("mac %q: want six hex octets, aa:bb:cc:dd:ee:ff", s)
	}
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 16, 8)
		if err != nil || len(p) != 2 {
			return m, fmt.Errorf("mac %q: want six hex octets, aa:bb:cc:dd:ee:ff", s)
		}
		m[i] = byte(v)
	}
	if m[0]&1 != 0 {
		return m, fmt.Errorf("mac %q is a group address: want the monitor's own MAC", s)
	}
	return m, nil
}

// Direction says which of a port's packets a flow taps: In (received on
// the port: tc ingress; for a VM's host-side port, what the VM sent),
// Out (sent out of the port: what the VM received), or Both.
type Direction uint8

const (
	In   Direction = 1
	Out  Direction = 2
	Both Direction = 3
)

func (d Direction) String() string {
	switch d {
	case In:
		return "in"
	case Out:
		return "out"
	case Both:
		return "both"
	}
	return "?"
}

// ParseDirection reads in, out or both.
func ParseDirection(s string) (Direction, error) {
	switch strings.ToLower(s) {
	case "in", "ingress":
		return In, nil
	case "out", "egress":
		return Out, nil
	case "both":
		return Both, nil
	}
	return 0, fmt.Errorf("direction %q: want in, out or both", s)
}

func (d Direction) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d *Direction) UnmarshalText(b []byte) error {
	v, err := ParseDirection(string(b))
	*d = v
	return err
}

// Flow is a tap flow: a port, a direction, the rules, the service.
type Flow struct {
	Name      string    `json:"name"`
	Service   string    `json:"service"`
	Port      string    `json:"port"`
	Direction Direction `json:"direction"`
	// Rules in ParseRule's syntax. None: every packet is mirrored (one
	// "accept"); otherwise a packet no rule accepts is not.
	Rules []string `json:"rules,omitempty"`
}

// FlowName is a flow's default name.
func FlowName(service, port string, d Direction) string {
	return fmt.Sprintf("%s:%s:%s", service, port, d)
}

// Filter parses the flow's rules.
func (f Flow) Filter() (Filter, error) {
	rules := f.Rules
	if len(rules) == 0 {
		rules = []string{"accept"}
	}
	if len(rules) > MaxRules {
		return Filter{}, fmt.Errorf("flow %s: %d rules: at most %d per flow", f.Name, len(rules), MaxRules)
	}
	rs := make([]Rule, 0, len(rules))
	for _, s := range rules {
		r, err := ParseRule(s)
		if err != nil {
			return Filter{}, fmt.Errorf("flow %s: %v", f.Name, err)
		}
		rs = append(rs, r)
	}
	flt, err := NewFilter(rs)
	if err != nil {
		return Filter{}, fmt.Errorf("flow %s: %v", f.Name, err)
	}
	return flt, nil
}

// Check says what is wrong with a flow, or nil.
func (f Flow) Check() error {
	if !nameRE.MatchString(f.Name) {
		return fmt.Errorf("flow name %q: want letters, digits, '_', '.', ':' or '-', up to 63", f.Name)
	}
	if !validIfname(f.Port) {
		return fmt.Errorf("flow %s: port %q: want the name of the interface to tap", f.Name, f.Port)
	}
	if f.Direction < In || f.Direction > Both {
		return fmt.Errorf("flow %s: no direction: want in, out or both", f.Name)
	}
	_, err := f.Filter()
	return err
}

// Set is every service and flow one host mirrors with.
type Set struct {
	Services []Service `json:"services"`
	Flows    []Flow    `json:"flows"`
}

// MaxServices and MaxFlows bound a set (the kernel's services map has
// room for 4,095; flows have no kernel limit but their programs).
const (
	MaxServices = 4095
	MaxFlows    = 4096
)

// Check says what is wrong with a set: each part, unique names, flows of
// services that exist, a port delivery that is not also tapped.
func (s Set) Check() error {
	if len(s.Services) > MaxServices {
		return fmt.Errorf("%d tap services: at most %d", len(s.Services), MaxServices)
	}
	if len(s.Flows) > MaxFlows {
		return fmt.Errorf("%d tap flows: at most %d", len(s.Flows), MaxFlows)
	}
	svc := map[string]Service{}
	for _, x := range s.Services {
		if err := x.Check(); err != nil {
			return err
		}
		if _, dup := svc[x.Name]; dup {
			return fmt.Errorf("tap service %s defined twice", x.Name)
		}
		svc[x.Name] = x
	}
	fl := map[string]bool{}
	for _, f := range s.Flows {
		if err := f.Check(); err != nil {
			return err
		}
		if fl[f.Name] {
			return fmt.Errorf("tap flow %s defined twice", f.Name)
		}
		fl[f.Name] = true
		x, ok := svc[f.Service]
		if !ok {
			return fmt.Errorf("flow %s: no tap service %q (add it first: overcast mirror service add %s --to ...)", f.Name, f.Service, f.Service)
		}
		if x.Port == f.Port {
			return fmt.Errorf("flow %s taps %s, where its service %s delivers: copies would be tapped again", f.Name, f.Port, x.Name)
		}
	}
	return nil
}

// Service finds a service by name.
func (s Set) Service(name string) (Service, bool) {
	i := slices.IndexFunc(s.Services, func(x Service) bool { return x.Name == name })
	if i < 0 {
		return Service{}, false
	}
	return s.Services[i], true
}

// Merge is s with t's services and flows added; a name in both is an error.
func (s Set) Merge(t Set) (Set, error) {
	out := Set{Services: slices.Clone(s.Services), Flows: slices.Clone(s.Flows)}
	for _, x := range t.Services {
		if _, ok := s.Service(x.Name); ok {
			return Set{}, fmt.Errorf("tap service %s is in the config file and was added at run time: del one of them", x.Name)
		}
		out.Services = append(out.Services, x)
	}
	for _, f := range t.Flows {
		if slices.ContainsFunc(s.Flows, func(g Flow) bool { return g.Name == f.Name }) {
			return Set{}, fmt.Errorf("tap flow %s is in the config file and was added at run time: del one of them", f.Name)
		}
		out.Flows = append(out.Flows, f)
	}
	return out, nil
}

// Counters are a flow's (or, summed, a service's) packet counts.
type Counters struct {
	Mirrored    uint64 `json:"mirrored"`
	Bytes       uint64 `json:"bytes"`
	Skipped     uint64 `json:"skipped"`
	RateDropped uint64 `json:"rate_dropped"`
	Truncated   uint64 `json:"truncated"`
	SendErrors  uint64 `json:"send_errors"`
}

// Add sums counters.
func (c *Counters) Add(o Counters) {
	c.Mirrored += o.Mirrored
	c.Bytes += o.Bytes
	c.Skipped += o.Skipped
	c.RateDropped += o.RateDropped
	c.Truncated += o.Truncated
	c.SendErrors += o.SendErrors
}
