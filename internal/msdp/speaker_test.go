package msdp

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	wire "overcast/internal/packet/msdp"
)

var a = netip.MustParseAddr
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// table is a Routes of fixed answers; missing addresses have no route.
type table map[netip.Addr]Route

func (t table) RouteTo(x netip.Addr) (Route, bool) { r, ok := t[x]; return r, ok }

// net is speakers joined by in-memory sessions: dials connect at once
// when the other side has the peer configured, bytes are delivered in
// order, and every SA message written is counted per (from, to).
type net struct {
	t     *testing.T
	now   time.Time
	sp    map[netip.Addr]*Speaker // by local address
	links map[[2]netip.Addr]bool  // sessions up
	sas   map[[2]netip.Addr]int   // SA messages written from -> to
	down  map[[2]netip.Addr]bool  // dials refused (link down)
	learn map[netip.Addr][]Active
	queue []func()
}

func newNet(t *testing.T) *net {
	return &net{t: t, now: t0, sp: map[netip.Addr]*Speaker{}, links: map[[2]netip.Addr]bool{},
		sas: map[[2]netip.Addr]int{}, down: map[[2]netip.Addr]bool{}, learn: map[netip.Addr][]Active{}}
}

func (n *net) add(local string, cfg Config, routes Routes) *Speaker {
	cfg.Originator = a(local)
	s, err := New(cfg, routes)
	if err != nil {
		n.t.Fatal(err)
	}
	n.sp[a(local)] = s
	n.apply(a(local), s.Start(n.now))
	return s
}

func (n *net) apply(self netip.Addr, r Result) {
	n.learn[self] = append(n.learn[self], r.Learned...)
	for _, d := range r.Dials {
		d := d
		n.queue = append(n.queue, func() {
			other := n.sp[d.Peer]
			if other == nil || n.down[[2]netip.Addr{d.Local, d.Peer}] {
				n.apply(self, n.sp[self].DialFailed(n.now, d.Peer, fmt.Errorf("connection refused")))
				return
			}
			ok, _, res := other.Accept(n.now, d.Local, d.Peer)
			n.apply(d.Peer, res)
			if !ok {
				n.apply(self, n.sp[self].DialFailed(n.now, d.Peer, fmt.Errorf("reset by peer")))
				return
			}
			n.links[[2]netip.Addr{self, d.Peer}], n.links[[2]netip.Addr{d.Peer, self}] = true, true
			n.apply(self, n.sp[self].Connected(n.now, d.Peer))
		})
	}
	for _, o := range r.Sends {
		o := o
		if m, err := wire.Parse(o.Bytes); err == nil && m.Type() == wire.TypeSA {
			n.sas[[2]netip.Addr{self, o.Peer}]++
		}
		n.queue = append(n.queue, func() {
			if n.links[[2]netip.Addr{self, o.Peer}] {
				n.apply(o.Peer, n.sp[o.Peer].Received(n.now, self, o.Bytes))
			}
		})
	}
	for _, c := range r.Closes {
		c := c
		n.queue = append(n.queue, func() {
			if n.links[[2]netip.Addr{self, c.Peer}] {
				delete(n.links, [2]netip.Addr{self, c.Peer})
				delete(n.links, [2]netip.Addr{c.Peer, self})
				n.apply(c.Peer, n.sp[c.Peer].Closed(n.now, self, "peer closed"))
			}
		})
	}
}

// run delivers everything queued.
func (n *net) run() {
	for len(n.queue) > 0 {
		f := n.queue[0]
		n.queue = n.queue[1:]
		f()
	}
}

// advance moves time forward in one-second steps, running timers.
func (n *net) advance(d time.Duration) {
	end := n.now.Add(d)
	for n.now.Before(end) {
		n.now = n.now.Add(time.Second)
		for self, s := range n.sp {
			if t := s.NextDeadline(); !t.IsZero() && !t.After(n.now) {
				n.apply(self, s.Advance(n.now))
			}
		}
		n.run()
	}
}

func state(s *Speaker, peer string) State {
	for _, p := range s.Peers() {
		if p.Config.Address == a(peer) {
			return p.State
		}
	}
	return Disabled
}

func stats(s *Speaker, peer string) PeerStats {
	for _, p := range s.Peers() {
		if p.Config.Address == a(peer) {
			return p.Stats
		}
	}
	return PeerStats{}
}

func peerCfg(local, remote string) PeerConfig { return PeerConfig{Address: a(remote), Local: a(local)} }

