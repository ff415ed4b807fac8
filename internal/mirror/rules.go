// Package mirror is the pure core of traffic mirroring (tap services and
// tap flows, after OpenStack Tap-as-a-Service): the classification rules
// a tap flow selects packets with, and the reference classifier the
// kernel's data path is checked against.
//
// A rule list is ordered by rule number; the first rule that matches a
// packet decides (accept: mirror it, reject: do not); a packet no rule
// matches is not mirrored, and an empty list mirrors nothing (as AWS VPC
// Traffic Mirroring filters). Match fields: protocol, source and
// destination prefixes, source and destination port ranges (TCP, UDP),
// and a multicast group or (S,G) (a destination or source+destination
// match written the multicast way).
package mirror

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Action is what a matching rule does.
type Action uint8

const (
	Accept Action = 1
	Reject Action = 2
)

func (a Action) String() string {
	if a == Accept {
		return "accept"
	}
	return "reject"
}

// PortRange is an inclusive range; the zero range matches any port.
type PortRange struct{ Lo, Hi uint16 }

// Any says the range does not constrain.
func (p PortRange) Any() bool { return p.Lo == 0 && p.Hi == 0 }

func (p PortRange) has(x uint16) bool { return p.Any() || x >= p.Lo && x <= p.Hi }

// Rule is one classification rule.
type Rule struct {
	Number   int
	Action   Action
	Proto    uint8        // IP protocol; 0 any
	Src, Dst netip.Prefix // zero: any
	SrcPorts PortRange
	DstPorts PortRange
}

// Protocols by name in rules.
var protoNames = map[string]uint8{"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "pim": 103, "any": 0}

// MaxRules is how many rules one tap flow takes (no low cap: the
// kernel's program grows with the list, and 10,000 fits its limits).
const MaxRules = 10_000

// ParseRule reads the CLI and config syntax:
//
//	[NUMBER] accept|reject [proto P] [src PREFIX] [dst PREFIX] [sport N[-M]] [dport N[-M]] [group G] [sg S,G]
//
// group G is dst G (G a multicast address or prefix); sg S,G is src S dst G.
func ParseRule(s string) (Rule, error) {
	f := strings.Fields(s)
	var r Rule
	if len(f) > 0 {
		if n, err := strconv.Atoi(f[0]); err == nil {
			if n < 1 || n > 1<<20 {
				return r, fmt.Errorf("rule %q: number %d: want 1..%d", s, n, 1<<20)
			}
			r.Number, f = n, f[1:]
		}
	}
	if len(f) == 0 {
		return r, fmt.Errorf("rule %q: want accept or reject first", s)
	}
	switch f[0] {
	case "accept":
		r.Action = Accept
	case "reject":
		r.Action = Reject
	default:
		return r, fmt.Errorf("rule %q: %q: want accept or reject", s, f[0])
	}
	f = f[1:]
	for len(f) > 0 {
		if len(f) < 2 {
			return r, fmt.Errorf("rule %q: %s needs a value", s, f[0])
		}
		k, v := f[0], f[1]
		f = f[2:]
		var err error
		switch k {
		case "proto":
			p, ok := protoNames[v]
			if !ok {
				n, perr := strconv.Atoi(v)
				if perr != nil || n < 0 || n > 255 {
					return r, fmt.Errorf("rule %q: proto %q: want tcp, udp, icmp, igmp, gre, pim or 0-255", s, v)
				}
				p = uint8(n)
			}
			r.Proto = p
		case "src":
			r.Src, err = prefix(v)
		case "dst":
			r.Dst, err = prefix(v)
		case "group":
			r.Dst, err = prefix(v)
			if err == nil && !r.Dst.Addr().IsMulticast() {
				err = fmt.Errorf("group %s is not multicast", v)
			}
		case "sg":
			sv, gv, ok := strings.Cut(v, ",")
			if !ok {
				return r, fmt.Errorf("rule %q: sg %q: want SOURCE,GROUP", s, v)
			}
			if r.Src, err = prefix(sv); err == nil {
				r.Dst, err = prefix(gv)
			}
			if err == nil && !r.Dst.Addr().IsMulticast() {
				err = fmt.Errorf("group %s is not multicast", gv)
			}
		case "sport":
			r.SrcPorts, err = ports(v)
		case "dport":
			r.DstPorts, err = ports(v)
		default:
			return r, fmt.Errorf("rule %q: unknown field %q (want proto, src, dst, sport, dport, group or sg)", s, k)
		}
		if err != nil {
			return r, fmt.Errorf("rule %q: %s: %w", s, k, err)
		}
	}
	if (!r.SrcPorts.Any() || !r.DstPorts.Any()) && r.Proto != 6 && r.Proto != 17 {
		return r, fmt.Errorf("rule %q: ports need proto tcp or udp", s)
	}
	return r, nil
}

func prefix(v string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(v); err == nil && p.Addr().Is4() {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 address or prefix", v)
	}
	return netip.PrefixFrom(a, 32), nil
}

func ports(v string) (PortRange, error) {
	lo, hi, rng := strings.Cut(v, "-")
	a, err := strconv.ParseUint(lo, 10, 16)
	b := a
	if err == nil && rng {
		b, err = strconv.ParseUint(hi, 10, 16)
	}
	if err != nil || a == 0 || b < a {
		return PortRange{}, fmt.Errorf("%q: want N or N-M with 1 <= N <= M <= 65535", v)
	}
	return PortRange{uint16(a), uint16(b)}, nil
}

// String writes the rule back in ParseRule's syntax.
func (r Rule) String() string {
	var b strings.Builder
	if r.Number > 0 {
		fmt.Fprintf(&b, "%d ", r.Number)
	}
	b.WriteString(r.Action.String())
	if r.Proto != 0 {
		fmt.Fprintf(&b, " proto %d", r.Proto)
	}
	if r.Src.IsValid() {
		fmt.Fprintf(&b, " src %s", r.Src)
	}
	if r.Dst.IsValid() {
		fmt.Fprintf(&b, " dst %s", r.Dst)
	}
	for _, x := range []struct {
		k string
		p PortRange
	}{{"sport", r.SrcPorts}, {"dport", r.DstPorts}} {
		if !x.p.Any() {
			fmt.Fprintf(&b, " %s %d-%d", x.k, x.p.Lo, x.p.Hi)
		}
	}
	return b.String()
}

// Filter is a tap flow's ordered rules.
type Filter struct{ rules []Rule }

// NewFilter orders rules by number (rules without one keep their place
// after numbered ones, in the order given) and checks the list.
func NewFilter(rules []Rule) (Filter, error) {
	if len(rules) > MaxRules {
		return Filter{}, fmt.Errorf("%d rules: at most %d per flow", len(rules), MaxRules)
	}
	rs := slices.Clone(rules)
	seen := map[int]bool{}
	for _, r := range rs {
		if r.Number > 0 && seen[r.Number] {
			return Filter{}, fmt.Errorf("rule number %d used twice", r.Number)
		}
		seen[r.Number] = true
	}
	slices.SortStableFunc(rs, func(a, b Rule) int {
		switch {
		case a.Number == 0 && b.Number == 0:
			return 0
		case a.Number == 0:
			return 1
		case b.Number == 0:
			return -1
		}
		return a.Number - b.Number
	})
	return Filter{rules: rs}, nil
}

// Rules lists the rules in the order they are tried.
func (f Filter) Rules() []Rule { return slices.Clone(f.rules) }

// ErrNotIPv4 is what Classify says of a frame that is not IPv4.
var ErrNotIPv4 = errors.New("mirror: not an IPv4 packet")

// Packet is what the rules look at.
type Packet struct {
	Proto            uint8
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	HasPorts         bool // TCP or UDP, first fragment, long enough
}

// ParseIPv4 reads the fields of an IPv4 packet (header first).
func ParseIPv4(b []byte) (Packet, error) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return Packet{}, ErrNotIPv4
	}
	hl := int(b[0]&0x0f) * 4
	if hl < 20 || len(b) < hl {
		return Packet{}, ErrNotIPv4
	}
	p := Packet{Proto: b[9], Src: netip.AddrFrom4([4]byte(b[12:16])), Dst: netip.AddrFrom4([4]byte(b[16:20]))}
	firstFrag := binary.BigEndian.Uint16(b[6:8])&0x1fff == 0
	if (p.Proto == 6 || p.Proto == 17) && firstFrag && len(b) >= hl+4 {
		p.SrcPort, p.DstPort, p.HasPorts = binary.BigEndian.Uint16(b[hl:]), binary.BigEndian.Uint16(b[hl+2:]), true
	}
	return p, nil
}

