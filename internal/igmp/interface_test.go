package igmp

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"overcast/internal/packet/igmp"
	"overcast/internal/packet/ip4"
)

var (
	t0     = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	me     = netip.MustParseAddr("10.0.1.1")
	lower  = netip.MustParseAddr("10.0.1.0")
	h1     = netip.MustParseAddr("10.0.1.10")
	h2     = netip.MustParseAddr("10.0.1.11")
	grp    = netip.MustParseAddr("239.1.1.1")
	s1     = netip.MustParseAddr("10.0.0.10")
	s2     = netip.MustParseAddr("10.0.0.11")
	ssmGrp = netip.MustParseAddr("232.1.1.1")
)

// rig drives one Interface on a virtual clock and records what it sends.
type rig struct {
	t    *testing.T
	now  time.Time
	ifc  *Interface
	sent []Packet
}

func newRig(t *testing.T, cfg Config) *rig {
	r := &rig{t: t, now: t0}
	var out Output
	r.ifc, out = NewInterface(cfg, me, r.now)
	r.sent = append(r.sent, out.Send...)
	return r
}

func (r *rig) rx(src netip.Addr, m igmp.Message) Output {
	out := r.ifc.Receive(r.now, ip4.Header{Src: src, TTL: 1, Protocol: ip4.ProtoIGMP, RouterAlert: true}, m.Marshal())
	r.sent = append(r.sent, out.Send...)
	return out
}

// advance moves the clock by d, firing every deadline on the way in order.
func (r *rig) advance(d time.Duration) Output {
	end := r.now.Add(d)
	var all Output
	for spins := 0; ; spins++ {
		if spins > 100000 {
			r.t.Fatalf("advance: NextDeadline keeps returning %v at %v (timers do not fire)", r.ifc.NextDeadline(), r.now)
		}
		next := r.ifc.NextDeadline()
		if next.IsZero() || next.After(end) {
			break
		}
		if next.After(r.now) {
			r.now = next
		}
		var out Output
		r.ifc.Advance(r.now, &out)
		all.Send = append(all.Send, out.Send...)
		all.Changed = append(all.Changed, out.Changed...)
	}
	r.now = end
	r.sent = append(r.sent, all.Send...)
	return all
}

func (r *rig) takeSent() []Packet { s := r.sent; r.sent = nil; return s }

func v3(t igmp.RecordType, g netip.Addr, srcs ...netip.Addr) *igmp.V3Report {
	return &igmp.V3Report{Records: []igmp.GroupRecord{{Type: t, Group: g, Sources: srcs}}}
}

func TestStartupAndGeneralQueries(t *testing.T) {
	r := newRig(t, Config{})
	sent := r.takeSent()
	if len(sent) != 1 || sent[0].Dst != igmp.AllSystems {
		t.Fatalf("startup sent %+v", sent)
	}
	q := sent[0].Msg.(*igmp.Query)
	if q.Version != 3 || !q.IsGeneral() || q.MaxResp != 10*time.Second || q.QQI != 125*time.Second || q.QRV != 2 {
		t.Fatalf("general query %+v", q)
	}
	// Second startup query after QI/4, then every QI.
	r.advance(32 * time.Second) // StartupQueryInterval = QI/4 = 31.25s
	if n := len(r.takeSent()); n != 1 {
		t.Fatalf("%d queries in startup interval", n)
	}
	r.advance(125 * time.Second)
	if n := len(r.takeSent()); n != 1 {
		t.Fatalf("%d queries in first query interval", n)
	}
	r.advance(10 * 125 * time.Second)
	if n := len(r.takeSent()); n != 10 {
		t.Fatalf("%d queries in 10 intervals", n)
	}
}

