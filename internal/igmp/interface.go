package igmp

import (
	"errors"
	"net/netip"
	"slices"
	"time"

	"overcast/internal/packet/igmp"
	"overcast/internal/packet/ip4"
)

// FilterMode is a group's router filter mode (RFC 3376 section 6.2.1).
type FilterMode int

const (
	Include FilterMode = iota
	Exclude
)

func (m FilterMode) String() string {
	if m == Exclude {
		return "EXCLUDE"
	}
	return "INCLUDE"
}

// Packet is a query this interface wants sent.
type Packet struct {
	Dst netip.Addr
	Msg igmp.Message
}

// Output is what an event produced: packets to send and the groups whose
// forwarding decision may have changed.
type Output struct {
	Send    []Packet
	Changed []netip.Addr
}

func (o *Output) changed(g netip.Addr) {
	if !slices.Contains(o.Changed, g) {
		o.Changed = append(o.Changed, g)
	}
}

// Stats counts what the interface saw. Malformed packets are counted here and
// dropped; they never change state.
type Stats struct {
	RxQueries, RxV1Reports, RxV2Reports, RxV3Reports, RxLeaves uint64
	TxQueries                                                  uint64
	Malformed, BadChecksum, Truncated, Ignored                 uint64
	FastLeaves                                                 uint64
	GroupLimit, SourceLimit                                    uint64 // groups and sources refused at MaxGroups, MaxSources
	HostLimit                                                  uint64 // groups refused at a host's MaxGroupsPerHost
}

// group is the router state for one group (section 6.2.1) plus compatibility
// timers (section 7.3.2) and, with explicit tracking, who asked for it.
type group struct {
	addr     netip.Addr
	mode     FilterMode
	timer    time.Time // group timer; meaningful in EXCLUDE mode
	sources  sourceTimers
	v1Until  time.Time // IGMPv1 host present
	v2Until  time.Time // IGMPv2 host present
	created  time.Time
	reporter netip.Addr
	creator  netip.Addr           // the host whose report made it (MaxGroupsPerHost)
	hosts    map[netip.Addr]*host // explicit tracking only
}

// host is one reporter's own filter state, known exactly from IGMPv3 reports.
type host struct {
	mode    FilterMode
	sources map[netip.Addr]bool
	expires time.Time
}

// pending is a group-specific or group-and-source-specific query still to be
// retransmitted (section 6.6.3).
type pending struct {
	groupLeft int
	sources   map[netip.Addr]int
	next      time.Time
}

// Interface is IGMP on one router interface.
type Interface struct {
	cfg  Config
	addr netip.Addr

	querier      bool
	querierAddr  netip.Addr
	otherQuerier time.Time // other-querier-present timer
	nextGeneral  time.Time
	startupLeft  int

	groups map[netip.Addr]*group
	byHost map[netip.Addr]int // groups each host's reports made (MaxGroupsPerHost)

	// NextDeadline cache: a lower bound of every group timer, kept current
	// by re-reading only the groups a report touched (timers of other
	// groups cannot move earlier then). Queries, Advance and config
	// changes make it recompute in full.
	groupsNext time.Time
	nextValid  bool
	touched    map[netip.Addr]bool
	pending    map[netip.Addr]*pending
	stats      Stats

	// What a group forwarded before a change (snapshot), and after.
	fwdMode             FilterMode
	fwdBefore, fwdAfter []netip.Addr
}

// NewInterface starts IGMP on an interface whose primary address is addr.
// Unless NoQuerier is set it starts as querier and sends startup queries.
func NewInterface(cfg Config, addr netip.Addr, now time.Time) (*Interface, Output) {
	cfg = cfg.WithDefaults()
	i := &Interface{
		cfg:     cfg,
		addr:    addr,
		groups:  map[netip.Addr]*group{},
		pending: map[netip.Addr]*pending{},
	}
	var out Output
	if !cfg.NoQuerier {
		i.querier = true
		i.querierAddr = addr
		i.startupLeft = cfg.StartupQueryCount
		i.nextGeneral = now // first startup query goes out at once
		i.Advance(now, &out)
	}
	for _, g := range cfg.StaticGroups {
		out.changed(g)
	}
	return i, out
}

// Config returns the effective configuration.
func (i *Interface) Config() Config { return i.cfg }

