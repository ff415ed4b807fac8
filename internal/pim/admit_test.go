package pim

import (
	"net/netip"
	"testing"
	"time"

	"overcast/internal/packet/ip4"
	wire "overcast/internal/packet/pim"
)

// admitLab is one router: "lan" 10.0.2.1/24 with the neighbour 10.0.2.5,
// "up" 10.0.0.2/24 toward sources and the RP 10.255.0.2 of 239/8; this
// router is the RP of 239.9.0.0/16 (10.255.0.9).
func admitLab(t *testing.T, lim Limits, tune func(*Config)) *Router {
	t.Helper()
	rps, err := NewRPSet([]RPMapping{
		{Range: netip.MustParsePrefix("239.0.0.0/8"), RP: addr("10.255.0.2")},
		{Range: netip.MustParsePrefix("239.9.0.0/16"), RP: addr("10.255.0.9")},
	}, []netip.Prefix{DefaultSSMRange})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{RPs: rps, Limits: lim, CheckTimers: true}
	if tune != nil {
		tune(&cfg)
	}
	r := NewRouter(cfg, &flipRoutes{}, noJitter)
	r.AddLocalAddress(addr("10.255.0.9"))
	r.AddInterface(t0, "lan", IfConfig{DRPriority: 10, Subnets: []netip.Prefix{netip.MustParsePrefix("10.0.2.0/24")}}, addr("10.0.2.1"), nil, 1)
	r.AddInterface(t0, "up", IfConfig{Subnets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}}, addr("10.0.0.2"), nil, 2)
	hello := wire.NewHello(105, 500, 2500, false, 1, 7, nil)
	r.Receive(t0, "lan", addr("10.0.2.5"), wire.AllPIMRouters, hello)
	r.Receive(t0, "up", addr("10.0.0.1"), wire.AllPIMRouters, hello)
	if r.ifaces["lan"].Neighbor(addr("10.0.2.5")) == nil {
		t.Fatal("test bug: the on-subnet neighbour was refused")
	}
	return r
}

func join(up netip.Addr, g netip.Addr, srcs ...netip.Addr) *wire.JoinPrune {
	gs := wire.GroupSet{Group: wire.GroupPrefix(g)}
	for _, s := range srcs {
		gs.Joins = append(gs.Joins, wire.Source{Addr: s, MaskLen: 32, Sparse: true})
	}
	return &wire.JoinPrune{Upstream: up, Holdtime: 210, Groups: []wire.GroupSet{gs}}
}

func register(s, g netip.Addr) *wire.Register {
	h := ip4.Header{TTL: 16, Protocol: 17, Src: s, Dst: g}
	return &wire.Register{Packet: h.Marshal(make([]byte, 8))}
}

func wantDrop(t *testing.T, r *Router, iface string, why Reason, n uint64) {
	t.Helper()
	if d := r.Drops(iface); d[why] != n {
		t.Errorf("%s drops %v = %d, want %d (all: %v)", iface, why, d[why], n, d)
	}
}

