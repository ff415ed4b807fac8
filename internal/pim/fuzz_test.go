package pim

import (
	"net/netip"
	"testing"
	"time"

	"overcast/internal/packet/ip4"
	wire "overcast/internal/packet/pim"
	"overcast/internal/testkit"
)

// flipRoutes routes sources and RPs out of "up" via 10.0.0.1, or, once
// flipped, out of "x" via 10.0.9.1: a route change the fuzzer can make.
// The receivers' LAN 10.0.2.0/24 is directly connected.
type flipRoutes struct{ flipped bool }

func (f *flipRoutes) Lookup(a netip.Addr) (RPF, bool) {
	switch {
	case netip.MustParsePrefix("10.0.2.0/24").Contains(a):
		return RPF{Iface: "lan"}, true
	case f.flipped:
		return RPF{Iface: "x", Neighbor: netip.MustParseAddr("10.0.9.1"), Metric: 20}, true
	}
	return RPF{Iface: "up", Neighbor: netip.MustParseAddr("10.0.0.1"), Metric: 10}, true
}

// The few names a script picks from, so that its events meet each other.
var (
	fzIfaces = []string{"up", "x", "lan"}
	fzAddrs  = map[string]netip.Addr{"up": addr("10.0.0.2"), "x": addr("10.0.9.2"), "lan": addr("10.0.2.1")}
	fzNbrs   = map[string][]netip.Addr{"up": {addr("10.0.0.1"), addr("10.0.0.3")}, "x": {addr("10.0.9.1"), addr("10.0.9.3")}, "lan": {addr("10.0.2.5")}}
	fzGroups = []netip.Addr{addr("232.1.1.1"), addr("239.1.1.1"), addr("239.1.1.2"), addr("224.0.0.13")}
	fzSrcs   = []netip.Addr{addr("10.0.1.10"), addr("10.0.1.11"), addr("10.0.2.10")}
	fzRP     = addr("10.255.0.2") // 239.1.1.1; this router is the RP of 239.1.1.2
	fzOurRP  = addr("10.255.0.9")
)

// FuzzRouter drives one router with a script of events: PIM messages (the
// fuzzer's bytes through the real parser, and hellos, join/prunes,
// asserts and registers built from a few addresses so they meet state),
// IGMP membership, data, route changes and time. Whatever arrives, the
// router must not panic, must never let a timer fire late (CheckTimers
// checks each NextDeadline against a scan of every timer), and everything
// it sends must encode to a message that parses and fits the MTU. Seeded
// with FRR 8.4's packets captured in the seed lab.
func FuzzRouter(f *testing.F) {
	for _, p := range frrCaptures(f) {
		f.Add(append([]byte{0, byte(len(p))}, p...))
	}
	// Neighbours come up, joins and prunes arrive from x and up, a
	// receiver joins on lan, time passes, asserts, data, a route flip.
	f.Add([]byte{1, 1, 0, 7, 9, 1, 0, 0, 1, 2, 9, 2, 1, 1, 0, 0, 210, 2, 1, 1, 1, 0, 1, 210, 5, 2, 0, 0, 0,
		6, 40, 3, 1, 0, 1, 0, 5, 7, 0, 1, 0, 0, 6, 200, 8, 6, 130, 4, 1, 1, 0, 2, 2, 1, 3, 2, 3, 210, 6, 255})
	f.Fuzz(func(t *testing.T, script []byte) {
		fuzzRouter(t, script)
	})
}