// Stats returns the counters.
func (i *Interface) Stats() Stats { return i.stats }

// IsQuerier reports whether this router is the querier on the link, and the
// querier's address.
func (i *Interface) IsQuerier() (bool, netip.Addr) { return i.querier, i.querierAddr }

// OtherQuerierExpiry is when the other querier is presumed gone (zero when we are querier).
func (i *Interface) OtherQuerierExpiry() time.Time {
	if i.querier {
		return time.Time{}
	}
	return i.otherQuerier
}

// NextGeneralQuery is when the next general query is due (zero when not querier).
func (i *Interface) NextGeneralQuery() time.Time {
	if !i.querier {
		return time.Time{}
	}
	return i.nextGeneral
}

// Receive handles one IGMP packet heard on the interface.
func (i *Interface) Receive(now time.Time, h ip4.Header, payload []byte) Output {
	var out Output
	msg, err := igmp.Parse(payload)
	if err != nil {
		i.stats.Malformed++
		switch {
		case errors.Is(err, igmp.ErrChecksum):
			i.stats.BadChecksum++
		case errors.Is(err, igmp.ErrTruncated):
			i.stats.Truncated++
		}
		return out
	}
	if _, q := msg.(*igmp.Query); q && h.Src == i.addr {
		return out // our own query looped back (this host's own reports count: its receivers)
	}
	if linkLocalOnly(msg) {
		return out // 224.0.0.x is never routed: nothing to track (a host's own 224.0.0.22 included)
	}
	i.touch(msg)
	switch m := msg.(type) {
	case *igmp.Query:
		i.stats.RxQueries++
		i.onQuery(now, h.Src, m, &out)
	case *igmp.Report:
		if m.Version == 1 {
			i.stats.RxV1Reports++
		} else {
			i.stats.RxV2Reports++
		}
		i.onOldReport(now, h.Src, m, &out)
	case *igmp.Leave:
		i.stats.RxLeaves++
		i.onLeave(now, h.Src, m.Group, &out)
	case *igmp.V3Report:
		i.stats.RxV3Reports++
		for _, r := range m.Records {
			if !r.Group.IsLinkLocalMulticast() {
				i.onRecord(now, h.Src, r, &out)
			}
		}
	}
	return out
}

// linkLocalOnly says whether a report or leave names only link-local
// groups (224.0.0.0/24).
func linkLocalOnly(msg igmp.Message) bool {
	switch m := msg.(type) {
	case *igmp.Report:
		return m.Group.IsLinkLocalMulticast()
	case *igmp.Leave:
		return m.Group.IsLinkLocalMulticast()
	case *igmp.V3Report:
		for _, r := range m.Records {
			if !r.Group.IsLinkLocalMulticast() {
				return false
			}
		}
		return len(m.Records) > 0
	}
	return false
}

func (i *Interface) touch(msg igmp.Message) {
	if i.touched == nil {
		i.touched = map[netip.Addr]bool{}
	}
	switch m := msg.(type) {
	case *igmp.Report:
		i.touched[m.Group] = true
	case *igmp.Leave:
		i.touched[m.Group] = true
	case *igmp.V3Report:
		for _, r := range m.Records {
			i.touched[r.Group] = true
		}
	default:
		i.nextValid = false
	}
}

// CountMalformed counts a packet that failed before it reached IGMP (a bad IP header).
func (i *Interface) CountMalformed() { i.stats.Malformed++ }

// onQuery handles querier election (section 6.6.2) and, as a non-querier,
// lowering timers on the querier's specific queries (section 6.6.1).
func (i *Interface) onQuery(now time.Time, src netip.Addr, q *igmp.Query, out *Output) {
	if !src.IsValid() || src.IsUnspecified() {
		i.stats.Ignored++
		return
	}
	// Lowest address wins (section 6.6.2). A router that may not be querier
	// follows whoever queries.
	if src.Less(i.addr) || i.cfg.NoQuerier {
		if i.querier {
			i.querier = false
			i.startupLeft = 0
			clear(i.pending)
		}
		if i.querierAddr == i.addr || !i.querierAddr.IsValid() || src.Less(i.querierAddr) ||
			src == i.querierAddr || !now.Before(i.otherQuerier) {
			i.querierAddr = src
		}
		if src == i.querierAddr {
			i.otherQuerier = now.Add(i.cfg.OtherQuerierPresentInterval())
		}
	}
	if q.IsGeneral() || q.SuppressRtr || i.querier {
		return
	}
	g := i.groups[q.Group]
	if g == nil {
		return
	}
	lmqt := now.Add(i.cfg.LastMemberQueryTime())
	if len(q.Sources) == 0 {
		if g.mode == Exclude && g.timer.After(lmqt) {
			g.timer = lmqt
		}
		return
	}
	for _, s := range q.Sources {
		if t, ok := g.sources.get(s); ok && t.After(lmqt) {
			g.sources.set(s, lmqt)
		}
	}
}