// Each spoofing case of the hostile-LAN report: refused, counted under
// its reason, and nothing changes.
func TestAdmissionRefusesSpoofedControl(t *testing.T) {
	us := addr("10.0.2.1")
	g, s := addr("239.1.1.1"), addr("10.0.1.10")

	t.Run("join from an address that sent no hello", func(t *testing.T) {
		r := admitLab(t, Limits{}, nil)
		later := t0.Add(HoldNewNeighbor)
		res := r.Receive(later, "lan", addr("10.0.2.66"), wire.AllPIMRouters, join(us, g, s))
		if len(r.entries) != 0 || len(res.Sends) != 0 {
			t.Errorf("state %v, sent %v", r.entries, res.Sends)
		}
		wantDrop(t, r, "lan", NotNeighbor, 1)
		// The same join from the neighbour is taken.
		r.Receive(later, "lan", addr("10.0.2.5"), wire.AllPIMRouters, join(us, g, s))
		if r.entries[SG{S: s, G: g}] == nil {
			t.Error("the neighbour's join was refused")
		}
	})
	t.Run("join before its hello, just after start", func(t *testing.T) {
		// A restarted router's neighbours send their joins at once and
		// their Hellos within 5 s: the joins wait for the Hello.
		r := admitLab(t, Limits{}, nil)
		nb := addr("10.0.2.77")
		r.Receive(t0, "lan", nb, wire.AllPIMRouters, join(us, g, s))
		if len(r.entries) != 0 || r.Held() != 1 {
			t.Fatalf("before the hello: state %v, held %d", r.entries, r.Held())
		}
		r.Receive(t0.Add(3*time.Second), "lan", nb, wire.AllPIMRouters, wire.NewHello(105, 500, 2500, false, 1, 7, nil))
		if r.entries[SG{S: s, G: g}] == nil || r.Held() != 0 {
			t.Fatalf("after the hello the held join was not taken: state %v, held %d", r.entries, r.Held())
		}
		wantDrop(t, r, "lan", NotNeighbor, 1) // it was refused when it came
		// One whose Hello never comes is dropped when it expires.
		r.Receive(t0.Add(time.Second), "lan", addr("10.0.2.78"), wire.AllPIMRouters, join(us, g, addr("10.0.1.11")))
		r.Receive(t0.Add(12*time.Second), "lan", addr("10.0.2.5"), wire.AllPIMRouters, wire.NewHello(105, 500, 2500, false, 1, 0x5, nil))
		r.Receive(t0.Add(12*time.Second), "lan", addr("10.0.2.79"), wire.AllPIMRouters, join(us, g, s))
		if r.Held() != 1 { // 10.0.2.78's expired, 10.0.2.79's waits
			t.Errorf("held %d, want 1", r.Held())
		}
		wantDrop(t, r, "lan", NotNeighbor, 3)
		// Off the subnet is never held.
		r2 := admitLab(t, Limits{}, nil)
		r2.Receive(t0, "lan", addr("192.0.2.7"), wire.AllPIMRouters, join(us, g, s))
		if r2.Held() != 0 {
			t.Errorf("a join from off the LAN was held")
		}
	})
	t.Run("join from off the LAN", func(t *testing.T) {
		r := admitLab(t, Limits{}, nil)
		r.Receive(t0, "lan", addr("192.0.2.7"), wire.AllPIMRouters, join(us, g, s))
		if len(r.entries) != 0 {
			t.Errorf("state %v", r.entries)
		}
		wantDrop(t, r, "lan", NotNeighbor, 1)
	})
	t.Run("hello from off the LAN with holdtime 65535", func(t *testing.T) {
		r := admitLab(t, Limits{}, nil)
		dr := r.ifaces["lan"].DR()
		h := wire.NewHello(0xffff, 500, 2500, false, 1000, 9, nil)
		res := r.Receive(t0, "lan", addr("192.0.2.250"), wire.AllPIMRouters, h)
		if len(r.ifaces["lan"].Neighbors()) != 1 || r.ifaces["lan"].DR() != dr || len(res.Events) != 0 {
			t.Errorf("neighbours %v, DR %v (was %v), events %v", r.ifaces["lan"].Neighbors(), r.ifaces["lan"].DR(), dr, res.Events)
		}
		wantDrop(t, r, "lan", HelloOffSubnet, 1)
	})
	t.Run("assert from off the LAN", func(t *testing.T) {
		r := admitLab(t, Limits{}, nil)
		r.SetMembership(t0, "lan", g, true, nil, nil)
		a := &wire.Assert{Group: wire.GroupPrefix(g), Source: s, Preference: 0, Metric: 0}
		r.Receive(t0, "lan", addr("192.0.2.9"), wire.AllPIMRouters, a)
		if e := r.entries[SG{S: s, G: g}]; e != nil && e.asserts != nil {
			t.Errorf("assert state from a non-neighbour: %+v", e.asserts)
		}
		wantDrop(t, r, "lan", NotNeighbor, 1)
	})
	t.Run("neighbour filter", func(t *testing.T) {
		r := admitLab(t, Limits{}, nil)
		r.ifaces["lan"].cfg.NeighborFilter = []netip.Prefix{netip.MustParsePrefix("10.0.2.5/32")}
		r.Receive(t0, "lan", addr("10.0.2.6"), wire.AllPIMRouters, wire.NewHello(105, 500, 2500, false, 1, 3, nil))
		if len(r.ifaces["lan"].Neighbors()) != 1 {
			t.Errorf("neighbours %v", r.ifaces["lan"].Neighbors())
		}
		wantDrop(t, r, "lan", NeighborFiltered, 1)
	})
	t.Run("neighbour limit", func(t *testing.T) {
		r := admitLab(t, Limits{Neighbors: 2}, nil)
		for i := range 5 {
			r.Receive(t0, "lan", netip.AddrFrom4([4]byte{10, 0, 2, byte(10 + i)}), wire.AllPIMRouters, wire.NewHello(105, 500, 2500, false, 1, 3, nil))
		}
		if n := len(r.ifaces["lan"].Neighbors()); n != 2 {
			t.Errorf("%d neighbours, limit 2", n)
		}
		wantDrop(t, r, "lan", NeighborLimit, 4)
		// A known neighbour's hellos still refresh it.
		r.Receive(t0.Add(time.Minute), "lan", addr("10.0.2.5"), wire.AllPIMRouters, wire.NewHello(105, 500, 2500, false, 1, 7, nil))
		wantDrop(t, r, "lan", NeighborLimit, 4)
	})
	t.Run("register-stop from a host that is not the RP", func(t *testing.T) {
		r := admitLab(t, Limits{}, nil)
		rs := &wire.RegisterStop{Group: wire.GroupPrefix(g), Source: s}
		r.Receive(t0, "", addr("10.0.2.66"), us, rs)
		wantDrop(t, r, "", RegisterStopNotRP, 1)
		r.Receive(t0, "", addr("10.255.0.2"), us, rs)
		wantDrop(t, r, "", RegisterStopNotRP, 1)
	})
}