func TestConnectionRuleAndKeepalive(t *testing.T) {
	n := newNet(t)
	hi := n.add("10.0.0.2", Config{Peers: []PeerConfig{peerCfg("10.0.0.2", "10.0.0.1")}}, nil)
	if st := state(hi, "10.0.0.1"); st != Listen {
		t.Fatalf("higher address: %v, want Listen", st)
	}
	lo := n.add("10.0.0.1", Config{Peers: []PeerConfig{peerCfg("10.0.0.1", "10.0.0.2")}}, nil)
	if st := state(lo, "10.0.0.2"); st != Connecting {
		t.Fatalf("lower address: %v, want Connecting", st)
	}
	n.run()
	if state(lo, "10.0.0.2") != Established || state(hi, "10.0.0.1") != Established {
		t.Fatalf("not established: %v %v", state(lo, "10.0.0.2"), state(hi, "10.0.0.1"))
	}
	// The higher side refuses to connect out: Accept from it is refused.
	if ok, why, _ := lo.Accept(n.now, a("10.0.0.2"), a("10.0.0.1")); ok || !strings.Contains(why, "lower address") {
		t.Errorf("lower side accepted a connection from the higher: %v %q", ok, why)
	}
	// Keepalives hold the session for ten minutes.
	n.advance(10 * time.Minute)
	if state(lo, "10.0.0.2") != Established || stats(lo, "10.0.0.2").KeepalivesIn < 9 {
		t.Fatalf("after 10 min: %v, %+v", state(lo, "10.0.0.2"), stats(lo, "10.0.0.2"))
	}
	// A silent peer: the hold timer (75 s) resets the session.
	n.down[[2]netip.Addr{a("10.0.0.1"), a("10.0.0.2")}] = true
	for k := range n.links {
		delete(n.links, k) // bytes stop flowing both ways, nobody closes
	}
	n.advance(76 * time.Second)
	if st := state(lo, "10.0.0.2"); st != Connecting {
		t.Fatalf("after hold time: %v, want Connecting", st)
	}
	p := lo.Peers()[0]
	if !strings.Contains(p.Reason, "hold timer") || p.Stats.Resets != 1 {
		t.Errorf("reason %q resets %d", p.Reason, p.Stats.Resets)
	}
	// The path is back; the hold side noticed too; within one retry the
	// session is up again.
	delete(n.down, [2]netip.Addr{a("10.0.0.1"), a("10.0.0.2")})
	n.advance(31 * time.Second)
	if state(lo, "10.0.0.2") != Established || state(hi, "10.0.0.1") != Established {
		t.Fatalf("after retry: %v %v", state(lo, "10.0.0.2"), state(hi, "10.0.0.1"))
	}
}

// Two RPs: A originates (S,G); B caches it, reports it learned once,
// keeps it while A re-advertises, and drops it SG-State-Period after A
// stops.
func TestOriginateCacheExpire(t *testing.T) {
	n := newNet(t)
	A := n.add("10.0.0.1", Config{Peers: []PeerConfig{peerCfg("10.0.0.1", "10.0.0.2")}}, nil)
	B := n.add("10.0.0.2", Config{Peers: []PeerConfig{peerCfg("10.0.0.2", "10.0.0.1")}}, nil)
	n.run()
	sg := SG{S: a("192.0.2.10"), G: a("233.1.1.1")}
	n.apply(a("10.0.0.1"), A.Originate(n.now, []SG{sg}))
	n.run()
	if !B.Cached(sg) || len(n.learn[a("10.0.0.2")]) != 1 || n.learn[a("10.0.0.2")][0].RP != a("10.0.0.1") {
		t.Fatalf("B cache %+v learned %+v", B.Cache(), n.learn[a("10.0.0.2")])
	}
	n.advance(5 * time.Minute)
	if !B.Cached(sg) || len(n.learn[a("10.0.0.2")]) != 1 {
		t.Fatalf("after 5 min of re-advertising: cached %v, learned %d times", B.Cached(sg), len(n.learn[a("10.0.0.2")]))
	}
	if got := n.sas[[2]netip.Addr{a("10.0.0.1"), a("10.0.0.2")}]; got < 5 || got > 7 {
		t.Errorf("A sent %d SAs in 5 min, want one a minute", got)
	}
	n.apply(a("10.0.0.1"), A.Originate(n.now, nil))
	n.advance(DefaultSAState + time.Second)
	if B.Cached(sg) || B.CacheLen() != 0 {
		t.Fatalf("still cached after SG-State-Period: %+v", B.Cache())
	}
	if v := A.Cache(); len(v) != 0 {
		t.Errorf("A still originates %+v", v)
	}
}