func TestQuerierElection(t *testing.T) {
	r := newRig(t, Config{})
	r.takeSent()
	// A higher address querying does not displace us.
	r.rx(netip.MustParseAddr("10.0.1.200"), &igmp.Query{Version: 3, MaxResp: 10 * time.Second})
	if q, _ := r.ifc.IsQuerier(); !q {
		t.Fatal("lost election to a higher address")
	}
	// A lower address does.
	r.rx(lower, &igmp.Query{Version: 2, MaxResp: 10 * time.Second})
	if q, who := r.ifc.IsQuerier(); q || who != lower {
		t.Fatalf("querier=%v %s after lower query", q, who)
	}
	// While it keeps querying we stay quiet, however long.
	for range 10 {
		r.advance(125 * time.Second)
		r.rx(lower, &igmp.Query{Version: 2, MaxResp: 10 * time.Second})
	}
	if s := r.takeSent(); len(s) != 0 {
		t.Fatalf("non-querier sent %d packets", len(s))
	}
	// A non-querier still tracks membership.
	r.rx(h1, &igmp.Report{Version: 2, Group: grp})
	if !r.ifc.Forwards(grp, s1) {
		t.Fatal("non-querier did not record membership")
	}
	// It goes silent: after the other-querier-present interval (255s) we take over.
	r.advance(254 * time.Second)
	if q, _ := r.ifc.IsQuerier(); q {
		t.Fatal("took over too early")
	}
	r.advance(2 * time.Second)
	if q, _ := r.ifc.IsQuerier(); !q {
		t.Fatal("did not take over after other-querier-present interval")
	}
	if s := r.takeSent(); len(s) != 1 || !s[0].Msg.(*igmp.Query).IsGeneral() {
		t.Fatalf("takeover sent %+v", s)
	}
}

func TestV2LeaveLastMemberQueries(t *testing.T) {
	r := newRig(t, Config{Version: 2})
	r.takeSent()
	out := r.rx(h1, &igmp.Report{Version: 2, Group: grp})
	if !slices.Contains(out.Changed, grp) || !r.ifc.Forwards(grp, s1) {
		t.Fatalf("join: changed %v", out.Changed)
	}
	r.rx(h1, &igmp.Leave{Group: grp})
	sent := r.takeSent()
	if len(sent) != 1 || sent[0].Dst != grp || sent[0].Msg.(*igmp.Query).Group != grp || sent[0].Msg.(*igmp.Query).Version != 2 {
		t.Fatalf("leave sent %+v", sent)
	}
	// Still forwarding within the last member query time...
	out = r.advance(1999 * time.Millisecond)
	if !r.ifc.Forwards(grp, s1) || len(r.takeSent()) != 1 {
		t.Fatal("expected forwarding and one retransmission before LMQT")
	}
	// ...and not after it (LMQI 1s x LMQC 2).
	out = r.advance(2 * time.Millisecond)
	if r.ifc.Forwards(grp, s1) || !slices.Contains(out.Changed, grp) {
		t.Fatalf("still forwarding after LMQT, changed %v", out.Changed)
	}
}

func TestReportDuringLastMemberQueryKeepsGroup(t *testing.T) {
	r := newRig(t, Config{Version: 2})
	r.rx(h1, &igmp.Report{Version: 2, Group: grp})
	r.rx(h2, &igmp.Report{Version: 2, Group: grp})
	r.rx(h1, &igmp.Leave{Group: grp})
	r.advance(500 * time.Millisecond)
	r.rx(h2, &igmp.Report{Version: 2, Group: grp}) // h2 answers the query
	r.advance(10 * time.Second)
	if !r.ifc.Forwards(grp, s1) {
		t.Fatal("group dropped although a member answered")
	}
}

func TestMembershipTimeout(t *testing.T) {
	r := newRig(t, Config{})
	r.rx(h1, v3(igmp.ChangeToExclude, grp))
	r.advance(259 * time.Second) // GMI = 2*125 + 10
	if !r.ifc.Forwards(grp, s1) {
		t.Fatal("expired before GMI")
	}
	out := r.advance(2 * time.Second)
	if r.ifc.Forwards(grp, s1) || !slices.Contains(out.Changed, grp) {
		t.Fatal("not expired after GMI")
	}
}

func TestV3SourceSpecific(t *testing.T) {
	r := newRig(t, Config{})
	r.rx(h1, v3(igmp.AllowNewSources, ssmGrp, s1))
	if !r.ifc.Forwards(ssmGrp, s1) || r.ifc.Forwards(ssmGrp, s2) {
		t.Fatal("INCLUDE {s1} must forward s1 only")
	}
	// BLOCK s1: group-and-source query, then gone after LMQT.
	r.takeSent()
	r.rx(h1, v3(igmp.BlockOldSources, ssmGrp, s1))
	sent := r.takeSent()
	if len(sent) != 1 {
		t.Fatalf("block sent %d", len(sent))
	}
	if q := sent[0].Msg.(*igmp.Query); q.Group != ssmGrp || !slices.Equal(q.Sources, []netip.Addr{s1}) {
		t.Fatalf("query %+v", q)
	}
	r.advance(2100 * time.Millisecond)
	if r.ifc.Forwards(ssmGrp, s1) {
		t.Fatal("s1 still forwarded after block and LMQT")
	}
}