// Registers at the RP (10.255.0.9, 239.9/16): only valid inner packets,
// outside the SSM range, from the register filter, at the sender's rate.
func TestAdmissionRegisters(t *testing.T) {
	rp, g := addr("10.255.0.9"), addr("239.9.1.1")
	cases := []struct {
		name string
		s, g netip.Addr
		why  Reason
	}{
		{"forged multicast inner source", addr("224.1.1.1"), g, RegisterBadInner},
		{"unspecified inner source", addr("0.0.0.0"), g, RegisterBadInner},
		{"loopback inner source", addr("127.0.0.1"), g, RegisterBadInner},
		{"unicast inner group", addr("10.0.1.10"), addr("10.9.9.9"), RegisterBadInner},
		{"link-local inner group", addr("10.0.1.10"), addr("224.0.0.13"), RegisterBadInner},
		{"inner group in the SSM range", addr("10.0.1.10"), addr("232.1.1.1"), RegisterSSM},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := admitLab(t, Limits{}, nil)
			res := r.Receive(t0, "up", addr("10.0.0.1"), rp, register(c.s, c.g))
			if len(r.entries) != 0 || len(res.Sends) != 0 {
				t.Errorf("state %v, sent %v", r.entries, res.Sends)
			}
			wantDrop(t, r, "up", c.why, 1)
		})
	}
	t.Run("register filter", func(t *testing.T) {
		r := admitLab(t, Limits{}, func(c *Config) {
			c.RegisterFrom = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}
			c.RegisterSources = []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")}
		})
		r.Receive(t0, "up", addr("10.77.0.1"), rp, register(addr("10.0.1.10"), g)) // sender not listed
		r.Receive(t0, "up", addr("10.0.0.1"), rp, register(addr("10.9.9.9"), g))   // source not listed
		if len(r.entries) != 0 {
			t.Errorf("state %v", r.entries)
		}
		wantDrop(t, r, "up", RegisterFiltered, 2)
		r.Receive(t0, "up", addr("10.0.0.1"), rp, register(addr("10.0.1.10"), g))
		if r.entries[SG{S: addr("10.0.1.10"), G: g}] == nil {
			t.Error("a listed DR's Register for a listed source was refused")
		}
	})
	t.Run("rate per sender", func(t *testing.T) {
		r := admitLab(t, Limits{RegisterRate: 10}, nil)
		for i := range 30 {
			r.Receive(t0.Add(time.Duration(i)*time.Millisecond), "up", addr("10.0.0.1"), rp, register(addr("10.0.1.10"), g))
		}
		wantDrop(t, r, "up", RegisterRate, 20)
		// Another DR has its own bucket; a second later the first has its rate again.
		r.Receive(t0.Add(30*time.Millisecond), "up", addr("10.0.0.3"), rp, register(addr("10.0.1.11"), g))
		r.Receive(t0.Add(2*time.Second), "up", addr("10.0.0.1"), rp, register(addr("10.0.1.10"), g))
		wantDrop(t, r, "up", RegisterRate, 20)
	})
	t.Run("register state limit", func(t *testing.T) {
		r := admitLab(t, Limits{RegisterSources: 3}, nil)
		for i := range 10 {
			r.Receive(t0, "up", addr("10.0.0.1"), rp, register(netip.AddrFrom4([4]byte{10, 0, 1, byte(10 + i)}), g))
		}
		if n := len(r.entries); n != 3 {
			t.Errorf("%d entries, register-sources limit 3", n)
		}
		wantDrop(t, r, "", RegisterStateLimit, 7)
	})
}