// onOldReport handles IGMPv1/v2 reports: IS_EX({}) plus the host-present
// timer for compatibility mode (section 7.3.2).
func (i *Interface) onOldReport(now time.Time, src netip.Addr, r *igmp.Report, out *Output) {
	if i.full(r.Group, src) {
		return
	}
	g := i.group(now, r.Group, src, out)
	if r.Version == 1 {
		g.v1Until = now.Add(i.cfg.OlderHostPresentInterval())
	} else {
		g.v2Until = now.Add(i.cfg.OlderHostPresentInterval())
	}
	i.apply(now, src, g, igmp.ModeIsExclude, nil, out)
}

// onLeave handles an IGMPv2 leave as TO_IN({}) (section 7.3.2); ignored while
// IGMPv1 hosts are present.
func (i *Interface) onLeave(now time.Time, src netip.Addr, ga netip.Addr, out *Output) {
	g := i.groups[ga]
	if g == nil || now.Before(g.v1Until) {
		i.stats.Ignored++
		return
	}
	i.apply(now, src, g, igmp.ChangeToInclude, nil, out)
}

func (i *Interface) onRecord(now time.Time, src netip.Addr, r igmp.GroupRecord, out *Output) {
	g := i.groups[r.Group]
	if g == nil {
		// BLOCK and TO_IN({}) for an unknown group change nothing.
		if r.Type == igmp.BlockOldSources || ((r.Type == igmp.ChangeToInclude || r.Type == igmp.ModeIsInclude) && len(r.Sources) == 0) {
			return
		}
		if i.full(r.Group, src) {
			return
		}
		g = i.group(now, r.Group, src, out)
	}
	srcs := r.Sources
	if r.Type != igmp.BlockOldSources {
		srcs = i.capSources(g, distinct(srcs))
	}
	t := r.Type
	// Section 7.3.2: in v1/v2 compatibility mode, BLOCK is ignored and
	// TO_EX(x) is treated as TO_EX({}); in v1 mode TO_IN is ignored too.
	if now.Before(g.v1Until) || now.Before(g.v2Until) {
		switch t {
		case igmp.BlockOldSources:
			return
		case igmp.ChangeToExclude, igmp.ModeIsExclude:
			srcs = nil
		case igmp.ChangeToInclude:
			if now.Before(g.v1Until) {
				return
			}
		}
	}
	i.apply(now, src, g, t, srcs, out)
}

func (i *Interface) group(now time.Time, ga, src netip.Addr, out *Output) *group {
	g := i.groups[ga]
	if g == nil {
		g = &group{addr: ga, mode: Include, created: now, creator: src}
		i.groups[ga] = g
		if src.IsValid() {
			if i.byHost == nil {
				i.byHost = map[netip.Addr]int{}
			}
			i.byHost[src]++
		}
		out.changed(ga)
	}
	return g
}

