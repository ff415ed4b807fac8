package pim

import (
	"fmt"
	"net/netip"
	"slices"
)

// DefaultSSMRange is the IANA source-specific block (RFC 4607).
var DefaultSSMRange = netip.MustParsePrefix("232.0.0.0/8")

// RPMapping maps a group range to a static RP.
type RPMapping struct {
	Range netip.Prefix
	RP    netip.Addr
}

// RPSet is the static RP configuration plus the SSM range: which groups
// are sparse-mode with which RP, and which are source-specific.
type RPSet struct {
	mappings []RPMapping // most specific first
	ssm      []netip.Prefix
}

// NewRPSet validates and orders the mappings. Ranges must be multicast
// prefixes, each at most once; RPs unicast.
func NewRPSet(mappings []RPMapping, ssm []netip.Prefix) (*RPSet, error) {
	mcast := netip.MustParsePrefix("224.0.0.0/4")
	seen := map[netip.Prefix]bool{}
	for _, m := range mappings {
		r := m.Range.Masked()
		if !r.IsValid() || !r.Addr().Is4() || r.Bits() < 4 || !mcast.Contains(r.Addr()) {
			return nil, fmt.Errorf("RP range %s is not inside 224.0.0.0/4", m.Range)
		}
		if !m.RP.Is4() || m.RP.IsMulticast() || m.RP.IsUnspecified() {
			return nil, fmt.Errorf("RP %s for %s is not a unicast IPv4 address", m.RP, m.Range)
		}
		if seen[r] {
			return nil, fmt.Errorf("RP range %s given twice", r)
		}
		seen[r] = true
	}
	for _, p := range ssm {
		if !p.IsValid() || !p.Addr().Is4() || !mcast.Contains(p.Masked().Addr()) {
			return nil, fmt.Errorf("SSM range %s is not inside 224.0.0.0/4", p)
		}
	}
	s := &RPSet{ssm: ssm}
	for _, m := range mappings {
		s.mappings = append(s.mappings, RPMapping{Range: m.Range.Masked(), RP: m.RP})
	}
	slices.SortStableFunc(s.mappings, func(a, b RPMapping) int { return b.Range.Bits() - a.Range.Bits() })
	return s, nil
}

// IsSSM says whether g is in an SSM range: only (S,G) state, never an RP.
func (s *RPSet) IsSSM(g netip.Addr) bool {
	for _, p := range s.ssm {
		if p.Contains(g) {
			return true
		}
	}
	return false
}

// RP returns the RP for g by longest-prefix match (RFC 7761 section 4.7.1
// for static RPs), and false for SSM groups, link-local groups and groups
// no range covers.
func (s *RPSet) RP(g netip.Addr) (netip.Addr, bool) {
	if s.IsSSM(g) || netip.MustParsePrefix("224.0.0.0/24").Contains(g) {
		return netip.Addr{}, false
	}
	for _, m := range s.mappings {
		if m.Range.Contains(g) {
			return m.RP, true
		}
	}
	return netip.Addr{}, false
}

// Mappings lists the mappings, most specific first.
func (s *RPSet) Mappings() []RPMapping { return slices.Clone(s.mappings) }

// SSMRanges lists the SSM ranges.
func (s *RPSet) SSMRanges() []netip.Prefix { return slices.Clone(s.ssm) }