func TestV3ExcludeSources(t *testing.T) {
	r := newRig(t, Config{})
	r.rx(h1, v3(igmp.ChangeToExclude, grp, s2)) // everything but s2
	if !r.ifc.Forwards(grp, s1) || r.ifc.Forwards(grp, s2) {
		t.Fatal("EXCLUDE {s2}")
	}
	r.rx(h2, v3(igmp.AllowNewSources, grp, s2)) // another host wants s2 too
	if !r.ifc.Forwards(grp, s2) {
		t.Fatal("ALLOW s2 in EXCLUDE mode")
	}
}

func TestV1CompatibilityIgnoresLeave(t *testing.T) {
	r := newRig(t, Config{})
	r.rx(h1, &igmp.Report{Version: 1, Group: grp})
	r.rx(h2, &igmp.Leave{Group: grp})
	r.advance(5 * time.Second)
	if !r.ifc.Forwards(grp, s1) {
		t.Fatal("leave honoured while a v1 host is present")
	}
	if g := r.ifc.Groups(r.now); len(g) != 1 || g[0].Version != 1 {
		t.Fatalf("groups %+v", g)
	}
}

func TestExplicitTrackingFastLeave(t *testing.T) {
	r := newRig(t, Config{ExplicitTracking: true})
	r.rx(h1, v3(igmp.ChangeToExclude, grp))
	r.rx(h2, v3(igmp.ChangeToExclude, grp))
	r.takeSent()
	r.rx(h1, v3(igmp.ChangeToInclude, grp))
	if !r.ifc.Forwards(grp, s1) {
		t.Fatal("dropped while h2 is still a member")
	}
	r.takeSent()
	out := r.rx(h2, v3(igmp.ChangeToInclude, grp))
	if r.ifc.Forwards(grp, s1) || !slices.Contains(out.Changed, grp) {
		t.Fatal("last tracked host left but group still forwarded")
	}
	if s := r.takeSent(); len(s) != 0 {
		t.Fatalf("fast leave sent %d queries", len(s))
	}
	if r.ifc.Stats().FastLeaves != 1 {
		t.Fatalf("stats %+v", r.ifc.Stats())
	}
	// Without explicit tracking the same sequence waits for the query round.
	r2 := newRig(t, Config{})
	r2.rx(h1, v3(igmp.ChangeToExclude, grp))
	r2.rx(h1, v3(igmp.ChangeToInclude, grp))
	if !r2.ifc.Forwards(grp, s1) {
		t.Fatal("without tracking, leave must wait for LMQT")
	}
}

func TestExplicitTrackingSourceLeave(t *testing.T) {
	r := newRig(t, Config{ExplicitTracking: true})
	r.rx(h1, v3(igmp.AllowNewSources, ssmGrp, s1, s2))
	r.rx(h2, v3(igmp.AllowNewSources, ssmGrp, s2))
	r.rx(h1, v3(igmp.BlockOldSources, ssmGrp, s1, s2))
	if r.ifc.Forwards(ssmGrp, s1) || !r.ifc.Forwards(ssmGrp, s2) {
		t.Fatal("s1 wanted by nobody should go at once; s2 still wanted by h2")
	}
}

func TestMalformedCountedStateKept(t *testing.T) {
	r := newRig(t, Config{})
	r.rx(h1, v3(igmp.ChangeToExclude, grp))
	bad := [][]byte{nil, {0x22}, {0x22, 0, 0, 0, 0, 0, 0xff, 0xff}, {0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0}}
	for _, b := range bad {
		r.ifc.Receive(r.now, ip4.Header{Src: h2}, b)
	}
	st := r.ifc.Stats()
	if st.Malformed != uint64(len(bad)) {
		t.Fatalf("malformed %d, want %d", st.Malformed, len(bad))
	}
	if !r.ifc.Forwards(grp, s1) || len(r.ifc.Groups(r.now)) != 1 {
		t.Fatal("state lost")
	}
}

