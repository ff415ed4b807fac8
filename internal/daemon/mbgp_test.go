package daemon

import (
	"net/netip"
	"testing"

	"overcast/internal/api"
	"overcast/internal/mbgp"
	"overcast/internal/pim"
)

const mbgpCfg = `pim:
  rp: [{address: 10.255.0.1}]
bgp:
  as: 65002
  router-id: 10.255.0.1
  neighbors: [{address: 10.0.2.2, remote-as: 65001}]
interfaces:
  - {name: eth1, pim: true}
  - {name: eth2, pim: true}
`

// RPF takes the MBGP table's route ahead of the unicast one, its next
// hop resolved through the unicast table; without an MBGP route the
// unicast one decides; show rpf says which.
func TestRPFPrefersMBGP(t *testing.T) {
	tbl := &mbgp.Static{Table: mbgp.NewTable()}
	tbl.Set(mbgp.Route{Prefix: netip.MustParsePrefix("10.7.0.0/16"), NextHop: netip.MustParseAddr("10.0.2.2"),
		Peer: netip.MustParseAddr("10.0.2.2"), PeerAS: 65001, External: true, ASPath: []uint32{65001}})
	h := newHarnessWith(t, mbgpCfg, func(h *harness, env *Env) {
		env.MBGP = func(func()) mbgp.Speaker { return tbl }
		h.rt.routes[netip.MustParsePrefix("10.7.0.0/16")] = pim.RPF{Iface: "eth1", Neighbor: netip.MustParseAddr("10.0.1.2"), Protocol: "ospf", Preference: 110}
		h.rt.routes[netip.MustParsePrefix("10.8.0.0/16")] = pim.RPF{Iface: "eth1", Neighbor: netip.MustParseAddr("10.0.1.2"), Protocol: "ospf", Preference: 110}
	})
	v, err := h.d.View(h.now, api.PathRPF, "10.7.1.1")
	if err != nil {
		t.Fatal(err)
	}
	r := v.(api.RPF)
	if r.Table != "mbgp" || r.Iface != "eth2" || r.Neighbor != "10.0.2.2" || r.Route != "10.7.0.0/16" || r.Preference != 20 {
		t.Fatalf("rpf 10.7.1.1: %+v, want mbgp via eth2", r)
	}
	v, _ = h.d.View(h.now, api.PathRPF, "10.8.1.1")
	if r := v.(api.RPF); r.Table != "unicast" || r.Iface != "eth1" || r.Protocol != "ospf" {
		t.Fatalf("rpf 10.8.1.1: %+v, want unicast ospf via eth1", r)
	}
	rs, _ := h.d.View(h.now, api.PathBGPMulticast, "")
	if rows := rs.([]api.BGPRoute); len(rows) != 1 || rows[0].Prefix != "10.7.0.0/16" || !rows[0].External {
		t.Fatalf("show bgp ipv4 multicast: %+v", rows)
	}
	sum, _ := h.d.View(h.now, api.PathBGPSummary, "")
	if s := sum.(api.BGPSummary); s.AS != 65002 || len(s.Neighbors) != 1 || s.Neighbors[0].Address != "10.0.2.2" {
		t.Fatalf("summary %+v", s)
	}
	h.checkViews("10.7.1.1", "239.1.1.1")
}