// A line of three RPs A - B - C, with routes: SAs from A reach C through
// B; an SA for A's sources arriving at C from a peer that is not on the
// path is dropped and counted.
func TestPeerRPFLine(t *testing.T) {
	n := newNet(t)
	A := n.add("10.0.0.1", Config{Peers: []PeerConfig{peerCfg("10.0.0.1", "10.0.0.2")}}, nil)
	n.add("10.0.0.2", Config{Peers: []PeerConfig{peerCfg("10.0.0.2", "10.0.0.1"), peerCfg("10.0.0.2", "10.0.0.3")}},
		table{a("10.0.0.1"): {Table: "unicast", Protocol: "ospf", NextHop: a("10.0.0.1"), Iface: "ab"}})
	C := n.add("10.0.0.3", Config{Peers: []PeerConfig{peerCfg("10.0.0.3", "10.0.0.2"), peerCfg("10.0.0.3", "10.0.0.4")}},
		table{a("10.0.0.1"): {Table: "unicast", Protocol: "ospf", NextHop: a("10.0.0.2"), Iface: "bc"}})
	D := n.add("10.0.0.4", Config{Peers: []PeerConfig{peerCfg("10.0.0.4", "10.0.0.3")}}, nil)
	n.run()
	sg := SG{S: a("192.0.2.10"), G: a("233.1.1.1")}
	n.apply(a("10.0.0.1"), A.Originate(n.now, []SG{sg}))
	n.run()
	if !C.Cached(sg) || !D.Cached(sg) {
		t.Fatalf("C %v D %v", C.Cached(sg), D.Cached(sg))
	}
	v := C.RPFPeer(a("10.0.0.1"))
	if v.Peer != a("10.0.0.2") || !strings.HasPrefix(v.Rule, "iii: IGP next hop") {
		t.Errorf("C rpf-peer for A: %+v", v)
	}
	// D (not on the path) sends C an SA for A's source: dropped, counted.
	before := stats(C, "10.0.0.4").RPFFailures
	bad := (&wire.SA{RP: a("10.0.0.1"), Entries: []wire.Entry{{Source: a("192.0.2.99"), Group: a("233.1.1.1")}}}).Marshal()
	n.apply(a("10.0.0.3"), C.Received(n.now, a("10.0.0.4"), bad))
	n.run()
	if stats(C, "10.0.0.4").RPFFailures != before+1 || C.Cached(SG{S: a("192.0.2.99"), G: a("233.1.1.1")}) {
		t.Fatalf("non-RPF SA accepted: %+v", stats(C, "10.0.0.4"))
	}
	// C never sends A's SA back toward B.
	if got := n.sas[[2]netip.Addr{a("10.0.0.3"), a("10.0.0.2")}]; got != 0 {
		t.Errorf("C sent %d SAs back to B", got)
	}
}