// apply is RFC 3376 sections 6.4.1 and 6.4.2: the router's INCLUDE(A) /
// EXCLUDE(X,Y) state against one record. X is the sources with a running
// timer, Y those with a zero timer.
func (i *Interface) apply(now time.Time, src netip.Addr, g *group, t igmp.RecordType, b []netip.Addr, out *Output) {
	gmi := now.Add(i.cfg.GroupMembershipInterval())
	g.reporter = src
	i.snapshot(g)
	b = distinct(b)
	inB := func(s netip.Addr) bool { return slices.Contains(b, s) }
	var queryGroup bool
	var querySources []netip.Addr

	switch g.mode {
	case Include:
		A := &g.sources
		switch t {
		case igmp.ModeIsInclude, igmp.AllowNewSources:
			// INCLUDE(A+B); (B)=GMI
			for _, s := range b {
				A.set(s, gmi)
			}
		case igmp.ChangeToInclude:
			// INCLUDE(A+B); (B)=GMI; Send Q(G,A-B)
			for s := range A.all() {
				if !inB(s) {
					querySources = append(querySources, s)
				}
			}
			for _, s := range b {
				A.set(s, gmi)
			}
		case igmp.BlockOldSources:
			// INCLUDE(A); Send Q(G,A*B)
			for _, s := range b {
				if _, ok := A.get(s); ok {
					querySources = append(querySources, s)
				}
			}
		case igmp.ModeIsExclude, igmp.ChangeToExclude:
			// EXCLUDE(A*B, B-A); (B-A)=0; Delete(A-B); GT=GMI
			// TO_EX also: Send Q(G,A*B)
			var next sourceTimers
			for _, s := range b {
				if tm, ok := A.get(s); ok {
					next.set(s, tm)
					if t == igmp.ChangeToExclude {
						querySources = append(querySources, s)
					}
				} else {
					next.set(s, time.Time{})
				}
			}
			g.sources = next
			g.mode = Exclude
			g.timer = gmi
		}
	case Exclude:
		S := &g.sources // X: timer set, Y: zero timer
		inX := func(s netip.Addr) bool { tm, ok := S.get(s); return ok && !tm.IsZero() }
		inY := func(s netip.Addr) bool { tm, ok := S.get(s); return ok && tm.IsZero() }
		switch t {
		case igmp.ModeIsInclude, igmp.AllowNewSources:
			// EXCLUDE(X+A, Y-A); (A)=GMI
			for _, s := range b {
				S.set(s, gmi)
			}
		case igmp.ChangeToInclude:
			// EXCLUDE(X+A, Y-A); (A)=GMI; Send Q(G,X-A); Send Q(G)
			for s := range S.all() {
				if inX(s) && !inB(s) {
					querySources = append(querySources, s)
				}
			}
			for _, s := range b {
				S.set(s, gmi)
			}
			queryGroup = true
		case igmp.BlockOldSources:
			// EXCLUDE(X+(A-Y), Y); (A-X-Y)=Group Timer; Send Q(G,A-Y)
			for _, s := range b {
				if inY(s) {
					continue
				}
				if !inX(s) {
					S.set(s, g.timer)
				}
				querySources = append(querySources, s)
			}
		case igmp.ModeIsExclude, igmp.ChangeToExclude:
			// IS_EX: EXCLUDE(A-Y, Y*A); (A-X-Y)=GMI; Delete(X-A); Delete(Y-A); GT=GMI
			// TO_EX: same but (A-X-Y)=Group Timer and Send Q(G,A-Y)
			var next sourceTimers
			for _, s := range b {
				switch {
				case inY(s):
					next.set(s, time.Time{})
				case inX(s):
					tm, _ := S.get(s)
					next.set(s, tm)
					if t == igmp.ChangeToExclude {
						querySources = append(querySources, s)
					}
				default:
					if t == igmp.ModeIsExclude {
						next.set(s, gmi)
					} else {
						next.set(s, g.timer)
						querySources = append(querySources, s)
					}
				}
			}
			g.sources = next
			g.timer = gmi
		}
	}

	leaving := false
	if i.cfg.ExplicitTracking {
		leaving = i.track(now, src, g, t, setOf(b))
	}
	if leaving {
		// The last tracked host left: drop state now instead of querying.
		i.stats.FastLeaves++
		i.dropGroup(g.addr)
		delete(i.pending, g.addr)
		out.changed(g.addr)
		return
	}
	if i.cfg.ExplicitTracking && g.mode == Include && len(querySources) > 0 {
		// Sources no tracked host wants any more go at once.
		kept := querySources[:0]
		for _, s := range querySources {
			if !g.hostWants(s, now) {
				g.sources.del(s)
				i.stats.FastLeaves++
			} else {
				kept = append(kept, s)
			}
		}
		querySources = kept
	}
	if queryGroup {
		i.queryGroup(now, g, out)
	}
	if len(querySources) > 0 {
		i.querySources(now, g, querySources, out)
	}
	if g.mode == Include && len(g.sources) == 0 && !queryGroup {
		i.dropGroup(g.addr)
		delete(i.pending, g.addr)
	}
	if i.forwardingChanged(g) {
		out.changed(g.addr)
	}
}

