package pim

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// macroRouting routes the source and the RP out of "up".
type macroRouting map[netip.Addr]RPF

func (m macroRouting) Lookup(a netip.Addr) (RPF, bool) { r, ok := m[a]; return r, ok }

var (
	mS    = netip.MustParseAddr("10.9.0.5")
	mG    = netip.MustParseAddr("239.1.1.1")
	mRP   = netip.MustParseAddr("10.255.0.9")
	mUp   = netip.MustParseAddr("10.0.0.2")
	mNow  = time.Unix(1_700_000_000, 0)
	mStar = SG{G: mG}
	mSG   = SG{S: mS, G: mG}
)

// macroState is the state a case sets up, in the RFC's own terms.
type macroState struct {
	notDR     []string        // interfaces where a neighbour is DR
	include   map[SG][]string // local receivers (pim_include before DR/assert)
	exclude   []string        // local receivers excluding S from (*,G)
	joins     map[SG][]string // downstream Join state
	rptPruned []string        // (S,G,rpt) Pruned downstream
	lost      map[SG][]string // assert Loser to a better router
	won       map[SG][]string // assert Winner
	sptBit    bool
	kat       bool
	iAmRP     bool
}

func macroRouter(t *testing.T, st macroState) *Router {
	t.Helper()
	rps, err := NewRPSet([]RPMapping{{Range: netip.MustParsePrefix("224.0.0.0/4"), RP: mRP}}, []netip.Prefix{DefaultSSMRange})
	if err != nil {
		t.Fatal(err)
	}
	rt := macroRouting{mS: {Iface: "up", Neighbor: mUp, Metric: 10}, mRP: {Iface: "up", Neighbor: mUp, Metric: 20}}
	r := NewRouter(Config{RPs: rps}, rt, func(time.Duration) time.Duration { return 0 })
	for i, name := range []string{"up", "a", "b", "c"} {
		r.AddInterface(mNow, name, IfConfig{}, netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), nil, 1)
	}
	if st.iAmRP {
		r.AddLocalAddress(mRP)
	}
	for _, name := range st.notDR {
		i := r.ifaces[name]
		nbr := i.addr.Next() // a higher address wins the election
		i.neighbors[nbr] = &Neighbor{Addr: nbr, DRPriority: 1, HasDRPriority: true, Since: mNow}
		i.electDR(&Output{})
	}
	for k, ifs := range st.include {
		for _, n := range ifs {
			if r.members[n] == nil {
				r.members[n] = map[SG]bool{}
			}
			r.members[n][k] = true
		}
	}
	for _, n := range st.exclude {
		if r.excludes[n] == nil {
			r.excludes[n] = map[SG]bool{}
		}
		r.excludes[n][mSG] = true
	}
	for k, ifs := range st.joins {
		e := r.ensure(mNow, k)
		for _, n := range ifs {
			d := e.down.add(n, mNow)
			d.state, d.expiry = Join, mNow.Add(time.Minute)
		}
	}
	for _, n := range st.rptPruned {
		d := r.ensure(mNow, mSG).rptDown.add(n, mNow)
		d.state, d.expiry = Pruned, mNow.Add(time.Minute)
	}
	better := AssertMetric{Preference: 0, Metric: 1, Addr: netip.MustParseAddr("10.0.9.9")}
	for k, ifs := range st.lost {
		e := r.ensure(mNow, k)
		for _, n := range ifs {
			if e.asserts == nil {
				e.asserts = map[string]*assertInfo{}
			}
			w := better
			w.RPT = !k.S.IsValid()
			e.asserts[n] = &assertInfo{state: AssertLoser, winner: w, timer: mNow.Add(time.Minute)}
		}
	}
	for k, ifs := range st.won {
		e := r.ensure(mNow, k)
		for _, n := range ifs {
			if e.asserts == nil {
				e.asserts = map[string]*assertInfo{}
			}
			e.asserts[n] = &assertInfo{state: AssertWinner, winner: r.sptMetric(mS, n), timer: mNow.Add(time.Minute)}
		}
	}
	e := r.ensure(mNow, mSG)
	e.sptBit = st.sptBit
	if st.kat {
		e.kat = mNow.Add(time.Minute)
	}
	r.ensure(mNow, mStar)
	return r
}

func names(m map[string]bool) string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	slices.Sort(out)
	return fmt.Sprint(out)
}

