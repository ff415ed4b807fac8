// Package igmp is the router side of IGMPv1/v2/v3 on one interface: querier
// election, membership and source state (RFC 3376 section 6), compatibility
// with older hosts (section 7), and optional explicit host tracking for
// immediate leaves.
//
// It is a pure state machine: callers pass in packets and the current time and
// get back the queries to send and the groups whose forwarding changed. It
// never touches sockets, the kernel or the wall clock.
package igmp

import (
	"net/netip"
	"time"
)

// Config is the per-interface IGMP configuration. Zero fields take the
// RFC 3376 section 8 defaults (see WithDefaults).
type Config struct {
	Version                 int           // querier version, 2 or 3 (default 3)
	Robustness              int           // section 8.1 (default 2)
	QueryInterval           time.Duration // section 8.2 (default 125s)
	QueryResponseInterval   time.Duration // section 8.3 (default 10s)
	LastMemberQueryInterval time.Duration // section 8.8 (default 1s)
	LastMemberQueryCount    int           // section 8.9 (default Robustness)
	StartupQueryInterval    time.Duration // section 8.6 (default QueryInterval/4)
	StartupQueryCount       int           // section 8.7 (default Robustness)
	// ExplicitTracking keeps per-host state from IGMPv3 reports so that the
	// last host's leave removes forwarding at once, with no query round.
	ExplicitTracking bool
	// NoQuerier stops this router from ever becoming querier; it still
	// tracks membership from the reports it hears.
	NoQuerier bool
	// StaticGroups are forwarded to this interface whatever hosts report
	// (for receivers that cannot send IGMP).
	StaticGroups []netip.Addr
	// MaxGroups bounds the groups hosts can make on the interface (default
	// 10,000), MaxSources the sources of one group (default 1,024): past
	// them a report's new groups and sources are refused and counted
	// (Stats.GroupLimit, SourceLimit), the state there stays. -1: none.
	MaxGroups  int
	MaxSources int
	// MaxGroupsPerHost bounds the groups one host's reports can make on
	// the interface (0: no bound): one host on an access LAN cannot take
	// all of MaxGroups from the others. Groups another host made are
	// joined freely. Refusals count in Stats.HostLimit.
	MaxGroupsPerHost int
}

// WithDefaults fills zero fields with the RFC defaults.
func (c Config) WithDefaults() Config {
	if c.Version == 0 {
		c.Version = 3
	}
	if c.Robustness == 0 {
		c.Robustness = 2
	}
	if c.QueryInterval == 0 {
		c.QueryInterval = 125 * time.Second
	}
	if c.QueryResponseInterval == 0 {
		c.QueryResponseInterval = 10 * time.Second
	}
	if c.LastMemberQueryInterval == 0 {
		c.LastMemberQueryInterval = time.Second
	}
	if c.LastMemberQueryCount == 0 {
		c.LastMemberQueryCount = c.Robustness
	}
	if c.StartupQueryInterval == 0 {
		c.StartupQueryInterval = c.QueryInterval / 4
	}
	if c.StartupQueryCount == 0 {
		c.StartupQueryCount = c.Robustness
	}
	if c.MaxGroups == 0 {
		c.MaxGroups = 10_000
	}
	if c.MaxSources == 0 {
		c.MaxSources = 1024
	}
	return c
}

// GroupMembershipInterval is section 8.4: Robustness * QI + QRI.
func (c Config) GroupMembershipInterval() time.Duration {
	return time.Duration(c.Robustness)*c.QueryInterval + c.QueryResponseInterval
}

// OtherQuerierPresentInterval is section 8.5: Robustness * QI + QRI/2.
func (c Config) OtherQuerierPresentInterval() time.Duration {
	return time.Duration(c.Robustness)*c.QueryInterval + c.QueryResponseInterval/2
}

// LastMemberQueryTime is section 8.11: LMQI * LMQC.
func (c Config) LastMemberQueryTime() time.Duration {
	return c.LastMemberQueryInterval * time.Duration(c.LastMemberQueryCount)
}

// OlderHostPresentInterval is section 8.13: Robustness * QI + QRI.
func (c Config) OlderHostPresentInterval() time.Duration {
	return c.GroupMembershipInterval()
}

// Groups a router listens to on every interface: IGMPv2 leaves go to
// all-routers, IGMPv3 reports to all-IGMPv3-routers.
var (
	AllRoutersGroup = netip.MustParseAddr("224.0.0.2")
	V3ReportsGroup  = netip.MustParseAddr("224.0.0.22")
)
