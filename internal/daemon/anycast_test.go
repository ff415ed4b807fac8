package daemon

import (
	"net/netip"
	"testing"

	"overcast/internal/dataplane"
	"overcast/internal/packet/ip4"
	wire "overcast/internal/packet/pim"
)

// This router is 10.255.0.1 in an RFC 4610 set sharing 10.255.0.100
// with 10.255.0.2 and 10.255.0.3.
const anycastCfg = `pim:
  rp: [{address: 10.255.0.100}]
  anycast-rp: [{address: 10.255.0.100, members: [10.255.0.1, 10.255.0.2, 10.255.0.3]}]
interfaces:
  - {name: eth0, pim: true}
  - {name: eth1, pim: true}
`

func (h *harness) register(src, dst string, reg *wire.Register) {
	hd := ip4.Header{TTL: 64, Protocol: ip4.ProtoPIM, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst)}
	h.d.Packet(h.now, "", dataplane.PIM, hd.Marshal(reg.Marshal()))
	h.d.EndBurst(h.now)
}

// A Register from a DR reaches the anycast address: this RP takes it and
// copies it to the two other members, from its own unique address. The
// copy another member forwards to this one's unique address is taken (no
// Register-Stop for a wrong RP) and not forwarded again.
func TestAnycastRPForwardsRegisters(t *testing.T) {
	h := newHarnessWith(t, anycastCfg, func(h *harness, env *Env) {
		h.ln.local = []netip.Addr{netip.MustParseAddr("10.255.0.1"), netip.MustParseAddr("10.255.0.100")}
	})
	h.io.Take()
	inner := ip4.Header{TTL: 63, Protocol: ip4.ProtoUDP, Src: netip.MustParseAddr("10.0.0.10"), Dst: netip.MustParseAddr("239.1.1.1")}.Marshal(make([]byte, 12))
	h.register("10.0.0.5", "10.255.0.100", &wire.Register{Packet: inner})
	var copies []string
	for _, s := range h.io.Take() {
		m, err := wire.Parse(s.Pkt)
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := m.(*wire.Register); ok {
			if s.Src != netip.MustParseAddr("10.255.0.1") || string(r.Packet) != string(inner) {
				t.Errorf("forwarded %+v from %s", r, s.Src)
			}
			copies = append(copies, s.Dst.String())
		}
	}
	if len(copies) != 2 || copies[0] != "10.255.0.2" || copies[1] != "10.255.0.3" {
		t.Fatalf("register copies to %v, want 10.255.0.2 and 10.255.0.3", copies)
	}
	// From a member, to this router's unique address.
	inner2 := ip4.Header{TTL: 63, Protocol: ip4.ProtoUDP, Src: netip.MustParseAddr("10.7.0.10"), Dst: netip.MustParseAddr("239.1.1.2")}.Marshal(make([]byte, 12))
	h.register("10.255.0.2", "10.255.0.1", &wire.Register{Packet: inner2})
	for _, s := range h.io.Take() {
		if m, _ := wire.Parse(s.Pkt); m != nil && m.Type() == wire.TypeRegister {
			t.Fatalf("a member's Register forwarded again to %s", s.Dst)
		}
	}
	found := false
	for _, f := range h.d.PIM().Flows() {
		if f.S == netip.MustParseAddr("10.7.0.10") {
			found = true
		}
	}
	if !found {
		t.Fatal("the member's Register made no (S,G) state here")
	}
	if h.d.PIM().AnycastForwarded() != 1 {
		t.Errorf("forwarded count %d", h.d.PIM().AnycastForwarded())
	}
}