// The olists and JoinDesired, case by case from RFC 7761 section 4.1.6
// and 4.5.6/4.5.7.
func TestMacroOlists(t *testing.T) {
	for _, c := range []struct {
		name string
		st   macroState
		// immediate_olist(S,G), inherited_olist(S,G,rpt), inherited_olist(S,G)
		immSG, inhRPT, inhSG string
		joinStar, joinSG     bool
	}{
		{name: "nothing", immSG: "[]", inhRPT: "[]", inhSG: "[]"},
		{name: "(*,G) join downstream is inherited by (S,G)",
			st:    macroState{joins: map[SG][]string{mStar: {"a"}}},
			immSG: "[]", inhRPT: "[a]", inhSG: "[a]", joinStar: true},
		{name: "(S,G) join is immediate, and JoinDesired(S,G) without traffic",
			st:    macroState{joins: map[SG][]string{mSG: {"b"}}},
			immSG: "[b]", inhRPT: "[]", inhSG: "[b]", joinSG: true},
		{name: "local receiver counts only where this router is DR",
			st:    macroState{include: map[SG][]string{mStar: {"a", "b"}}, notDR: []string{"b"}},
			immSG: "[]", inhRPT: "[a]", inhSG: "[a]", joinStar: true},
		{name: "a local receiver where we won the assert counts though not DR",
			st:    macroState{include: map[SG][]string{mSG: {"b"}}, notDR: []string{"b"}, won: map[SG][]string{mSG: {"b"}}},
			immSG: "[b]", inhRPT: "[]", inhSG: "[b]", joinSG: true},
		{name: "(S,G,rpt) prune takes an interface off the shared tree only",
			st:    macroState{joins: map[SG][]string{mStar: {"a", "b"}, mSG: {"b"}}, rptPruned: []string{"a", "b"}},
			immSG: "[b]", inhRPT: "[]", inhSG: "[b]", joinStar: true, joinSG: true},
		{name: "pim_exclude(S,G) removes a local (*,G) receiver from (S,G)",
			st:    macroState{include: map[SG][]string{mStar: {"a", "c"}}, exclude: []string{"c"}},
			immSG: "[]", inhRPT: "[a]", inhSG: "[a]", joinStar: true},
		{name: "lost_assert(*,G) removes an interface from the shared tree",
			st:    macroState{joins: map[SG][]string{mStar: {"a", "b"}}, lost: map[SG][]string{mStar: {"a"}}},
			immSG: "[]", inhRPT: "[b]", inhSG: "[b]", joinStar: true},
		{name: "lost_assert(S,G) removes an interface from the (S,G) olist",
			st:    macroState{joins: map[SG][]string{mSG: {"a", "c"}}, lost: map[SG][]string{mSG: {"c"}}},
			immSG: "[a]", inhRPT: "[]", inhSG: "[a]", joinSG: true},
		{name: "inherited olist alone makes JoinDesired(S,G) only while the keepalive runs",
			st:    macroState{joins: map[SG][]string{mStar: {"a"}}, kat: true},
			immSG: "[]", inhRPT: "[a]", inhSG: "[a]", joinStar: true, joinSG: true},
		{name: "at the RP JoinDesired(*,G) is false: the tree is rooted here",
			st:    macroState{joins: map[SG][]string{mStar: {"a"}}, iAmRP: true},
			immSG: "[]", inhRPT: "[a]", inhSG: "[a]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := macroRouter(t, c.st)
			if got := names(r.immediateOlist(mSG)); got != c.immSG {
				t.Errorf("immediate_olist(S,G) %s, want %s", got, c.immSG)
			}
			if got := names(r.inheritedOlistRPT(mSG)); got != c.inhRPT {
				t.Errorf("inherited_olist(S,G,rpt) %s, want %s", got, c.inhRPT)
			}
			if got := names(r.inheritedOlist(mSG)); got != c.inhSG {
				t.Errorf("inherited_olist(S,G) %s, want %s", got, c.inhSG)
			}
			if got := r.joinDesired(r.entries[mStar], mNow); got != c.joinStar {
				t.Errorf("JoinDesired(*,G) %v, want %v", got, c.joinStar)
			}
			if got := r.joinDesired(r.entries[mSG], mNow); got != c.joinSG {
				t.Errorf("JoinDesired(S,G) %v, want %v", got, c.joinSG)
			}
		})
	}
}