// Matches says whether r matches p. A rule with ports never matches a
// packet without them (another protocol, a later fragment).
func (r Rule) Matches(p Packet) bool {
	if r.Proto != 0 && r.Proto != p.Proto {
		return false
	}
	if r.Src.IsValid() && !r.Src.Contains(p.Src) || r.Dst.IsValid() && !r.Dst.Contains(p.Dst) {
		return false
	}
	if !r.SrcPorts.Any() || !r.DstPorts.Any() {
		if !p.HasPorts || !r.SrcPorts.has(p.SrcPort) || !r.DstPorts.has(p.DstPort) {
			return false
		}
	}
	return true
}

// ClassifyOther decides a frame that is not an IPv4 packet (ARP, IPv6,
// a truncated header): only a rule without match fields matches it, so a
// flow with no rules (one "accept") mirrors every frame, and a flow with
// field rules mirrors none of these.
func (f Filter) ClassifyOther() (mirror bool, rule int) {
	for i, r := range f.rules {
		if r.Proto == 0 && !r.Src.IsValid() && !r.Dst.IsValid() && r.SrcPorts.Any() && r.DstPorts.Any() {
			return r.Action == Accept, i
		}
	}
	return false, -1
}

// Classify says whether the filter mirrors p, and the index of the rule
// that decided (-1: none matched, not mirrored).
func (f Filter) Classify(p Packet) (mirror bool, rule int) {
	for i, r := range f.rules {
		if r.Matches(p) {
			return r.Action == Accept, i
		}
	}
	return false, -1
}