// track updates the reporting host's own state (explicit tracking) and
// reports whether no tracked host wants the group any more. Only IGMPv3 hosts
// are tracked exactly; IGMPv2 reports suppress each other, so with a v2 host
// present the group is never fast-left.
func (i *Interface) track(now time.Time, src netip.Addr, g *group, t igmp.RecordType, B map[netip.Addr]bool) bool {
	if g.hosts == nil {
		g.hosts = map[netip.Addr]*host{}
	}
	h := g.hosts[src]
	if h == nil {
		h = &host{mode: Include, sources: map[netip.Addr]bool{}}
		g.hosts[src] = h
	}
	h.expires = now.Add(i.cfg.GroupMembershipInterval())
	switch t {
	case igmp.ChangeToInclude:
		h.mode, h.sources = Include, B
	case igmp.ModeIsExclude, igmp.ChangeToExclude:
		h.mode, h.sources = Exclude, B
	case igmp.AllowNewSources, igmp.ModeIsInclude:
		// IS_IN may answer a group-and-source query with only the queried
		// sources the host wants: it adds to what we know, never replaces it.
		for s := range B {
			if h.mode == Include {
				h.sources[s] = true
			} else {
				delete(h.sources, s)
			}
		}
	case igmp.BlockOldSources:
		for s := range B {
			if h.mode == Include {
				delete(h.sources, s)
			} else {
				h.sources[s] = true
			}
		}
	}
	if h.mode == Include && len(h.sources) == 0 {
		delete(g.hosts, src)
	}
	if now.Before(g.v1Until) || now.Before(g.v2Until) {
		return false
	}
	for _, h := range g.hosts {
		if now.Before(h.expires) {
			return false
		}
	}
	return true
}

func (g *group) hostWants(s netip.Addr, now time.Time) bool {
	if now.Before(g.v1Until) || now.Before(g.v2Until) {
		return true
	}
	for _, h := range g.hosts {
		if now.Before(h.expires) && (h.mode == Include) == h.sources[s] {
			return true
		}
	}
	return false
}

// forwarding is what the group forwards: its mode and the sources it
// forwards (INCLUDE) or blocks (EXCLUDE), sorted, appended to buf.
func (g *group) forwarding(buf []netip.Addr) (FilterMode, []netip.Addr) {
	for _, st := range g.sources {
		if g.mode == Include || st.t.IsZero() {
			buf = append(buf, st.addr)
		}
	}
	slices.SortFunc(buf, netip.Addr.Compare)
	return g.mode, buf
}

// snapshot records what g forwards; forwardingChanged then tells whether
// that changed. Both reuse the interface's buffers: a report storm of
// 10,000 groups allocates nothing here.
func (i *Interface) snapshot(g *group) {
	i.fwdMode, i.fwdBefore = g.forwarding(i.fwdBefore[:0])
}

func (i *Interface) forwardingChanged(g *group) bool {
	var mode FilterMode
	mode, i.fwdAfter = g.forwarding(i.fwdAfter[:0])
	return mode != i.fwdMode || !slices.Equal(i.fwdBefore, i.fwdAfter)
}

// due says whether any of the group's timers has run out (or it is an
// empty INCLUDE group, to be removed).
func (g *group) due(now time.Time) bool {
	if g.mode == Exclude && !now.Before(g.timer) || g.mode == Include && len(g.sources) == 0 {
		return true
	}
	for _, st := range g.sources {
		if !st.t.IsZero() && !now.Before(st.t) {
			return true
		}
	}
	for _, h := range g.hosts {
		if !now.Before(h.expires) {
			return true
		}
	}
	return false
}

// queryGroup is Q(G) (section 6.6.3.1): lower the group timer to LMQT and
// send LMQC group-specific queries. Only the querier does this.
func (i *Interface) queryGroup(now time.Time, g *group, out *Output) {
	if !i.querier {
		return
	}
	lmqt := now.Add(i.cfg.LastMemberQueryTime())
	if g.mode == Exclude && g.timer.After(lmqt) {
		g.timer = lmqt
	}
	p := i.pendingFor(g.addr, now)
	p.groupLeft = i.cfg.LastMemberQueryCount
	i.sendPending(now, g.addr, p, out)
}