// CouldAssert, lost_assert and the assert metrics (section 4.6.1-4.6.5).
func TestMacroAsserts(t *testing.T) {
	for _, c := range []struct {
		name                   string
		st                     macroState
		iface                  string
		couldSG, couldStar     bool
		mySPT, myRPT, infinite bool
	}{
		{name: "no state: cannot assert", iface: "a", infinite: true},
		{name: "(S,G) join and the SPT bit: CouldAssert(S,G) with the SPT metric",
			st: macroState{joins: map[SG][]string{mSG: {"a"}}, sptBit: true}, iface: "a", couldSG: true, mySPT: true},
		{name: "without the SPT bit (S,G) cannot assert",
			st: macroState{joins: map[SG][]string{mSG: {"a"}}}, iface: "a"},
		{name: "(*,G) join: CouldAssert(*,G) with the RPT metric",
			st: macroState{joins: map[SG][]string{mStar: {"a"}}}, iface: "a", couldStar: true, myRPT: true},
		{name: "never on the RPF interface",
			st: macroState{joins: map[SG][]string{mSG: {"up"}, mStar: {"up"}}, sptBit: true}, iface: "up", infinite: true},
		{name: "inherited from (*,G) with the SPT bit: CouldAssert(S,G)",
			st: macroState{joins: map[SG][]string{mStar: {"b"}}, sptBit: true}, iface: "b", couldSG: true, couldStar: true, mySPT: true},
		{name: "inherited, but (*,G) assert lost: only (*,G) can",
			st: macroState{joins: map[SG][]string{mStar: {"b"}}, sptBit: true, lost: map[SG][]string{mStar: {"b"}}}, iface: "b", couldStar: true, myRPT: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := macroRouter(t, c.st)
			e := r.entries[mSG]
			if got := r.couldAssertSG(e, c.iface); got != c.couldSG {
				t.Errorf("CouldAssert(S,G,%s) %v, want %v", c.iface, got, c.couldSG)
			}
			if got := r.couldAssertStar(mG, c.iface); got != c.couldStar {
				t.Errorf("CouldAssert(*,G,%s) %v, want %v", c.iface, got, c.couldStar)
			}
			m := r.myMetricSG(e, c.iface)
			switch {
			case c.mySPT && (m.RPT || m.Metric != 10 || m.Addr != r.myAddr(c.iface)):
				t.Errorf("my_assert_metric %+v, want the SPT metric 10 from %s", m, r.myAddr(c.iface))
			case c.myRPT && (!m.RPT || m.Metric != 20):
				t.Errorf("my_assert_metric %+v, want the RPT metric 20", m)
			case c.infinite && !m.infinite():
				t.Errorf("my_assert_metric %+v, want infinity", m)
			}
		})
	}
	// lost_assert(S,G,I) holds only while the winner's metric beats ours.
	r := macroRouter(t, macroState{joins: map[SG][]string{mSG: {"a"}}, sptBit: true, lost: map[SG][]string{mSG: {"a"}}})
	if !r.lostAssertSG(r.entries[mSG], "a") {
		t.Error("lost_assert(S,G,a) false against a better winner")
	}
	r.entries[mSG].asserts["a"].winner = AssertMetric{Preference: 200, Metric: 1, Addr: netip.MustParseAddr("10.0.9.9")}
	if r.lostAssertSG(r.entries[mSG], "a") {
		t.Error("lost_assert(S,G,a) true against a worse winner")
	}
	// The order of section 4.6.1: SPT before RPT, then preference, metric, address.
	lo, hi := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	for _, c := range []struct{ a, b AssertMetric }{
		{AssertMetric{RPT: false, Preference: 200, Metric: 99, Addr: lo}, AssertMetric{RPT: true, Preference: 0, Metric: 0, Addr: hi}},
		{AssertMetric{Preference: 20, Metric: 99, Addr: lo}, AssertMetric{Preference: 110, Metric: 1, Addr: hi}},
		{AssertMetric{Preference: 110, Metric: 1, Addr: lo}, AssertMetric{Preference: 110, Metric: 2, Addr: hi}},
		{AssertMetric{Preference: 110, Metric: 2, Addr: hi}, AssertMetric{Preference: 110, Metric: 2, Addr: lo}},
	} {
		if !c.a.Better(c.b) || c.b.Better(c.a) {
			t.Errorf("%+v should beat %+v", c.a, c.b)
		}
	}
}

// RPF' toward an RP on a directly connected neighbour's interface is that
// neighbour (the route has no gateway); toward a directly connected host
// there is no upstream neighbour.
func TestUpstreamToConnectedNeighbourRP(t *testing.T) {
	r := macroRouter(t, macroState{})
	rp := netip.MustParseAddr("10.0.0.7") // on "up" (10.0.0.1/24)
	r.rt.(macroRouting)[rp] = RPF{Iface: "up"}
	rps, _ := NewRPSet([]RPMapping{{Range: netip.MustParsePrefix("224.0.0.0/4"), RP: rp}}, []netip.Prefix{DefaultSSMRange})
	r.cfg.RPs = rps
	if up, ok := r.upstream(mStar); !ok || up.iface != "up" || up.nbr.IsValid() {
		t.Fatalf("before the RP is a neighbour: %+v %v, want up with no neighbour", up, ok)
	}
	r.ifaces["up"].neighbors[rp] = &Neighbor{Addr: rp, Since: mNow}
	if up, ok := r.upstream(mStar); !ok || up.iface != "up" || up.nbr != rp {
		t.Fatalf("RPF'(*,G) %+v %v, want the neighbour %s on up", up, ok, rp)
	}
}
