package msdp

import (
	"net/netip"
	"testing"
	"time"

	wire "overcast/internal/packet/msdp"
)

// FuzzSpeaker drives one speaker with three peers through scripted
// events: sessions up and down, message bytes (SAs from any RP, requests,
// garbage) cut anywhere, time passing, originated sources changing. It
// must never panic, the cache stays within its limit, and the per-peer
// counts add up to the cache.
func FuzzSpeaker(f *testing.F) {
	sa := (&wire.SA{RP: a("10.0.0.2"), Entries: []wire.Entry{{Source: a("192.0.2.1"), Group: a("233.1.1.1")}}}).Marshal()
	f.Add([]byte{0, 0, 1, 0, 3, 1, 2, 4, 9, 5, 1})
	f.Add(append([]byte{0, 1, 2, 1, byte(len(sa))}, sa...))
	f.Fuzz(func(t *testing.T, script []byte) {
		peers := []netip.Addr{a("10.0.0.2"), a("10.0.0.3"), a("10.0.0.0")}
		cfg := Config{Originator: a("10.0.0.1"), SALimit: 20}
		for i, p := range peers {
			pc := PeerConfig{Address: p, Local: a("10.0.0.1"), SALimit: 10}
			if i == 1 {
				pc.MeshGroup = "m"
			}
			cfg.Peers = append(cfg.Peers, pc)
		}
		s, err := New(cfg, table{a("10.0.0.9"): {NextHop: a("10.0.0.3")}})
		if err != nil {
			t.Fatal(err)
		}
		now := t0
		s.Start(now)
		for len(script) >= 2 {
			op, arg := script[0], script[1]
			script = script[2:]
			p := peers[int(arg)%len(peers)]
			switch op % 6 {
			case 0:
				s.Accept(now, p, a("10.0.0.1"))
				s.Connected(now, p)
			case 1:
				n := int(arg)
				if n > len(script) {
					n = len(script)
				}
				s.Received(now, peers[int(op/6)%len(peers)], script[:n])
				script = script[n:]
			case 2:
				s.Closed(now, p, "fuzz")
			case 3:
				now = now.Add(time.Duration(arg) * time.Second)
				s.Advance(now)
			case 4:
				var sgs []SG
				for i := range int(arg % 8) {
					sgs = append(sgs, SG{S: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), G: a("233.1.1.1")})
				}
				s.Originate(now, sgs)
			case 5:
				s.RPFPeer(netip.AddrFrom4([4]byte{10, 0, 0, arg}))
				s.Request(p, a("233.1.1.1"))
			}
			if s.CacheLen() > 20 {
				t.Fatalf("cache %d over the limit", s.CacheLen())
			}
			sum := 0
			for _, v := range s.Peers() {
				sum += v.Cached
			}
			if sum != s.CacheLen() {
				t.Fatalf("peers account for %d cached SAs, cache holds %d", sum, s.CacheLen())
			}
		}
	})
}