func fuzzRouter(t *testing.T, raw []byte) {
	script := testkit.Script(raw)
	next, pick := script.Next, script.Pick
	rt := &flipRoutes{}
	rps, err := NewRPSet([]RPMapping{
		{Range: netip.MustParsePrefix("239.0.0.0/8"), RP: fzRP},
		{Range: netip.MustParsePrefix("239.1.1.2/32"), RP: fzOurRP},
	}, []netip.Prefix{DefaultSSMRange})
	if err != nil {
		t.Fatal(err)
	}
	// Small limits, so that scripts reach them: state never grows past them.
	lim := Limits{Entries: 12, InterfaceEntries: 6, RegisterSources: 3, Neighbors: 1, RegisterRate: 4}
	r := NewRouter(Config{RPs: rps, CheckTimers: true, JoinPruneInterval: 5 * time.Second, Limits: lim}, rt, func(d time.Duration) time.Duration { return d / 2 })
	r.AddLocalAddress(fzOurRP)
	now := t0
	check := func(res Result) {
		for _, s := range res.Sends {
			b := s.Msg.Marshal()
			if _, err := wire.Parse(b); err != nil {
				t.Fatalf("the router sent a %T that does not parse: %v", s.Msg, err)
			}
			if _, reg := s.Msg.(*wire.Register); !reg && len(b) > 1480 {
				t.Fatalf("the router sent a %d-byte %T", len(b), s.Msg)
			}
		}
		r.NextDeadline() // panics (CheckTimers) if a timer would fire late
		if len(r.entries) > lim.Entries {
			t.Fatalf("%d entries, limit %d", len(r.entries), lim.Entries)
		}
		for o, n := range r.created {
			if (o == registerOrigin && n > lim.RegisterSources) || (o != registerOrigin && n > lim.InterfaceEntries) {
				t.Fatalf("%d entries made by %q, past its limit", n, o)
			}
		}
		for name, i := range r.ifaces {
			if len(i.neighbors) > lim.Neighbors {
				t.Fatalf("%d neighbours on %s, limit %d", len(i.neighbors), name, lim.Neighbors)
			}
		}
		if len(r.held) > maxHeldSenders || r.Held() > maxHeldSenders*maxHeldPerSender {
			t.Fatalf("%d joins held for %d senders, past the bounds", r.Held(), len(r.held))
		}
		for k := range r.held {
			if i := r.ifaces[k.iface]; i != nil && i.Neighbor(k.src) != nil {
				t.Fatalf("joins held for %v, a neighbour already", k)
			}
		}
	}
	for i, name := range fzIfaces {
		check(r.AddInterface(now, name, IfConfig{TrackingSupport: i == 1}, fzAddrs[name], nil, uint32(i+1)))
	}
	for len(script) > 0 {
		iface := fzIfaces[pick(len(fzIfaces))]
		nbrs := fzNbrs[iface]
		from := nbrs[pick(len(nbrs))]
		g := fzGroups[pick(len(fzGroups))]
		s := fzSrcs[pick(len(fzSrcs))]
		switch next() % 9 {
		case 0: // the fuzzer's own bytes, through the parser
			if m, err := wire.Parse(script.Take(int(next()))); err == nil {
				check(r.Receive(now, iface, from, wire.AllPIMRouters, m))
			}
		case 1:
			h := wire.NewHello(uint16(next())*2, 500, 2500, next()&1 == 1, uint32(next()%4), uint32(next()%3), nil)
			check(r.Receive(now, iface, from, wire.AllPIMRouters, h))
		case 2:
			up := fzAddrs[iface] // to us, or to another router on the LAN
			if next()&1 == 1 {
				up = nbrs[0]
			}
			gs := wire.GroupSet{Group: wire.GroupPrefix(g)}
			src := wire.Source{Addr: s, MaskLen: 32, Sparse: true}
			switch next() % 4 {
			case 0:
				gs.Joins = []wire.Source{src}
			case 1:
				gs.Prunes = []wire.Source{src}
			case 2:
				gs.Joins = []wire.Source{{Addr: fzRP, MaskLen: 32, Sparse: true, WC: true, RPT: true}}
				if next()&1 == 1 {
					src.RPT = true
					gs.Prunes = []wire.Source{src}
				}
			case 3:
				gs.Prunes = []wire.Source{{Addr: fzRP, MaskLen: 32, Sparse: true, WC: true, RPT: true}}
			}
			jp := &wire.JoinPrune{Upstream: up, Holdtime: uint16(next()), Groups: []wire.GroupSet{gs}}
			check(r.Receive(now, iface, from, wire.AllPIMRouters, jp))
		case 3:
			a := &wire.Assert{Group: wire.GroupPrefix(g), Source: s, RPT: next()&1 == 1, Preference: uint32(next() % 3), Metric: uint32(next())}
			if next()&1 == 1 {
				a.Preference = 0x7fffffff // AssertCancel
			}
			check(r.Receive(now, iface, from, wire.AllPIMRouters, a))
		case 4: // a Register to us (RP of 239.1.1.2) or not
			inner := ip4.Header{TTL: 16, Protocol: 17, Src: s, Dst: g}
			reg := &wire.Register{Null: next()&1 == 1, Packet: inner.Marshal(make([]byte, int(next())%64))}
			dst := fzOurRP
			if next()&1 == 1 {
				dst = fzRP
			}
			check(r.Receive(now, "", from, dst, reg))
		case 5:
			var inc []netip.Addr
			if next()&1 == 1 {
				inc = []netip.Addr{s}
			}
			check(r.SetMembership(now, iface, g, next()&1 == 1, inc, nil))
		case 6:
			d := time.Duration(next()) * 50 * time.Millisecond
			if next()&1 == 1 {
				d *= 40 // up to about 8.5 minutes: holdtimes and keepalives run out
			}
			now = now.Add(d)
			check(r.Advance(now))
		case 7:
			check(r.DataArrivedID(now, s, g, []string{"up", "x", "lan", RegisterVIF}[pick(4)], DataKind(pick(3)), pick(256)))
		case 8:
			rt.flipped = !rt.flipped
			check(r.RPFChanged(now))
		}
		check(r.FlushJoinPrunes())
		for _, k := range r.Flows() {
			r.Route(k.S, k.G)
		}
	}
	r.Entries(now)
}

// frrCaptures are the PIM messages FRR 8.4 sent in the seed lab.
func frrCaptures(t testing.TB) [][]byte {
	var out [][]byte
	for _, c := range testkit.Captures(t, "../packet/pim/testdata/frr-8.4.txt") {
		if len(c.Payload) < 256 {
			out = append(out, c.Payload)
		}
	}
	return out
}
