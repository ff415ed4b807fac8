package daemon

import (
	"net/netip"
	"strings"
	"testing"

	"overcast/internal/api"
	"overcast/internal/dataplane"
	"overcast/internal/dataplane/fake"
	"overcast/internal/packet/ip4"
	wire "overcast/internal/packet/pim"
	"overcast/internal/pim"
)

const msdpA = `pim:
  rp: [{address: 10.255.0.1}]
msdp:
  source: 10.255.0.1
  peers: [{address: 10.255.0.2}]
interfaces:
  - {name: eth0, pim: true}
  - {name: eth2, pim: true}
`

const msdpB = `pim:
  rp: [{address: 10.255.0.2}]
msdp:
  source: 10.255.0.2
  peers: [{address: 10.255.0.1}]
interfaces:
  - {name: eth1, pim: true}
  - {name: eth2, pim: true}
`

// msdpPair starts RP daemons A (10.255.0.1) and B (10.255.0.2) peering
// MSDP over a fake hub; B reaches srcs (domain A's sources) through its
// neighbour 10.0.2.2 on eth2.
func msdpPair(t *testing.T, srcs string) (a, b *harness, hub *fake.Hub) {
	hub = fake.NewHub()
	withHub := func(local string) func(h *harness, env *Env) {
		return func(h *harness, env *Env) {
			h.ln.local = []netip.Addr{netip.MustParseAddr(local)}
			env.Streams = func(s dataplane.StreamSink) dataplane.Streams { return hub.New(s) }
		}
	}
	a = newHarnessWith(t, msdpA, withHub("10.255.0.1"))
	b = newHarnessWith(t, msdpB, func(h *harness, env *Env) {
		withHub("10.255.0.2")(h, env)
		h.rt.routes[netip.MustParsePrefix(srcs)] = pim.RPF{Iface: "eth2", Neighbor: netip.MustParseAddr("10.0.2.2"), Protocol: "static"}
	})
	return a, b, hub
}

// Two RP daemons in-process, MSDP between them over the fake hub: A's
// directly connected source becomes an SA; B, with a receiver, joins
// toward the source; mroute shows A and M.
func TestMSDPTwoDaemons(t *testing.T) {
	a, b, hub := msdpPair(t, "10.0.0.0/24")
	hub.Run()
	for _, h := range []*harness{a, b} {
		v, err := h.d.View(h.now, api.PathMSDPPeer, "")
		if err != nil || v.([]api.MSDPPeer)[0].State != "Established" {
			t.Fatalf("peer: %+v %v", v, err)
		}
	}
	b.hello("eth2", "10.0.2.2")
	b.report("eth1", "10.0.1.10", asm("239.1.1.1"))
	b.sentPIM()
	a.data("eth0", "10.0.0.10", "239.1.1.1")
	hub.Run()
	sas, _ := b.d.View(b.now, api.PathMSDPSACache, "")
	if c := sas.([]api.MSDPSA); len(c) != 1 || c[0].Source != "10.0.0.10" || c[0].RP != "10.255.0.1" || !c[0].Joined {
		t.Fatalf("B sa-cache: %+v", c)
	}
	b.d.EndBurst(b.now)
	joined := false
	for _, m := range b.sentPIM() {
		if jp, ok := m.m.(*wire.JoinPrune); ok && m.iface == "eth2" {
			for _, g := range jp.Groups {
				for _, s := range g.Joins {
					if s.Addr == netip.MustParseAddr("10.0.0.10") && !s.WC {
						joined = true
					}
				}
			}
		}
	}
	if !joined {
		t.Fatal("B sent no (S,G) join toward the source")
	}
	flags := func(h *harness) string {
		v, _ := h.d.View(h.now, api.PathMRoute, "")
		for _, r := range v.([]api.MRoute) {
			if r.Source == "10.0.0.10" {
				return r.Flags
			}
		}
		return ""
	}
	if f := flags(b); !strings.Contains(f, "M") {
		t.Errorf("B (S,G) flags %q, want M", f)
	}
	if f := flags(a); !strings.Contains(f, "A") {
		t.Errorf("A (S,G) flags %q, want A", f)
	}
	// The session survives keepalives for ten minutes of virtual time.
	for range 60 {
		a.run(10e9)
		b.run(10e9)
		hub.Run()
	}
	v, _ := a.d.View(a.now, api.PathMSDPPeer, "")
	if p := v.([]api.MSDPPeer)[0]; p.State != "Established" || p.Resets != 0 || p.KeepalivesIn < 9 {
		t.Fatalf("after 10 min: %+v", p)
	}
	a.checkViews("10.0.0.10", "239.1.1.1")
	b.checkViews("10.0.0.10", "239.1.1.1")
}

// The first packet of a source that registers to A rides in A's first
// SA; B, with a receiver, joins and sends that packet out to its
// receiver itself (TTL one less), before any native packet could come.
func TestMSDPDataInSA(t *testing.T) {
	a, b, hub := msdpPair(t, "10.7.0.0/16")
	hub.Run()
	b.hello("eth2", "10.0.2.2")
	b.report("eth1", "10.0.1.10", asm("239.1.1.1"))
	inner := ip4.Header{TTL: 30, Protocol: ip4.ProtoUDP, Src: netip.MustParseAddr("10.7.0.10"), Dst: netip.MustParseAddr("239.1.1.1")}.Marshal([]byte("payload-0000"))
	a.register("10.0.0.5", "10.255.0.1", &wire.Register{Packet: inner})
	hub.Run()
	if len(b.fw.Injected) != 1 || b.fw.Injected[0].Oif != "eth1" {
		t.Fatalf("B injected %+v, want the SA's packet out of eth1", b.fw.Injected)
	}
	got := b.fw.Injected[0].Pkt
	h, _, err := ip4.Parse(got)
	if err != nil || h.TTL != 29 || h.Src != netip.MustParseAddr("10.7.0.10") || string(got[len(got)-12:]) != "payload-0000" {
		t.Fatalf("injected packet %+v %v", h, err)
	}
	v, _ := a.d.View(a.now, api.PathMSDPPeer, "")
	if p := v.([]api.MSDPPeer)[0]; p.SAOut < 1 {
		t.Fatalf("A sent no SA: %+v", p)
	}
	v, _ = b.d.View(b.now, api.PathMSDPPeer, "")
	if p := v.([]api.MSDPPeer)[0]; p.DataIn != 1 {
		t.Fatalf("B counts %d SAs with data", p.DataIn)
	}
}