func TestStaticGroup(t *testing.T) {
	r := newRig(t, Config{StaticGroups: []netip.Addr{grp}})
	r.advance(time.Hour)
	if !r.ifc.Forwards(grp, s1) {
		t.Fatal("static group not forwarded")
	}
	out := r.ifc.SetStaticGroups(nil)
	if r.ifc.Forwards(grp, s1) || !slices.Contains(out.Changed, grp) {
		t.Fatal("static group removal")
	}
}

// host is a naive RFC 3376 section 5 host: its own filter state, the
// state-change records it sends, and its answers to queries.
type simHost struct {
	addr    netip.Addr
	mode    FilterMode
	sources map[netip.Addr]bool
}

func (h *simHost) wants(s netip.Addr) bool {
	return (h.mode == Include) == h.sources[s]
}

func (h *simHost) current(g netip.Addr) *igmp.V3Report {
	t := igmp.ModeIsInclude
	if h.mode == Exclude {
		t = igmp.ModeIsExclude
	} else if len(h.sources) == 0 {
		return nil
	}
	return v3(t, g, keys(h.sources)...)
}

// answer is section 5.2: the host's reply to a query, if any.
func (h *simHost) answer(q *igmp.Query, g netip.Addr) *igmp.V3Report {
	if len(q.Sources) == 0 {
		return h.current(g)
	}
	var want []netip.Addr
	for _, s := range q.Sources {
		if h.wants(s) {
			want = append(want, s)
		}
	}
	if len(want) == 0 {
		return nil
	}
	return v3(igmp.ModeIsInclude, g, want...)
}

