package pim

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	wire "overcast/internal/packet/pim"
)

var t0 = time.Unix(1_700_000_000, 0)

func noJitter(time.Duration) time.Duration { return 0 }

func hello(prio uint32, hasPrio bool, gen uint32, hold uint16) *wire.Hello {
	return &wire.Hello{Holdtime: hold, HasDRPriority: hasPrio, DRPriority: prio, HasGenerationID: true, GenerationID: gen,
		HasLANPruneDelay: true, PropagationDelay: 500, OverrideInterval: 2500}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func kinds(out Output) []string {
	var k []string
	for _, e := range out.Events {
		k = append(k, e.Kind.String()+" "+e.Addr.String())
	}
	return k
}

func TestHelloSchedule(t *testing.T) {
	i, out := NewInterface(IfConfig{}, addr("10.0.0.1"), nil, 42, func(time.Duration) time.Duration { return 2 * time.Second }, t0)
	if len(out.Packets) != 1 || out.Packets[0].Dst != wire.AllPIMRouters {
		t.Fatalf("no hello at start: %+v", out)
	}
	h := out.Packets[0].Msg.(*wire.Hello)
	if h.Holdtime != 105 || h.DRPriority != 1 || h.GenerationID != 42 || h.PropagationDelay != 500 || h.OverrideInterval != 2500 {
		t.Fatalf("start hello %+v", h)
	}
	// A second startup hello within Triggered_Hello_Delay, then the period.
	if got := i.NextDeadline(); !got.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("second hello at %v", got.Sub(t0))
	}
	var o Output
	i.Advance(t0.Add(2*time.Second), &o)
	if len(o.Packets) != 1 {
		t.Fatal("no second startup hello")
	}
	o = Output{}
	i.Advance(t0.Add(31*time.Second), &o)
	if len(o.Packets) != 0 {
		t.Fatal("hello before the period")
	}
	i.Advance(t0.Add(32*time.Second), &o)
	if len(o.Packets) != 1 {
		t.Fatal("no periodic hello")
	}
	bye := i.Shutdown().Packets[0].Msg.(*wire.Hello)
	if bye.Holdtime != 0 {
		t.Fatalf("goodbye holdtime %d", bye.Holdtime)
	}
	b, _ := wire.Parse(bye.Marshal())
	if b.(*wire.Hello).Holdtime != 0 {
		t.Fatal("goodbye does not encode holdtime 0")
	}
}

func TestNeighborLifecycle(t *testing.T) {
	i, _ := NewInterface(IfConfig{}, addr("10.0.0.1"), nil, 1, func(max time.Duration) time.Duration { return max / 5 }, t0)
	var o Output
	i.Advance(t0.Add(time.Second), &o) // the second startup hello
	n := addr("10.0.0.2")
	out := i.ReceiveHello(t0.Add(time.Second), n, hello(1, true, 7, 105))
	if got := kinds(out); !slices.Equal(got, []string{"neighbor-up 10.0.0.2", "dr-changed 10.0.0.2"}) {
		t.Fatalf("events %v", got)
	}
	// A new neighbour triggers a hello within Triggered_Hello_Delay (jitter 1 s here).
	if got := i.NextDeadline(); !got.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("triggered hello at %v", got.Sub(t0))
	}
	o = Output{}
	i.Advance(t0.Add(2*time.Second), &o)
	if len(o.Packets) != 1 {
		t.Fatal("triggered hello not sent")
	}
	// Refreshing hellos keep it; the same generation ID is no event.
	out = i.ReceiveHello(t0.Add(100*time.Second), n, hello(1, true, 7, 105))
	if len(out.Events) != 0 {
		t.Fatalf("refresh produced %v", kinds(out))
	}
	// A new generation ID means it restarted.
	out = i.ReceiveHello(t0.Add(101*time.Second), n, hello(1, true, 8, 105))
	if got := kinds(out); !slices.Equal(got, []string{"neighbor-restarted 10.0.0.2"}) {
		t.Fatalf("events %v", got)
	}
	// Holdtime expiry removes it and the DR falls back to us.
	o = Output{}
	i.Advance(t0.Add(101*time.Second+104*time.Second), &o)
	if i.Neighbor(n) == nil {
		t.Fatal("expired a second early")
	}
	o = Output{}
	i.Advance(t0.Add(101*time.Second+105*time.Second), &o)
	if got := kinds(o); !slices.Equal(got, []string{"neighbor-down 10.0.0.2", "dr-changed 10.0.0.1"}) || i.Neighbor(n) != nil || !i.IsDR() {
		t.Fatalf("expiry events %v", got)
	}
	// Goodbye removes at once; holdtime 0xffff never expires.
	i.ReceiveHello(t0.Add(300*time.Second), n, hello(1, true, 8, 0xffff))
	o = Output{}
	i.Advance(t0.Add(300*24*time.Hour), &o)
	if i.Neighbor(n) == nil {
		t.Fatal("infinite holdtime expired")
	}
	out = i.ReceiveHello(t0.Add(301*time.Second), n, hello(1, true, 8, 0))
	if got := kinds(out); !slices.Equal(got, []string{"neighbor-down 10.0.0.2", "dr-changed 10.0.0.1"}) {
		t.Fatalf("goodbye events %v", got)
	}
	// Our own hellos looped back are ignored.
	if out := i.ReceiveHello(t0, addr("10.0.0.1"), hello(1, true, 1, 105)); len(out.Events) != 0 || len(i.Neighbors()) != 0 {
		t.Fatal("own hello made a neighbour")
	}
}

