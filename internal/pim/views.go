package pim

import (
	"net/netip"
	"slices"
	"time"
)

// DownView is one downstream interface's join/prune state.
type DownView struct {
	Iface   string
	State   DownState
	Expires time.Time
	Since   time.Time
}

// EntryView is one (*,G) or (S,G) entry for show commands.
type EntryView struct {
	Key        SG
	Created    time.Time
	Joined     bool // upstream Joined
	UpIface    string
	UpNeighbor netip.Addr
	SPT        bool
	RPTPruned  bool
	Register   RegState
	Keepalive  time.Time // zero when not running
	// JoinSuppressed is when our periodic join is next sent again: another
	// router on the upstream LAN joined for us (zero when not suppressed).
	JoinSuppressed time.Time
	Down           []DownView
	RPTDown        []DownView // (S,G,rpt) prunes received
	LocalIn        []string   // interfaces with local receivers (pim_include)
	Asserts        []AssertView
	// SPT threshold of the group, the source's last measured rate on the
	// shared tree (kbps), and whether the threshold was crossed.
	SPTThreshold SPTThreshold
	RateKbps     uint64
	SPTWanted    bool
}

// AssertView is one interface's assert state.
type AssertView struct {
	Iface   string
	State   AssertState
	Winner  AssertMetric // the winner's metric and address
	Expires time.Time
}

// Entries lists the tree state, (*,G) before (S,G), by group then source.
func (r *Router) Entries(now time.Time) []EntryView {
	var out []EntryView
	for k, e := range r.entries {
		v := EntryView{Key: k, Created: e.created, Joined: e.joined, UpIface: e.upIface, UpNeighbor: e.upNbr,
			SPT: e.sptBit, RPTPruned: e.rptPruned, Register: e.reg,
			SPTThreshold: r.sptThreshold(k.G), SPTWanted: e.sptWanted()}
		if e.traffic != nil {
			v.RateKbps = e.traffic.rateKbps
		}
		if r.katRunning(e, now) {
			v.Keepalive = e.kat
		}
		if e.lan != nil && e.joined && now.Before(e.lan.suppressed) {
			v.JoinSuppressed = e.lan.suppressed
		}
		for _, d := range e.down {
			v.Down = append(v.Down, DownView{Iface: d.iface, State: d.state, Expires: d.expiry, Since: d.since})
		}
		for _, d := range e.rptDown {
			v.RPTDown = append(v.RPTDown, DownView{Iface: d.iface, State: d.state, Expires: d.expiry, Since: d.since})
		}
		slices.SortFunc(v.Down, func(a, b DownView) int { return cmpString(a.Iface, b.Iface) })
		slices.SortFunc(v.RPTDown, func(a, b DownView) int { return cmpString(a.Iface, b.Iface) })
		for n, a := range e.asserts {
			v.Asserts = append(v.Asserts, AssertView{Iface: n, State: a.state, Winner: a.winner, Expires: a.timer})
		}
		slices.SortFunc(v.Asserts, func(a, b AssertView) int { return cmpString(a.Iface, b.Iface) })
		v.LocalIn = r.pimInclude(k)
		slices.Sort(v.LocalIn)
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b EntryView) int {
		if c := a.Key.G.Compare(b.Key.G); c != 0 {
			return c
		}
		if a.Key.S.IsValid() != b.Key.S.IsValid() {
			if !a.Key.S.IsValid() {
				return -1
			}
			return 1
		}
		return a.Key.S.Compare(b.Key.S)
	})
	return out
}

// FlowFlags says whether (S,G) is pruned off the shared tree upstream
// ((S,G,rpt) prune sent: Cisco's R flag) and whether its source crossed a
// packet or rate SPT threshold (J).
func (r *Router) FlowFlags(s, g netip.Addr) (rptPruned, thresholdCrossed bool) {
	e := r.entries[SG{S: s, G: g}]
	if e == nil {
		return false, false
	}
	return e.rptPruned, e.sptWanted()
}

// Measuring lists the (S,G)s whose traffic is being measured against a
// packet or rate SPT threshold and has not crossed it: the daemon reads
// their counters every second, whatever the pace of its full poll, so
// a crossing is acted on within a second.
func (r *Router) Measuring(now time.Time) []SG {
	var out []SG
	for _, e := range r.entries {
		if e.traffic != nil && !e.traffic.sptWanted && r.counting(e, now) {
			out = append(out, e.key)
		}
	}
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// LookupRPF answers `show rpf ADDR`: the interface and neighbour toward an
// address as PIM sees them (RPF' for a neighbour known by a secondary
// address is its primary).
func (r *Router) LookupRPF(a netip.Addr) (RPF, bool) {
	x, ok := r.rpf(a)
	if !ok {
		return x, false
	}
	if i := r.ifaces[x.Iface]; i != nil && x.Neighbor.IsValid() {
		if n := i.Neighbor(x.Neighbor); n != nil {
			x.Neighbor = n.Addr
		}
	}
	return x, true
}

// Flows lists every (S,G) with tree state: the daemon installs their
// forwarding entries before data arrives, so a burst of new flows does not
// wait on the kernel's small queue of unresolved packets.
// MayTakeRegister says whether a Register for (S,G) could be admitted as
// far as its inner packet tells (valid, outside SSM, its source allowed,
// room for its state): the data plane's own decapsulations are held to it.
func (r *Router) MayTakeRegister(s, g netip.Addr) bool {
	if !ValidInner(s, g) || r.cfg.RPs.IsSSM(g) {
		return false
	}
	if f := r.cfg.RegisterSources; len(f) > 0 && !containsAddr(f, s) {
		return false
	}
	if r.entries[SG{S: s, G: g}] != nil {
		return true
	}
	l := r.cfg.Limits
	return under(len(r.entries), l.Entries) && under(r.created[registerOrigin], l.RegisterSources)
}

func (r *Router) Flows() []SG {
	out := make([]SG, 0, len(r.entries))
	for k := range r.entries {
		if k.S.IsValid() {
			out = append(out, k)
		}
	}
	return out
}

// GroupFlows is Flows for one group.
func (r *Router) GroupFlows(g netip.Addr) []SG {
	var out []SG
	for _, e := range r.byGroup[g] {
		if e.key.S.IsValid() {
			out = append(out, e.key)
		}
	}
	return out
}

// JoinedUpstream is the interface an (S,G)'s join goes out of, when this
// router has joined toward the source (its own (S,G) state, not the
// shared tree's).
func (r *Router) JoinedUpstream(s, g netip.Addr) (string, bool) {
	if e := r.entries[SG{S: s, G: g}]; e != nil && e.joined && e.upIface != "" {
		return e.upIface, true
	}
	return "", false
}
