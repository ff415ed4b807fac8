package overlay

import (
	"net/netip"
	"testing"
	"time"

	wire "overcast/internal/packet/overlay"
)

// FuzzNode drives one node with scripted events from three peers (signed
// messages of every kind with fuzzed fields, raw bytes, restarts, time)
// and checks after each that the limits hold and the group index is the
// peers' interest exactly.
func FuzzNode(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{2, 0, 0, 1, 5, 9, 2, 1, 0, 200, 3, 1, 4, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		now := t0
		cfg := Config{Local: ap(A), Key: key, MaxGroupsPerPeer: 16, MaxSourcesPerGroup: 3}
		n := New(cfg, now)
		peers := []netip.AddrPort{ap(B), ap(C), ap(D)}
		for _, p := range peers[:2] {
			n.AddPeer(p, Static, now)
		}
		seq := map[netip.AddrPort]uint64{}
		epoch := map[netip.AddrPort]uint64{}
		next := func() byte {
			if len(b) == 0 {
				return 0
			}
			x := b[0]
			b = b[1:]
			return x
		}
		records := func() []wire.Record {
			var rs []wire.Record
			for range int(next() % 24) {
				r := wire.Record{Group: netip.AddrFrom4([4]byte{239, 0, 0, next() % 32}), Mode: wire.Mode(1 + next()%2)}
				for range int(next() % 6) {
					r.Sources = append(r.Sources, netip.AddrFrom4([4]byte{10, 0, 0, next() % 8}))
				}
				rs = append(rs, r)
			}
			return rs
		}
		for len(b) > 0 {
			op, who := next(), peers[int(next())%len(peers)]
			signed := func(m wire.Message) []byte {
				if next()%8 != 0 {
					seq[who]++
				}
				if epoch[who] == 0 {
					epoch[who] = 100
				}
				return wire.Marshal(key, wire.Header{Epoch: epoch[who], Seq: seq[who]}, m)
			}
			switch op % 9 {
			case 0:
				n.Receive(who, signed(wire.Interest{From: uint64(next() % 4), To: uint64(next() % 6), Records: records()}), now)
			case 1:
				n.Receive(who, signed(wire.Interest{To: uint64(next() % 4), Flags: next() % 4, Part: uint16(next() % 4), Records: records()}), now)
			case 2:
				n.Receive(who, signed(wire.Hello{InterestVersion: uint64(next() % 4), Sent: uint64(next()), Echo: uint64(now.UnixNano()) - uint64(next()), HoldMillis: uint32(next()) * 20}), now)
			case 3:
				n.Receive(who, signed(wire.SyncRequest{Known: uint64(next())}), now)
			case 4:
				raw := make([]byte, int(next()%64))
				for i := range raw {
					raw[i] = next()
				}
				n.Receive(who, raw, now)
			case 5:
				now = now.Add(time.Duration(next()) * 20 * time.Millisecond)
				n.Advance(now)
			case 6:
				if next()%2 == 0 {
					n.AddPeer(who, Origin(1+next()%3), now)
				} else {
					n.DelPeer(who, Origin(1+next()%3))
				}
			case 7:
				epoch[who] += uint64(next() % 3) // a restart, or an old epoch replayed
				seq[who] = 0
			case 8:
				for _, r := range records() {
					n.SetInterest(r.Group, Filter{Mode: r.Mode, Sources: r.Sources})
				}
				n.Flush(now)
			}
			check(t, n)
		}
	})
}

func check(t *testing.T, n *Node) {
	want := map[netip.Addr]map[netip.AddrPort]bool{}
	for a, p := range n.peers {
		if len(p.interest) > n.cfg.MaxGroupsPerPeer {
			t.Fatalf("peer %s holds %d groups, limit %d", a, len(p.interest), n.cfg.MaxGroupsPerPeer)
		}
		if !p.up && len(p.interest) > 0 {
			t.Fatalf("peer %s is down with interest", a)
		}
		for g, f := range p.interest {
			if len(f.Sources) > n.cfg.MaxSourcesPerGroup || f.Empty() {
				t.Fatalf("peer %s group %s filter %+v", a, g, f)
			}
			if want[g] == nil {
				want[g] = map[netip.AddrPort]bool{}
			}
			want[g][a] = true
		}
	}
	if len(want) != len(n.byGroup) {
		t.Fatalf("index has %d groups, interest %d", len(n.byGroup), len(want))
	}
	for g, m := range want {
		if len(n.byGroup[g]) != len(m) {
			t.Fatalf("index for %s: %v, want %v", g, n.byGroup[g], m)
		}
		for a := range m {
			if !n.byGroup[g][a] {
				t.Fatalf("index for %s lacks %s", g, a)
			}
		}
	}
}