// naiveDR is section 4.3.2 written as a sort.
func naiveDR(self netip.Addr, selfPrio uint32, ns []Neighbor) netip.Addr {
	type cand struct {
		a       netip.Addr
		p       uint32
		hasPrio bool
	}
	cs := []cand{{self, selfPrio, true}}
	all := true
	for _, n := range ns {
		cs = append(cs, cand{n.Addr, n.DRPriority, n.HasDRPriority})
		all = all && n.HasDRPriority
	}
	slices.SortFunc(cs, func(x, y cand) int {
		if all && x.p != y.p {
			if x.p > y.p {
				return -1
			}
			return 1
		}
		return y.a.Compare(x.a)
	})
	return cs[0].a
}

func TestDRElectionOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for seed := range 500 {
		self := netip.AddrFrom4([4]byte{10, 0, 0, byte(r.IntN(20) + 1)})
		selfPrio := uint32(r.IntN(3))
		i, _ := NewInterface(IfConfig{DRPriority: selfPrio}, self, nil, 1, noJitter, t0)
		if selfPrio == 0 {
			selfPrio = 1 // the default
		}
		now := t0
		for range r.IntN(8) + 1 {
			now = now.Add(time.Second)
			a := netip.AddrFrom4([4]byte{10, 0, 0, byte(r.IntN(20) + 1)})
			hold := uint16(105)
			if r.IntN(6) == 0 {
				hold = 0
			}
			i.ReceiveHello(now, a, hello(uint32(r.IntN(3)), r.IntN(5) != 0, 1, hold))
			if want := naiveDR(self, selfPrio, i.Neighbors()); i.DR() != want {
				t.Fatalf("seed %d: DR %s, oracle %s; self %s prio %d, neighbours %+v", seed, i.DR(), want, self, selfPrio, i.Neighbors())
			}
		}
	}
}

func TestLANPruneDelay(t *testing.T) {
	i, _ := NewInterface(IfConfig{TrackingSupport: true}, addr("10.0.0.1"), nil, 1, noJitter, t0)
	if i.JPOverrideInterval() != 3*time.Second || i.SuppressionEnabled() {
		t.Fatalf("alone: override %v, suppression %v", i.JPOverrideInterval(), i.SuppressionEnabled())
	}
	h := hello(1, true, 1, 105)
	h.PropagationDelay, h.OverrideInterval, h.TrackingSupport = 1000, 3000, true
	i.ReceiveHello(t0, addr("10.0.0.2"), h)
	if i.JPOverrideInterval() != 4*time.Second || i.SuppressionEnabled() {
		t.Fatalf("with a slower tracking neighbour: %v, suppression %v", i.JPOverrideInterval(), i.SuppressionEnabled())
	}
	// A neighbour without the option turns LAN delay off: defaults, and suppression on.
	old := hello(1, true, 1, 105)
	old.HasLANPruneDelay = false
	i.ReceiveHello(t0, addr("10.0.0.3"), old)
	if i.LANDelayEnabled() || i.JPOverrideInterval() != 3*time.Second || !i.SuppressionEnabled() {
		t.Fatalf("with an old neighbour: %v, suppression %v", i.JPOverrideInterval(), i.SuppressionEnabled())
	}
}

// FRR 8.4's hello, as captured (../packet/pim/testdata), makes a neighbour
// with FRR's defaults; FRR's secondary-address list (an IPv6 link-local)
// adds no IPv4 secondaries.
func TestFRRHelloMakesNeighbor(t *testing.T) {
	b := []byte{0x20, 0x00, 0x75, 0xee, 0x00, 0x01, 0x00, 0x02, 0x00, 0x69, 0x00, 0x02, 0x00, 0x04, 0x01, 0xf4, 0x09, 0xc4,
		0x00, 0x13, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x14, 0x00, 0x04, 0x68, 0x2b, 0x21, 0x54,
		0x00, 0x18, 0x00, 0x12, 0x02, 0x00, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x00, 0x75, 0x6f, 0xff, 0xfe, 0x3b, 0x64, 0xdc}
	m, err := wire.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	i, _ := NewInterface(IfConfig{}, addr("10.1.12.1"), nil, 1, noJitter, t0)
	i.ReceiveHello(t0, addr("10.1.12.2"), m.(*wire.Hello))
	n := i.Neighbor(addr("10.1.12.2"))
	if n == nil || n.Holdtime != 105*time.Second || n.DRPriority != 1 || n.GenerationID != 0x682b2154 || len(n.Secondary) != 0 || i.DR() != addr("10.1.12.2") {
		t.Fatalf("%+v, DR %s", n, i.DR())
	}
}