func keys(m map[netip.Addr]bool) []netip.Addr {
	var out []netip.Addr
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// TestSourceStateAgainstOracle drives the router with random host behaviour
// and checks, once queries have been answered, that it forwards exactly the
// sources at least one host wants (the union of host states, section 3.2).
func TestSourceStateAgainstOracle(t *testing.T) {
	universe := []netip.Addr{s1, s2, netip.MustParseAddr("10.0.0.12"), netip.MustParseAddr("10.0.0.13")}
	other := netip.MustParseAddr("10.9.9.9") // never named by any host
	for seed := range uint64(300) {
		rnd := rand.New(rand.NewPCG(seed, 7))
		r := newRig(t, Config{ExplicitTracking: seed%2 == 1})
		hosts := []*simHost{}
		for i := range 3 {
			hosts = append(hosts, &simHost{addr: netip.AddrFrom4([4]byte{10, 0, 1, byte(20 + i)}), sources: map[netip.Addr]bool{}})
		}
		for range 12 {
			h := hosts[rnd.IntN(len(hosts))]
			s := universe[rnd.IntN(len(universe))]
			var rep *igmp.V3Report
			switch rnd.IntN(4) {
			case 0: // allow a source
				if h.mode == Include {
					h.sources[s] = true
				} else {
					delete(h.sources, s)
				}
				rep = v3(igmp.AllowNewSources, grp, s)
			case 1: // block a source
				if h.mode == Include {
					delete(h.sources, s)
				} else {
					h.sources[s] = true
				}
				rep = v3(igmp.BlockOldSources, grp, s)
			case 2: // switch to EXCLUDE(s)
				h.mode, h.sources = Exclude, map[netip.Addr]bool{s: true}
				rep = v3(igmp.ChangeToExclude, grp, s)
			case 3: // switch to INCLUDE(s) or leave
				h.mode, h.sources = Include, map[netip.Addr]bool{}
				if rnd.IntN(2) == 0 {
					h.sources[s] = true
				}
				rep = v3(igmp.ChangeToInclude, grp, keys(h.sources)...)
			}
			if seed == 15 && testing.Verbose() {
				t.Logf("%s sends %+v; groups %+v", h.addr, rep.Records, r.ifc.Groups(r.now))
			}
			r.rx(h.addr, rep)
			// Hosts answer every query the router sends, over a few seconds.
			answer := func() {
				for _, p := range r.takeSent() {
					for _, hh := range hosts {
						if a := hh.answer(p.Msg.(*igmp.Query), grp); a != nil {
							r.rx(hh.addr, a)
						}
					}
				}
			}
			for range 4 {
				answer()
				r.advance(time.Second)
			}
			// Safety at every step: never miss a source some host wants.
			for _, s := range append(universe, other) {
				for _, h := range hosts {
					if h.wants(s) && !r.ifc.Forwards(grp, s) {
						t.Fatalf("seed %d: host %s wants %s but router does not forward it; groups %+v", seed, h.addr, s, r.ifc.Groups(r.now))
					}
				}
			}
		}
		// Exactness once the source timers have run their course with hosts
		// answering general queries (section 6.4: sources a report names but
		// nobody asked for sit in the requested list until their timer ends).
		for range 3 * 260 {
			for _, p := range r.takeSent() {
				for _, hh := range hosts {
					if a := hh.answer(p.Msg.(*igmp.Query), grp); a != nil {
						r.rx(hh.addr, a)
					}
				}
			}
			r.advance(time.Second)
		}
		for _, s := range append(universe, other) {
			want := false
			for _, h := range hosts {
				want = want || h.wants(s)
			}
			if got := r.ifc.Forwards(grp, s); got != want {
				t.Fatalf("seed %d: source %s: router forwards=%v, hosts want=%v; hosts %+v; groups %+v",
					seed, s, got, want, hosts, r.ifc.Groups(r.now))
			}
		}
	}
}

// The cached NextDeadline must never be later than the true one (a full
// scan): a late answer would fire timers late. Random reports, leaves,
// queries from another router and time steps over 40 groups.
func TestNextDeadlineCacheIsLowerBound(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	r := newRig(t, Config{ExplicitTracking: true})
	groups := make([]netip.Addr, 40)
	for i := range groups {
		groups[i] = netip.AddrFrom4([4]byte{239, 9, 0, byte(i)})
	}
	hosts := []netip.Addr{netip.MustParseAddr("10.0.0.50"), netip.MustParseAddr("10.0.0.51")}
	types := []igmp.RecordType{igmp.ModeIsInclude, igmp.ModeIsExclude, igmp.ChangeToInclude, igmp.ChangeToExclude, igmp.AllowNewSources, igmp.BlockOldSources}
	for step := range 5000 {
		g := groups[rnd.IntN(len(groups))]
		h := hosts[rnd.IntN(len(hosts))]
		switch rnd.IntN(6) {
		case 0:
			r.advance(time.Duration(1+rnd.IntN(3000)) * time.Millisecond)
		case 1:
			r.rx(h, &igmp.Leave{Group: g})
		case 2:
			// A group-specific query from a higher address: we stay the
			// querier, so leaves and blocks lower timers to the LMQT.
			r.rx(netip.MustParseAddr("10.0.1.200"), &igmp.Query{Version: 3, Group: g, MaxResp: time.Second, QRV: 2, QQI: 125 * time.Second})
		default:
			var srcs []netip.Addr
			for range rnd.IntN(3) {
				srcs = append(srcs, netip.AddrFrom4([4]byte{10, 1, 0, byte(rnd.IntN(4))}))
			}
			r.rx(h, v3(types[rnd.IntN(len(types))], g, srcs...))
		}
		cached := r.ifc.NextDeadline()
		shadow := *r.ifc // a full scan on a copy leaves the cache alone
		shadow.nextValid, shadow.touched = false, nil
		full := shadow.NextDeadline()
		if cached.After(full) || cached.IsZero() != full.IsZero() {
			t.Fatalf("step %d: cached deadline %v is later than the true one %v", step, cached, full)
		}
		if !cached.IsZero() && !cached.After(r.now) {
			// Every timer due by now has fired: a deadline in the past
			// would make the daemon spin.
			t.Fatalf("step %d: deadline %v is not after now %v", step, cached, r.now)
		}
	}
}

// This host's own receivers report from the interface's address (the
// overlay device's local receivers): their reports count; its own queries
// looped back do not; link-local groups are never tracked.
func TestOwnReportsCountOwnQueriesDoNot(t *testing.T) {
	r := newRig(t, Config{Version: 3})
	r.rx(me, &igmp.V3Report{Records: []igmp.GroupRecord{
		{Type: igmp.ChangeToExclude, Group: grp},
		{Type: igmp.ChangeToExclude, Group: netip.MustParseAddr("224.0.0.22")},
	}})
	if !r.ifc.Wants(grp) {
		t.Fatal("the host's own report was ignored")
	}
	if r.ifc.Wants(netip.MustParseAddr("224.0.0.22")) {
		t.Fatal("a link-local group is tracked")
	}
	r.rx(me, r.ifc.generalQuery())
	if q, _ := r.ifc.IsQuerier(); !q || r.ifc.Stats().RxQueries != 0 {
		t.Fatal("our own looped-back query was taken for another querier's")
	}
}