// A join flood from a neighbour: the state it makes stops at the limits,
// the state that was there is untouched, and the counters say which limit.
func TestAdmissionStateLimits(t *testing.T) {
	us, nbr := addr("10.0.2.1"), addr("10.0.2.5")
	g := addr("239.1.1.1")
	r := admitLab(t, Limits{Entries: 50, InterfaceEntries: 20}, nil)
	r.SetMembership(t0, "up", addr("239.2.2.2"), true, nil, nil) // local state first
	for i := range 100 {
		s := netip.AddrFrom4([4]byte{10, 0, 1, byte(i)})
		if i == 0 {
			s = addr("10.0.1.200")
		}
		r.Receive(t0, "lan", nbr, wire.AllPIMRouters, join(us, g, s))
	}
	if n := r.created["lan"]; n != 20 {
		t.Errorf("%d entries made by joins on lan, limit 20", n)
	}
	wantDrop(t, r, "lan", InterfaceStateLimit, 80)
	if r.entries[SG{G: addr("239.2.2.2")}] == nil {
		t.Error("the local (*,G) went")
	}
	// The total limit: data from many sources to a group with receivers.
	r.SetMembership(t0, "lan", addr("239.3.3.3"), true, nil, nil)
	for i := range 100 {
		r.DataArrived(t0, netip.AddrFrom4([4]byte{10, 0, 5, byte(i)}), addr("239.3.3.3"), "up", DataNoCache)
	}
	if len(r.entries) != 50 {
		t.Errorf("%d entries, limit 50", len(r.entries))
	}
	if d := r.Drops("up"); d[StateLimit] == 0 {
		t.Errorf("no state-limit drops: %v", d)
	}
	// Expiry gives the room back.
	now := t0.Add(10 * time.Minute)
	r.Advance(now)
	if n := r.created["lan"]; n != 0 {
		t.Errorf("after expiry %d entries still counted for lan", n)
	}
	r.Receive(now, "lan", nbr, wire.AllPIMRouters, wire.NewHello(105, 500, 2500, false, 1, 7, nil))
	r.Receive(now, "lan", nbr, wire.AllPIMRouters, join(us, g, addr("10.0.1.99")))
	if r.entries[SG{S: addr("10.0.1.99"), G: g}] == nil {
		t.Error("a join after the flood expired was refused")
	}
}
