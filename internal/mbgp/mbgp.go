// Package mbgp is the seam between the daemon and multiprotocol BGP for
// the IPv4 multicast address family (RFC 4760, SAFI 2): the routes whose
// best paths RPF prefers to the unicast table, and the BGP details MSDP's
// peer-RPF rules read. The speaker itself is GoBGP (package gobgp); Table
// is an in-memory one for tests and simulations.
package mbgp

import (
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Config is the BGP speaker's settings.
type Config struct {
	AS        uint32
	RouterID  netip.Addr
	Listen    []netip.Addr // addresses to accept sessions on (none: all)
	Port      int          // 179 when 0; -1: do not listen
	Neighbors []Neighbor
	// Networks are announced in the IPv4 multicast family (next hop self).
	Networks []netip.Prefix
}

// Neighbor is one configured BGP neighbour and, in views, its state.
type Neighbor struct {
	Address  netip.Addr
	AS       uint32
	Local    netip.Addr // session source; zero: the kernel's choice
	Password string     // TCP-MD5
	Multihop uint8      // eBGP multihop TTL; 0: directly connected

	// State, in Neighbors().
	State    string
	Since    time.Time
	Received int // IPv4 multicast prefixes received
	Accepted int // ... of which best paths
}

// Route is a best path of the IPv4 multicast table.
type Route struct {
	Prefix   netip.Prefix
	NextHop  netip.Addr
	Peer     netip.Addr // the neighbour it came from; zero: originated here
	PeerAS   uint32
	External bool // learned over eBGP
	ASPath   []uint32
	MED      uint32
	Local    bool // originated here
	Age      time.Time
}

// Speaker runs BGP for the daemon.
type Speaker interface {
	Start(cfg Config) error
	Reconfigure(cfg Config) error
	Stop()
	Lookup(a netip.Addr) (Route, bool)
	Routes() []Route
	Neighbors() []Neighbor
}

// Table is a set of best paths with longest-prefix lookup, safe for one
// writer and many readers: the speaker's watcher writes, the daemon reads.
type Table struct {
	mu     sync.RWMutex
	routes map[netip.Prefix]Route
}

// NewTable returns an empty table.
func NewTable() *Table { return &Table{routes: map[netip.Prefix]Route{}} }

// Set installs (or replaces) the best path of a prefix.
func (t *Table) Set(r Route) {
	t.mu.Lock()
	t.routes[r.Prefix.Masked()] = r
	t.mu.Unlock()
}

// Delete removes a prefix.
func (t *Table) Delete(p netip.Prefix) {
	t.mu.Lock()
	delete(t.routes, p.Masked())
	t.mu.Unlock()
}

// Lookup finds the longest prefix holding a.
func (t *Table) Lookup(a netip.Addr) (Route, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for bits := a.BitLen(); bits >= 0; bits-- {
		p, _ := a.Prefix(bits)
		if r, ok := t.routes[p]; ok {
			return r, true
		}
	}
	return Route{}, false
}

// Routes lists the table by prefix.
func (t *Table) Routes() []Route {
	t.mu.RLock()
	out := make([]Route, 0, len(t.routes))
	for _, r := range t.routes {
		out = append(out, r)
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b Route) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
	return out
}

// Static is a Speaker with a fixed table and no sessions (tests,
// simulations).
type Static struct {
	*Table
	Cfg Config
}

func (s *Static) Start(cfg Config) error       { s.Cfg = cfg; return nil }
func (s *Static) Reconfigure(cfg Config) error { s.Cfg = cfg; return nil }
func (s *Static) Stop()                        {}
func (s *Static) Neighbors() []Neighbor        { return slices.Clone(s.Cfg.Neighbors) }
