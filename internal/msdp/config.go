// Package msdp is the MSDP protocol core (RFC 3618): peer sessions, the
// SA cache, SA origination, peer-RPF forwarding, mesh groups, SA filters
// and limits. Like the PIM core it takes events and the time and returns
// what to do (Result); it never touches sockets or the clock. The daemon
// carries its bytes over TCP (internal/daemon/msdp.go).
package msdp

import (
	"fmt"
	"net/netip"
	"time"
)

// Timers of RFC 3618 section 5 and 11.
const (
	DefaultKeepalive       = 60 * time.Second // KeepAlive-Period
	DefaultHoldTime        = 75 * time.Second // HoldTime-Period
	DefaultConnectRetry    = 30 * time.Second // ConnectRetry-Period
	DefaultSAAdvertisement = 60 * time.Second // SA-Advertisement-Period
	// DefaultSAState is how long a cached SA lives without being
	// refreshed (SG-State-Period: at least SA-Advertisement-Period plus
	// SA-Hold-Down-Period, 90 s).
	DefaultSAState = 150 * time.Second
)

// Config is one router's MSDP settings.
type Config struct {
	// Originator is the RP address put in the SAs this router originates
	// (an anycast RP uses its unique address here).
	Originator netip.Addr
	Peers      []PeerConfig
	// StaticRPF names the RPF peer for SAs from originating RPs in a
	// prefix (rule v), tried in order.
	StaticRPF []StaticRPF
	// SALimit caps the SA cache across all peers (0: DefaultSALimit).
	SALimit int
	// Policies are the named SA filters peers refer to (plus Builtin).
	Policies map[string]Policy

	Keepalive, HoldTime, ConnectRetry, SAAdvertisement, SAState time.Duration
}

// DefaultSALimit bounds the cache when no limit is configured, so a
// hostile peer cannot grow it without bound.
const DefaultSALimit = 500_000

// PeerConfig is one MSDP peer.
type PeerConfig struct {
	Address netip.Addr
	// Local is this router's address for the session (connect-source);
	// it also decides who connects: the lower address connects, the
	// higher one listens.
	Local     netip.Addr
	MeshGroup string
	Password  string // TCP-MD5 key (RFC 2385); "" none
	FilterIn  string // policy name; "" accepts all
	FilterOut string
	SALimit   int // 0: no per-peer cap beyond the global one
	Default   bool
	// AS is the peer's autonomous system when it is not a BGP neighbour
	// (rule iv); 0 unknown.
	AS uint32
}

// StaticRPF is rule v: SAs originated by an RP in Prefix are accepted
// from Peer.
type StaticRPF struct {
	Prefix netip.Prefix
	Peer   netip.Addr
}

// Action is what a policy rule does with a matching SA entry.
type Action int

const (
	Deny Action = iota
	Permit
)

func (a Action) String() string {
	if a == Permit {
		return "permit"
	}
	return "deny"
}

// Rule matches an SA entry by source, group and originating RP; an
// invalid prefix matches anything.
type Rule struct {
	Action Action
	Source netip.Prefix
	Group  netip.Prefix
	RP     netip.Prefix
}

func (r Rule) matches(s, g, rp netip.Addr) bool {
	in := func(p netip.Prefix, a netip.Addr) bool { return !p.IsValid() || p.Contains(a) }
	return in(r.Source, s) && in(r.Group, g) && in(r.RP, rp)
}

// Policy is an ordered list of rules: the first match decides; no match
// denies (as an access list does).
type Policy []Rule

// Permits says whether the policy lets the entry through.
func (p Policy) Permits(s, g, rp netip.Addr) bool {
	for _, r := range p {
		if r.matches(s, g, rp) {
			return r.Action == Permit
		}
	}
	return false
}

// Builtin holds the policies every config can name. "scoped" is seed
// 002's SA policy: nothing that should stay inside a domain leaves it or
// enters it (private and loopback sources; the Auto-RP groups; SSM,
// administratively scoped, reserved and link-local groups); the rest
// passes.
var Builtin = map[string]Policy{
	"scoped": scopedPolicy(),
}

func scopedPolicy() Policy {
	var p Policy
	for _, s := range []string{"10.0.0.0/8", "127.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "0.0.0.0/8"} {
		p = append(p, Rule{Action: Deny, Source: netip.MustParsePrefix(s)})
	}
	for _, g := range []string{"224.0.0.0/24", "224.0.1.39/32", "224.0.1.40/32", "232.0.0.0/8", "239.0.0.0/8",
		"225.0.0.0/8", "226.0.0.0/8", "227.0.0.0/8", "228.0.0.0/8", "229.0.0.0/8", "230.0.0.0/8", "231.0.0.0/8"} {
		p = append(p, Rule{Action: Deny, Group: netip.MustParsePrefix(g)})
	}
	return append(p, Rule{Action: Permit})
}

// withDefaults fills unset timers.
func (c Config) withDefaults() Config {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&c.Keepalive, DefaultKeepalive)
	set(&c.HoldTime, DefaultHoldTime)
	set(&c.ConnectRetry, DefaultConnectRetry)
	set(&c.SAAdvertisement, DefaultSAAdvertisement)
	set(&c.SAState, DefaultSAState)
	if c.SALimit <= 0 {
		c.SALimit = DefaultSALimit
	}
	return c
}

// Validate checks what the core relies on; the config package reports
// errors with file and line before this runs.
func (c Config) Validate() error {
	seen := map[netip.Addr]bool{}
	for _, p := range c.Peers {
		if !p.Address.Is4() || !p.Local.Is4() {
			return fmt.Errorf("msdp peer %s: needs an IPv4 address and a local (source) address", p.Address)
		}
		if p.Address == p.Local {
			return fmt.Errorf("msdp peer %s: the peer address is this router's own", p.Address)
		}
		if seen[p.Address] {
			return fmt.Errorf("msdp peer %s: listed twice", p.Address)
		}
		seen[p.Address] = true
		for _, f := range []string{p.FilterIn, p.FilterOut} {
			if f == "" {
				continue
			}
			if _, ok := c.policy(f); !ok {
				return fmt.Errorf("msdp peer %s: no sa-filter policy %q", p.Address, f)
			}
		}
	}
	return nil
}

func (c Config) policy(name string) (Policy, bool) {
	if p, ok := c.Policies[name]; ok {
		return p, true
	}
	p, ok := Builtin[name]
	return p, ok
}