// querySources is Q(G,A) (section 6.6.3.2): lower the source timers to LMQT
// and send LMQC group-and-source-specific queries. An IGMPv2 querier sends
// a group-specific query instead.
func (i *Interface) querySources(now time.Time, g *group, srcs []netip.Addr, out *Output) {
	if !i.querier {
		return
	}
	if i.cfg.Version < 3 {
		i.queryGroup(now, g, out)
		return
	}
	lmqt := now.Add(i.cfg.LastMemberQueryTime())
	p := i.pendingFor(g.addr, now)
	for _, s := range srcs {
		if t, ok := g.sources.get(s); ok && t.After(lmqt) {
			g.sources.set(s, lmqt)
		}
		p.sources[s] = i.cfg.LastMemberQueryCount
	}
	i.sendPending(now, g.addr, p, out)
}

func (i *Interface) pendingFor(ga netip.Addr, now time.Time) *pending {
	p := i.pending[ga]
	if p == nil {
		p = &pending{sources: map[netip.Addr]int{}}
		i.pending[ga] = p
	}
	return p
}

// sendPending sends one round of a group's pending specific queries.
func (i *Interface) sendPending(now time.Time, ga netip.Addr, p *pending, out *Output) {
	mrt := i.cfg.LastMemberQueryInterval
	if p.groupLeft > 0 {
		p.groupLeft--
		i.send(out, ga, &igmp.Query{Version: i.cfg.Version, MaxResp: mrt, Group: ga, QRV: uint8(min(i.cfg.Robustness, 7)), QQI: i.cfg.QueryInterval})
	}
	var srcs []netip.Addr
	for s, n := range p.sources {
		srcs = append(srcs, s)
		if n <= 1 {
			delete(p.sources, s)
		} else {
			p.sources[s] = n - 1
		}
	}
	if len(srcs) > 0 {
		slices.SortFunc(srcs, netip.Addr.Compare)
		// Keep each query within a 1500-byte MTU: 24 bytes of IP header, 12 of query.
		for len(srcs) > 0 {
			n := min(len(srcs), (1500-24-12)/4)
			i.send(out, ga, &igmp.Query{Version: 3, MaxResp: mrt, Group: ga, QRV: uint8(min(i.cfg.Robustness, 7)), QQI: i.cfg.QueryInterval, Sources: srcs[:n]})
			srcs = srcs[n:]
		}
	}
	if p.groupLeft == 0 && len(p.sources) == 0 {
		delete(i.pending, ga)
		return
	}
	p.next = now.Add(mrt)
}

func (i *Interface) send(out *Output, dst netip.Addr, m igmp.Message) {
	i.stats.TxQueries++
	out.Send = append(out.Send, Packet{Dst: dst, Msg: m})
}

func (i *Interface) generalQuery() *igmp.Query {
	q := &igmp.Query{Version: i.cfg.Version, MaxResp: i.cfg.QueryResponseInterval, Group: netip.IPv4Unspecified()}
	if q.Version >= 3 {
		q.QRV = uint8(min(i.cfg.Robustness, 7))
		q.QQI = i.cfg.QueryInterval
	}
	return q
}