// Each peer-RPF rule, on one speaker with three established peers.
func TestPeerRPFRules(t *testing.T) {
	rp := a("172.16.9.9")
	peers := []PeerConfig{peerCfg("10.0.0.1", "10.0.0.2"), peerCfg("10.0.0.1", "10.0.0.3"), peerCfg("10.0.0.1", "10.0.0.4")}
	for _, c := range []struct {
		name   string
		route  *Route
		tweak  func(*Config)
		rpAddr netip.Addr
		peer   string
		rule   string
	}{
		{name: "i originating RP", rpAddr: a("10.0.0.3"), peer: "10.0.0.3", rule: "i:"},
		{name: "ii eBGP next hop", route: &Route{Table: "mbgp", NextHop: a("10.0.0.4"), BGP: &BGPPath{Peer: a("10.0.0.4"), External: true, ASPath: []uint32{65004}}}, peer: "10.0.0.4", rule: "ii:"},
		{name: "iii iBGP advertiser", route: &Route{Table: "mbgp", NextHop: a("192.0.2.1"), BGP: &BGPPath{Peer: a("10.0.0.2"), ASPath: []uint32{65009}}}, peer: "10.0.0.2", rule: "iii: iBGP"},
		{name: "iii IGP next hop", route: &Route{Table: "unicast", Protocol: "ospf", NextHop: a("10.0.0.3")}, peer: "10.0.0.3", rule: "iii: IGP"},
		{name: "iv closest AS, highest address", route: &Route{Table: "mbgp", NextHop: a("192.0.2.1"), BGP: &BGPPath{Peer: a("192.0.2.1"), ASPath: []uint32{65002, 65009}}},
			tweak: func(c *Config) { c.Peers[0].AS, c.Peers[1].AS = 65002, 65002 }, peer: "10.0.0.3", rule: "iv:"},
		{name: "v static", tweak: func(c *Config) {
			c.StaticRPF = []StaticRPF{{Prefix: netip.MustParsePrefix("172.16.0.0/12"), Peer: a("10.0.0.4")}}
		}, peer: "10.0.0.4", rule: "v:"},
		{name: "vi default", tweak: func(c *Config) { c.Peers[1].Default = true }, peer: "10.0.0.3", rule: "vi:"},
		{name: "none", peer: "", rule: ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newNet(t)
			routes := table{}
			target := rp
			if c.rpAddr.IsValid() {
				target = c.rpAddr
			}
			if c.route != nil {
				routes[target] = *c.route
			}
			cfg := Config{Peers: append([]PeerConfig(nil), peers...)}
			if c.tweak != nil {
				c.tweak(&cfg)
			}
			s := n.add("10.0.0.1", cfg, routes)
			for _, p := range peers {
				n.add(p.Address.String(), Config{Peers: []PeerConfig{peerCfg(p.Address.String(), "10.0.0.1")}}, nil)
			}
			n.run()
			v := s.RPFPeer(target)
			if c.peer == "" {
				if v.Peer.IsValid() || v.Reason == "" {
					t.Fatalf("want no RPF peer, with a reason: %+v", v)
				}
				return
			}
			if v.Peer != a(c.peer) || !strings.HasPrefix(v.Rule, c.rule) {
				t.Fatalf("rpf peer %s rule %q, want %s %q", v.Peer, v.Rule, c.peer, c.rule)
			}
			// Only established peers count: with the chosen one down the
			// decision moves or fails.
			n.apply(a("10.0.0.1"), s.Closed(n.now, a(c.peer), "test"))
			if v2 := s.RPFPeer(target); v2.Peer == a(c.peer) {
				t.Fatalf("down peer still chosen: %+v", v2)
			}
		})
	}
}

// Three RPs in one mesh group: an SA from one member reaches the others
// and none sends it back into the mesh; a peer outside the mesh gets it.
func TestMeshGroup(t *testing.T) {
	n := newNet(t)
	mesh := func(local string, others ...string) Config {
		var c Config
		for _, o := range others {
			p := peerCfg(local, o)
			p.MeshGroup = "core"
			c.Peers = append(c.Peers, p)
		}
		return c
	}
	A := n.add("10.0.0.1", mesh("10.0.0.1", "10.0.0.2", "10.0.0.3"), nil)
	cb := mesh("10.0.0.2", "10.0.0.1", "10.0.0.3")
	cb.Peers = append(cb.Peers, peerCfg("10.0.0.2", "10.0.0.9")) // outside the mesh
	B := n.add("10.0.0.2", cb, nil)
	C := n.add("10.0.0.3", mesh("10.0.0.3", "10.0.0.1", "10.0.0.2"), nil)
	X := n.add("10.0.0.9", Config{Peers: []PeerConfig{peerCfg("10.0.0.9", "10.0.0.2")}}, nil)
	n.run()
	sg := SG{S: a("192.0.2.10"), G: a("233.1.1.1")}
	n.apply(a("10.0.0.1"), A.Originate(n.now, []SG{sg}))
	n.run()
	if !B.Cached(sg) || !C.Cached(sg) || !X.Cached(sg) {
		t.Fatalf("B %v C %v X %v", B.Cached(sg), C.Cached(sg), X.Cached(sg))
	}
	for _, k := range [][2]string{{"10.0.0.2", "10.0.0.3"}, {"10.0.0.3", "10.0.0.2"}, {"10.0.0.2", "10.0.0.1"}, {"10.0.0.3", "10.0.0.1"}} {
		if got := n.sas[[2]netip.Addr{a(k[0]), a(k[1])}]; got != 0 {
			t.Errorf("%s sent %d SAs to mesh member %s", k[0], got, k[1])
		}
	}
	if got := n.sas[[2]netip.Addr{a("10.0.0.2"), a("10.0.0.9")}]; got != 1 {
		t.Errorf("B sent %d SAs out of the mesh, want 1", got)
	}
}

