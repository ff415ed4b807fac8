package overlay

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	wire "overcast/internal/packet/overlay"
)

var (
	t0  = time.Unix(1_800_000_000, 0)
	key = []byte("a test overlay key")
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
func ad(s string) netip.Addr     { return netip.MustParseAddr(s) }

// mesh is an in-memory underlay: datagrams are delivered after delay,
// unless drop says otherwise.
type mesh struct {
	t     *testing.T
	now   time.Time
	nodes map[netip.AddrPort]*Node
	queue []inflight
	delay time.Duration
	drop  func(from netip.AddrPort, d Datagram) bool
	// changed collects the groups each node reported changed.
	changed map[netip.AddrPort][]netip.Addr
	events  []PeerEvent
}

type inflight struct {
	at   time.Time
	from netip.AddrPort
	d    Datagram
}

func newMesh(t *testing.T, addrs ...string) *mesh {
	m := &mesh{t: t, now: t0, nodes: map[netip.AddrPort]*Node{}, delay: time.Millisecond, changed: map[netip.AddrPort][]netip.Addr{}}
	for _, a := range addrs {
		m.nodes[ap(a)] = New(Config{Local: ap(a), Key: key}, t0)
	}
	return m
}

// full peers every node with every other.
func (m *mesh) full() {
	for a, n := range m.nodes {
		for b := range m.nodes {
			if a != b {
				m.handle(a, n.AddPeer(b, Static, m.now))
			}
		}
	}
}

func (m *mesh) handle(from netip.AddrPort, r Result) {
	for _, d := range r.Send {
		if m.drop != nil && m.drop(from, d) {
			continue
		}
		m.queue = append(m.queue, inflight{at: m.now.Add(m.delay), from: from, d: d})
	}
	m.changed[from] = append(m.changed[from], r.Groups...)
	m.events = append(m.events, r.Events...)
}

// run advances time by d, delivering datagrams and running timers.
func (m *mesh) run(d time.Duration) {
	end := m.now.Add(d)
	for {
		next := end
		for _, n := range m.nodes {
			if t := n.NextDeadline(); t.Before(next) {
				next = t
			}
		}
		for _, q := range m.queue {
			if q.at.Before(next) {
				next = q.at
			}
		}
		if next.After(end) {
			break
		}
		m.now = next
		var keep []inflight
		due := []inflight{}
		for _, q := range m.queue {
			if !q.at.After(m.now) {
				due = append(due, q)
			} else {
				keep = append(keep, q)
			}
		}
		m.queue = keep
		for _, q := range due {
			if n := m.nodes[q.d.To]; n != nil {
				m.handle(q.d.To, n.Receive(q.from, q.d.B, m.now))
			}
		}
		addrs := make([]netip.AddrPort, 0, len(m.nodes))
		for a := range m.nodes {
			addrs = append(addrs, a)
		}
		slices.SortFunc(addrs, netip.AddrPort.Compare)
		for _, a := range addrs {
			n := m.nodes[a]
			if !n.NextDeadline().After(m.now) {
				m.handle(a, n.Advance(m.now))
			}
		}
		if len(due) == 0 && m.now.Equal(end) {
			break
		}
	}
	m.now = end
}

func (m *mesh) want(a string, g string, mode wire.Mode, srcs ...string) {
	f := Filter{Mode: mode}
	for _, s := range srcs {
		f.Sources = append(f.Sources, ad(s))
	}
	n := m.nodes[ap(a)]
	n.SetInterest(ad(g), f)
	m.handle(ap(a), n.Flush(m.now))
}

func (m *mesh) receivers(at, s, g string) []string {
	var out []string
	for _, a := range m.nodes[ap(at)].Receivers(ad(s), ad(g)) {
		out = append(out, a.String())
	}
	return out
}

func (m *mesh) peer(at, of string) PeerView {
	for _, p := range m.nodes[ap(at)].Peers() {
		if p.Addr == ap(of) {
			return p
		}
	}
	m.t.Fatalf("%s has no peer %s", at, of)
	return PeerView{}
}

const (
	A = "192.0.2.1:4790"
	B = "192.0.2.2:4790"
	C = "192.0.2.3:4790"
	D = "192.0.2.4:4790"
)

func TestPeersComeUpAndMeasureRTT(t *testing.T) {
	m := newMesh(t, A, B)
	m.delay = 3 * time.Millisecond
	m.full()
	m.run(10 * time.Millisecond)
	for _, x := range [][2]string{{A, B}, {B, A}} {
		if !m.peer(x[0], x[1]).Up {
			t.Fatalf("%s does not see %s up after one exchange", x[0], x[1])
		}
	}
	m.run(2 * time.Second)
	if rtt := m.peer(A, B).RTT; rtt != 6*time.Millisecond {
		t.Fatalf("rtt %v, want 6ms (3 ms each way)", rtt)
	}
}

func TestInterestSelectsPeers(t *testing.T) {
	m := newMesh(t, A, B, C, D)
	m.full()
	m.run(100 * time.Millisecond)
	m.want(B, "232.8.8.8", wire.Include, "10.0.1.10")
	m.want(C, "239.192.0.29", wire.Exclude)
	m.want(D, "239.192.0.29", wire.Exclude, "10.0.1.99")
	m.run(10 * time.Millisecond)
	check := func(s, g string, want ...string) {
		t.Helper()
		if got := m.receivers(A, s, g); !slices.Equal(got, want) {
			t.Errorf("receivers of (%s, %s) = %v, want %v", s, g, got, want)
		}
	}
	check("10.0.1.10", "232.8.8.8", B)
	check("10.0.1.11", "232.8.8.8")
	check("10.0.1.10", "239.192.0.29", C, D)
	check("10.0.1.99", "239.192.0.29", C)
	if !slices.Contains(m.changed[ap(A)], ad("232.8.8.8")) {
		t.Error("A did not report 232.8.8.8 changed")
	}
	// A leave: the record with no sources removes the group.
	m.want(B, "232.8.8.8", wire.Include)
	m.run(10 * time.Millisecond)
	check("10.0.1.10", "232.8.8.8")
}

func TestLateJoinerGetsADump(t *testing.T) {
	m := newMesh(t, A, B)
	for i := range 500 { // several datagrams' worth
		m.nodes[ap(B)].SetInterest(netip.AddrFrom4([4]byte{239, 1, byte(i >> 8), byte(i)}), Filter{Mode: wire.Exclude})
	}
	m.handle(ap(B), m.nodes[ap(B)].Flush(m.now)) // no peers yet: nothing sent
	m.full()
	m.run(100 * time.Millisecond)
	if p := m.peer(A, B); p.Groups != 500 || !p.Synced {
		t.Fatalf("A holds %d groups of B (synced %v), want 500", p.Groups, p.Synced)
	}
}

func TestLostDeltaRepairedByDump(t *testing.T) {
	m := newMesh(t, A, B)
	m.full()
	m.run(100 * time.Millisecond)
	lose := true
	m.drop = func(from netip.AddrPort, d Datagram) bool {
		k, _ := wire.Kind(d.B)
		if lose && from == ap(B) && k == wire.TypeInterest {
			lose = false
			return true
		}
		return false
	}
	m.want(B, "239.1.1.1", wire.Exclude)
	m.want(B, "239.1.1.2", wire.Exclude) // arrives out of order: From is 1, A holds 0: A asks for a dump
	m.run(10 * time.Millisecond)
	for _, g := range []string{"239.1.1.1", "239.1.1.2"} {
		if got := m.receivers(A, "10.0.0.1", g); len(got) != 1 {
			t.Fatalf("%s not repaired: %v", g, got)
		}
	}
	if st := m.peer(A, B).Stats; st.OutOfOrder != 1 || st.DumpsIn != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A lost delta with nothing after it: the next hello's version tells.
	lose = true
	m.want(B, "239.1.1.3", wire.Exclude)
	m.run(10 * time.Millisecond)
	if got := m.receivers(A, "10.0.0.1", "239.1.1.3"); len(got) != 0 {
		t.Fatalf("a lost delta arrived: %v", got)
	}
	m.run(1100 * time.Millisecond)
	if got := m.receivers(A, "10.0.0.1", "239.1.1.3"); len(got) != 1 {
		t.Fatalf("not repaired by the hello: %v", got)
	}
}

func TestDeadPeerCleanedOthersUndisturbed(t *testing.T) {
	m := newMesh(t, A, B, C)
	m.full()
	m.run(100 * time.Millisecond)
	m.want(B, "239.1.1.1", wire.Exclude)
	m.want(C, "239.1.1.1", wire.Exclude)
	m.run(10 * time.Millisecond)
	dead := true
	m.drop = func(from netip.AddrPort, d Datagram) bool { return dead && from == ap(B) }
	m.run(3 * time.Second)
	if got := m.receivers(A, "10.0.0.1", "239.1.1.1"); len(got) != 2 {
		t.Fatalf("B dropped too early: %v", got)
	}
	m.run(1 * time.Second)
	if got := m.receivers(A, "10.0.0.1", "239.1.1.1"); !slices.Equal(got, []string{C}) {
		t.Fatalf("after B's hold time: %v, want only C", got)
	}
	if m.peer(A, B).Up || !m.peer(A, C).Up {
		t.Fatal("peer states wrong")
	}
	// B restarts: a new epoch, no interest yet, then wants the group again.
	dead = false
	m.nodes[ap(B)] = New(Config{Local: ap(B), Key: key}, m.now)
	m.handle(ap(B), m.nodes[ap(B)].AddPeer(ap(A), Static, m.now))
	m.run(50 * time.Millisecond)
	if !m.peer(A, B).Up {
		t.Fatal("restarted B not up again")
	}
	m.want(B, "239.1.1.1", wire.Exclude)
	m.run(10 * time.Millisecond)
	if got := m.receivers(A, "10.0.0.1", "239.1.1.1"); len(got) != 2 {
		t.Fatalf("restarted B's interest: %v", got)
	}
}

func TestRestartForgetsOldInterest(t *testing.T) {
	m := newMesh(t, A, B)
	m.full()
	m.run(100 * time.Millisecond)
	m.want(B, "239.1.1.1", wire.Exclude)
	m.run(10 * time.Millisecond)
	m.nodes[ap(B)] = New(Config{Local: ap(B), Key: key}, m.now)
	m.handle(ap(B), m.nodes[ap(B)].AddPeer(ap(A), Static, m.now))
	m.run(10 * time.Millisecond)
	if got := m.receivers(A, "10.0.0.1", "239.1.1.1"); len(got) != 0 {
		t.Fatalf("a restarted peer's old interest kept: %v", got)
	}
}

func TestHostile(t *testing.T) {
	m := newMesh(t, A, B)
	m.full()
	m.run(100 * time.Millisecond)
	a := m.nodes[ap(A)]
	evil := wire.Interest{From: 0, To: 1, Records: []wire.Record{{Group: ad("239.6.6.6"), Mode: wire.Exclude}}}
	// Not a peer, though signed with the right key.
	a.Receive(ap("198.51.100.9:4790"), wire.Marshal(key, wire.Header{Epoch: 1 << 62, Seq: 1}, evil), m.now)
	if a.UnknownPeer != 1 {
		t.Fatalf("unknown peer count %d", a.UnknownPeer)
	}
	// A peer's address with the wrong key.
	r := a.Receive(ap(B), wire.Marshal([]byte("guessed"), wire.Header{Epoch: 1 << 62, Seq: 1}, evil), m.now)
	if st := m.peer(A, B).Stats; st.AuthFailed != 1 || len(r.Groups) != 0 || len(r.Send) != 0 {
		t.Fatalf("wrong key: stats %+v result %+v", st, r)
	}
	// A replay of B's own earlier datagram.
	var captured []byte
	m.drop = func(from netip.AddrPort, d Datagram) bool {
		if from == ap(B) && captured == nil {
			captured = d.B
		}
		return false
	}
	m.want(B, "239.1.1.1", wire.Exclude)
	m.run(10 * time.Millisecond)
	a.Receive(ap(B), captured, m.now)
	if st := m.peer(A, B).Stats; st.Replayed != 1 {
		t.Fatalf("replay not counted: %+v", st)
	}
	if got := m.receivers(A, "10.0.0.1", "239.6.6.6"); len(got) != 0 {
		t.Fatal("hostile interest created state")
	}
	// Garbage.
	a.Receive(ap(B), []byte{1, 2, 3}, m.now)
	if st := m.peer(A, B).Stats; st.Malformed != 1 {
		t.Fatalf("garbage not counted: %+v", st)
	}
}

func TestLimits(t *testing.T) {
	m := newMesh(t)
	m.nodes[ap(A)] = New(Config{Local: ap(A), Key: key, MaxGroupsPerPeer: 10, MaxSourcesPerGroup: 4}, t0)
	m.nodes[ap(B)] = New(Config{Local: ap(B), Key: key}, t0)
	m.full()
	m.run(100 * time.Millisecond)
	b := m.nodes[ap(B)]
	for i := range 20 {
		b.SetInterest(netip.AddrFrom4([4]byte{239, 2, 0, byte(i)}), Filter{Mode: wire.Include,
			Sources: []netip.Addr{ad("10.0.0.1"), ad("10.0.0.2"), ad("10.0.0.3"), ad("10.0.0.4"), ad("10.0.0.5")}})
	}
	m.handle(ap(B), b.Flush(m.now))
	m.run(10 * time.Millisecond)
	p := m.peer(A, B)
	if p.Groups != 10 || p.Stats.OverLimit == 0 {
		t.Fatalf("groups %d over-limit %d, want 10 and counted", p.Groups, p.Stats.OverLimit)
	}
	if f, _ := m.nodes[ap(A)].Why(ap(B), ad("239.2.0.0")); len(f.Sources) != 4 {
		t.Fatalf("sources held %d, want 4", len(f.Sources))
	}
}

func TestDelPeer(t *testing.T) {
	m := newMesh(t, A, B)
	m.full()
	m.run(100 * time.Millisecond)
	m.want(B, "239.1.1.1", wire.Exclude)
	m.run(10 * time.Millisecond)
	a := m.nodes[ap(A)]
	a.AddPeer(ap(B), Store, m.now)
	if r := a.DelPeer(ap(B), Static); len(r.Groups) != 0 || !a.HasPeer(ap(B)) {
		t.Fatal("peer removed while the store still lists it")
	}
	r := a.DelPeer(ap(B), Store)
	if a.HasPeer(ap(B)) || !slices.Contains(r.Groups, ad("239.1.1.1")) {
		t.Fatalf("del: %+v", r)
	}
	if a.AddPeer(ap(A), API, m.now); a.HasPeer(ap(A)) {
		t.Fatal("a node peered with itself")
	}
}

func TestUnion(t *testing.T) {
	f := func(m wire.Mode, s ...string) Filter {
		x := Filter{Mode: m}
		for _, a := range s {
			x.Sources = append(x.Sources, ad(a))
		}
		return x
	}
	cases := []struct{ a, b, want Filter }{
		{f(wire.Include, "10.0.0.1"), f(wire.Include, "10.0.0.2"), f(wire.Include, "10.0.0.1", "10.0.0.2")},
		{f(wire.Exclude, "10.0.0.1", "10.0.0.2"), f(wire.Exclude, "10.0.0.2", "10.0.0.3"), f(wire.Exclude, "10.0.0.2")},
		{f(wire.Exclude, "10.0.0.1", "10.0.0.2"), f(wire.Include, "10.0.0.2"), f(wire.Exclude, "10.0.0.1")},
		{f(wire.Include, "10.0.0.2"), f(wire.Exclude, "10.0.0.1", "10.0.0.2"), f(wire.Exclude, "10.0.0.1")},
		{Filter{}, f(wire.Exclude), f(wire.Exclude)},
	}
	for _, c := range cases {
		if got := Union(c.a, c.b); !got.equal(c.want) {
			t.Errorf("%v ∪ %v = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// 200 peers, each wanting its own 50 groups and one shared group.
func TestTwoHundredPeers(t *testing.T) {
	addrs := []string{A}
	for i := range 200 {
		addrs = append(addrs, fmt.Sprintf("10.%d.%d.1:4790", 100+i/200, i%200))
	}
	m := newMesh(t, addrs...)
	a := m.nodes[ap(A)]
	for _, x := range addrs[1:] {
		m.handle(ap(A), a.AddPeer(ap(x), Static, m.now))
		m.handle(ap(x), m.nodes[ap(x)].AddPeer(ap(A), Static, m.now))
	}
	m.run(100 * time.Millisecond)
	for i, x := range addrs[1:] {
		n := m.nodes[ap(x)]
		for j := range 50 {
			n.SetInterest(netip.AddrFrom4([4]byte{239, byte(i), 0, byte(j)}), Filter{Mode: wire.Exclude})
		}
		n.SetInterest(ad("239.255.0.1"), Filter{Mode: wire.Exclude})
		m.handle(ap(x), n.Flush(m.now))
	}
	m.run(2 * time.Second)
	if got := a.Receivers(ad("10.0.0.1"), ad("239.255.0.1")); len(got) != 200 {
		t.Fatalf("shared group: %d receivers, want 200", len(got))
	}
	if got := a.Receivers(ad("10.0.0.1"), ad("239.7.0.3")); len(got) != 1 || got[0] != ap(addrs[8]) {
		t.Fatalf("one peer's group: %v", got)
	}
	up := 0
	for _, p := range a.Peers() {
		if p.Up && p.Synced {
			up++
		}
	}
	if up != 200 {
		t.Fatalf("%d peers up and synced", up)
	}
}