// Advance runs every timer due at or before now (section 6.5 and the query
// timers) and appends what that produced to out.
func (i *Interface) Advance(now time.Time, out *Output) {
	i.nextValid = false
	// Querier: other-querier-present expiry and general queries.
	if !i.querier && !i.cfg.NoQuerier && !i.otherQuerier.IsZero() && !now.Before(i.otherQuerier) {
		i.querier = true
		i.querierAddr = i.addr
		i.nextGeneral = now
	}
	if i.querier && !now.Before(i.nextGeneral) {
		i.send(out, igmp.AllSystems, i.generalQuery())
		if i.startupLeft > 0 {
			i.startupLeft--
		}
		if i.startupLeft > 0 {
			i.nextGeneral = now.Add(i.cfg.StartupQueryInterval)
		} else {
			i.nextGeneral = now.Add(i.cfg.QueryInterval)
		}
	}
	// Pending specific-query retransmissions.
	for ga, p := range i.pending {
		if !now.Before(p.next) {
			i.sendPending(now, ga, p, out)
		}
	}
	// Group and source timers.
	for ga, g := range i.groups {
		if !g.due(now) {
			continue // nothing to do: the common case among thousands of groups
		}
		i.snapshot(g)
		for h, st := range g.hosts {
			if !now.Before(st.expires) {
				delete(g.hosts, h)
			}
		}
		if g.mode == Exclude && !now.Before(g.timer) {
			// Group timer expired in EXCLUDE: switch to INCLUDE with the
			// sources that still have running timers.
			g.mode = Include
			g.sources.deleteIf(func(_ netip.Addr, t time.Time) bool { return t.IsZero() || !now.Before(t) })
		}
		// Source timers that ran out: the source goes (INCLUDE) or moves
		// to the exclude list (EXCLUDE).
		expired := func(_ netip.Addr, t time.Time) bool { return !t.IsZero() && !now.Before(t) }
		if g.mode == Include {
			g.sources.deleteIf(expired)
		} else {
			for j, st := range g.sources {
				if expired(st.addr, st.t) {
					g.sources[j].t = time.Time{}
				}
			}
		}
		if g.mode == Include && len(g.sources) == 0 {
			i.dropGroup(ga)
			delete(i.pending, ga)
			out.changed(ga)
			continue
		}
		if i.forwardingChanged(g) {
			out.changed(ga)
		}
	}
}

// NextDeadline is the earliest time Advance has something to do (zero if none).
func (i *Interface) NextDeadline() time.Time {
	var d time.Time
	at := func(t time.Time) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	if i.querier {
		at(i.nextGeneral)
	} else if !i.cfg.NoQuerier {
		at(i.otherQuerier)
	}
	for _, p := range i.pending {
		at(p.next)
	}
	var gd time.Time
	groupAt := func(g *group) {
		for _, t := range g.timers() {
			if !t.IsZero() && (gd.IsZero() || t.Before(gd)) {
				gd = t
			}
		}
	}
	if i.nextValid {
		gd = i.groupsNext
		for ga := range i.touched {
			if g := i.groups[ga]; g != nil {
				groupAt(g)
			}
		}
	} else {
		for _, g := range i.groups {
			groupAt(g)
		}
		i.nextValid = true
	}
	clear(i.touched)
	i.groupsNext = gd
	at(gd)
	return d
}

// timers lists a group's running timers.
func (g *group) timers() []time.Time {
	var out []time.Time
	if g.mode == Exclude {
		out = append(out, g.timer)
	}
	for _, st := range g.sources {
		out = append(out, st.t)
	}
	for _, h := range g.hosts {
		out = append(out, h.expires)
	}
	return out
}

// Forwards reports whether traffic from source s to group g should be
// forwarded onto this interface (section 6.3), static groups included.
func (i *Interface) Forwards(ga, s netip.Addr) bool {
	if slices.Contains(i.cfg.StaticGroups, ga) {
		return true
	}
	g := i.groups[ga]
	if g == nil {
		return false
	}
	t, ok := g.sources.get(s)
	if g.mode == Include {
		return ok
	}
	return !ok || !t.IsZero()
}

// Wants reports whether any member on the interface wants group g at all.
func (i *Interface) Wants(ga netip.Addr) bool {
	return i.groups[ga] != nil || slices.Contains(i.cfg.StaticGroups, ga)
}

// SetStaticGroups replaces the static groups and reports which changed.
func (i *Interface) SetStaticGroups(gs []netip.Addr) Output {
	i.nextValid = false
	var out Output
	for _, g := range i.cfg.StaticGroups {
		if !slices.Contains(gs, g) {
			out.changed(g)
		}
	}
	for _, g := range gs {
		if !slices.Contains(i.cfg.StaticGroups, g) {
			out.changed(g)
		}
	}
	i.cfg.StaticGroups = slices.Clone(gs)
	return out
}

// distinct is b without repeated addresses (a copy only when it has some).
func distinct(b []netip.Addr) []netip.Addr {
	for j := 1; j < len(b); j++ {
		if slices.Contains(b[:j], b[j]) {
			c := slices.Clone(b)
			slices.SortFunc(c, netip.Addr.Compare)
			return slices.Compact(c)
		}
	}
	return b
}

func setOf(b []netip.Addr) map[netip.Addr]bool {
	m := make(map[netip.Addr]bool, len(b))
	for _, s := range b {
		m[s] = true
	}
	return m
}