// The scoped policy (seed 002) drops private sources and scoped groups
// both ways; other SAs pass.
func TestScopedFilter(t *testing.T) {
	n := newNet(t)
	pa := peerCfg("10.0.0.1", "10.0.0.2")
	pa.FilterOut = "scoped"
	A := n.add("10.0.0.1", Config{Peers: []PeerConfig{pa}}, nil)
	pb := peerCfg("10.0.0.2", "10.0.0.1")
	pb.FilterIn = "scoped"
	B := n.add("10.0.0.2", Config{Peers: []PeerConfig{pb}}, nil)
	n.run()
	blocked := []SG{{S: a("10.1.1.1"), G: a("233.1.1.1")}, {S: a("192.0.2.1"), G: a("239.1.1.1")}, {S: a("192.0.2.1"), G: a("232.1.1.1")},
		{S: a("192.0.2.1"), G: a("224.0.1.39")}, {S: a("192.0.2.1"), G: a("224.0.1.40")}, {S: a("192.0.2.1"), G: a("227.1.1.1")}}
	ok := SG{S: a("192.0.2.1"), G: a("233.1.1.1")}
	n.apply(a("10.0.0.1"), A.Originate(n.now, append(blocked, ok)))
	n.run()
	if !B.Cached(ok) || B.CacheLen() != 1 {
		t.Fatalf("B cache %+v", B.Cache())
	}
	if st := stats(A, "10.0.0.2"); st.FilteredOut != uint64(len(blocked)) {
		t.Errorf("A filtered out %d, want %d", st.FilteredOut, len(blocked))
	}
	// Inbound: the same SAs sent raw are dropped by B's in-filter.
	var es []wire.Entry
	for _, sg := range blocked {
		es = append(es, wire.Entry{Source: sg.S, Group: sg.G})
	}
	n.apply(a("10.0.0.2"), B.Received(n.now, a("10.0.0.1"), (&wire.SA{RP: a("10.0.0.1"), Entries: es}).Marshal()))
	if st := stats(B, "10.0.0.1"); st.FilteredIn != uint64(len(blocked)) || B.CacheLen() != 1 {
		t.Errorf("B filtered in %d, cache %d", st.FilteredIn, B.CacheLen())
	}
}

// A peer flooding SAs cannot grow the cache past its limit; the global
// limit holds across peers.
func TestSALimits(t *testing.T) {
	n := newNet(t)
	p1, p2 := peerCfg("10.0.0.1", "10.0.0.2"), peerCfg("10.0.0.1", "10.0.0.3")
	p1.SALimit = 100
	s := n.add("10.0.0.1", Config{Peers: []PeerConfig{p1, p2}, SALimit: 150, StaticRPF: []StaticRPF{
		{Prefix: netip.MustParsePrefix("172.16.1.0/24"), Peer: a("10.0.0.2")}, {Prefix: netip.MustParsePrefix("172.16.2.0/24"), Peer: a("10.0.0.3")}}}, nil)
	n.add("10.0.0.2", Config{Peers: []PeerConfig{peerCfg("10.0.0.2", "10.0.0.1")}}, nil)
	n.add("10.0.0.3", Config{Peers: []PeerConfig{peerCfg("10.0.0.3", "10.0.0.1")}}, nil)
	n.run()
	flood := func(from, rp string) {
		var es []wire.Entry
		for i := range 1000 {
			es = append(es, wire.Entry{Source: netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), Group: a("233.1.1.1")})
		}
		for _, m := range wire.SplitSA(a(rp), es) {
			n.apply(a("10.0.0.1"), s.Received(n.now, a(from), m.Marshal()))
		}
	}
	flood("10.0.0.2", "172.16.1.1")
	if s.CacheLen() != 100 || stats(s, "10.0.0.2").LimitDrops != 900 {
		t.Fatalf("per-peer limit: cache %d drops %d", s.CacheLen(), stats(s, "10.0.0.2").LimitDrops)
	}
	flood("10.0.0.3", "172.16.2.1")
	if s.CacheLen() != 150 || stats(s, "10.0.0.3").LimitDrops != 950 {
		t.Fatalf("global limit: cache %d drops %d", s.CacheLen(), stats(s, "10.0.0.3").LimitDrops)
	}
}

// A malformed TLV resets the session with the reason; an unknown type is
// counted and skipped.
func TestMalformedResets(t *testing.T) {
	n := newNet(t)
	s := n.add("10.0.0.1", Config{Peers: []PeerConfig{peerCfg("10.0.0.1", "10.0.0.2")}}, nil)
	n.add("10.0.0.2", Config{Peers: []PeerConfig{peerCfg("10.0.0.2", "10.0.0.1")}}, nil)
	n.run()
	n.apply(a("10.0.0.1"), s.Received(n.now, a("10.0.0.2"), []byte{9, 0, 4, 1, wire.TypeKeepalive, 0, 3}))
	if st := stats(s, "10.0.0.2"); st.Unknown != 1 || st.KeepalivesIn < 2 || state(s, "10.0.0.2") != Established {
		t.Fatalf("unknown type: %+v %v", st, state(s, "10.0.0.2"))
	}
	r := s.Received(n.now, a("10.0.0.2"), []byte{wire.TypeKeepalive, 0, 1})
	if len(r.Closes) != 1 || !strings.Contains(r.Closes[0].Reason, "malformed") || state(s, "10.0.0.2") == Established {
		t.Fatalf("malformed: %+v %v", r.Closes, state(s, "10.0.0.2"))
	}
	if st := stats(s, "10.0.0.2"); st.Malformed != 1 || st.Resets != 1 {
		t.Errorf("%+v", st)
	}
}

// An SA-Request is answered from the cache with an SA-Response.
func TestSARequest(t *testing.T) {
	n := newNet(t)
	A := n.add("10.0.0.1", Config{Peers: []PeerConfig{peerCfg("10.0.0.1", "10.0.0.2")}}, nil)
	B := n.add("10.0.0.2", Config{Peers: []PeerConfig{peerCfg("10.0.0.2", "10.0.0.1")}}, nil)
	n.run()
	sg := SG{S: a("192.0.2.10"), G: a("233.1.1.1")}
	n.apply(a("10.0.0.1"), A.Originate(n.now, []SG{sg, {S: a("192.0.2.11"), G: a("233.1.1.2")}}))
	n.run()
	r, err := B.Request(a("10.0.0.1"), a("233.1.1.1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Sends) != 1 {
		t.Fatalf("%+v", r)
	}
	resp := A.Received(n.now, a("10.0.0.2"), r.Sends[0].Bytes)
	if len(resp.Sends) != 1 {
		t.Fatalf("answer %+v", resp)
	}
	m, err := wire.Parse(resp.Sends[0].Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sa := m.(*wire.SA)
	if !sa.Response || sa.RP != a("10.0.0.1") || len(sa.Entries) != 1 || sa.Entries[0].Source != sg.S {
		t.Fatalf("response %+v", sa)
	}
}

// Reload: a removed peer is closed and what it taught goes; a changed
// filter applies to the running session.
func TestReconfigure(t *testing.T) {
	n := newNet(t)
	A := n.add("10.0.0.1", Config{Peers: []PeerConfig{peerCfg("10.0.0.1", "10.0.0.2")}}, nil)
	B := n.add("10.0.0.2", Config{Peers: []PeerConfig{peerCfg("10.0.0.2", "10.0.0.1"), peerCfg("10.0.0.2", "10.0.0.3")}}, nil)
	n.add("10.0.0.3", Config{Peers: []PeerConfig{peerCfg("10.0.0.3", "10.0.0.2")}}, nil)
	n.run()
	sg := SG{S: a("192.0.2.10"), G: a("239.1.1.1")}
	n.apply(a("10.0.0.1"), A.Originate(n.now, []SG{sg}))
	n.run()
	if !B.Cached(sg) {
		t.Fatal("not cached")
	}
	pb := peerCfg("10.0.0.2", "10.0.0.3")
	pb.FilterOut = "scoped"
	r, err := B.Reconfigure(n.now, Config{Originator: a("10.0.0.2"), Peers: []PeerConfig{pb}})
	if err != nil {
		t.Fatal(err)
	}
	n.apply(a("10.0.0.2"), r)
	n.run()
	if B.Cached(sg) || state(B, "10.0.0.1") != Disabled || state(A, "10.0.0.2") == Established || state(B, "10.0.0.3") != Established {
		t.Fatalf("after reload: cached %v, B-A %v, A-B %v, B-C %v", B.Cached(sg), state(B, "10.0.0.1"), state(A, "10.0.0.2"), state(B, "10.0.0.3"))
	}
	if _, err := B.Reconfigure(n.now, Config{Peers: []PeerConfig{{Address: a("10.0.0.3"), Local: a("10.0.0.2"), FilterIn: "nope"}}}); err == nil || !strings.Contains(err.Error(), `no sa-filter policy "nope"`) {
		t.Fatalf("bad policy: %v", err)
	}
}
