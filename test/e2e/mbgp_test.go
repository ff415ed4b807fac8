package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
)

// mbgpLab is msdpLab with a second, multicast-only border link
// (rpa:to-rpb-m 10.1.9.1 --- rpb:to-rpa-m 10.1.9.2) and no unicast route
// at rpb toward domain A's source LAN: only MBGP, announcing 10.0.1.0/24
// in the IPv4 multicast family over that link, gives rpb an RPF path to
// the source. withBGP false is the control run: the same lab, no BGP.
func mbgpLab(withBGP bool) string {
	const igmp = "query-interval: 5s, query-response-interval: 1s"
	msdp := func(self, peer string) string {
		return fmt.Sprintf("      msdp:\n        source: %s\n        peers: [{address: %s}]\n", self, peer)
	}
	bgp := func(as, id, nbr, nas, src, nets string) string {
		if !withBGP {
			return ""
		}
		s := fmt.Sprintf("      bgp:\n        as: %s\n        router-id: %s\n        neighbors: [{address: %s, remote-as: %s, source: %s}]\n", as, id, nbr, nas, src)
		if nets != "" {
			s += "        multicast-networks: [" + nets + "]\n"
		}
		return s
	}
	lab := msdpLab(map[string]string{
		"rpa": overcastPIM("10.255.1.1", igmp, "to-a1", "to-rpb", "to-rpb-m") + msdp("10.255.1.1", "10.255.2.1") +
			bgp("65001", "10.255.1.1", "10.1.9.2", "65002", "10.1.9.1", "10.0.1.0/24, 10.255.1.1/32"),
		"rpb": overcastPIM("10.255.2.1", igmp, "to-rpa", "to-b1", "to-rpa-m") + msdp("10.255.2.1", "10.255.1.1") +
			bgp("65002", "10.255.2.1", "10.1.9.1", "65001", "10.1.9.2", ""),
	})
	lab = strings.Replace(lab, `"10.255.1.1/32 via 10.1.2.1", "10.0.1.0/24 via 10.1.2.1", `, `"10.255.1.1/32 via 10.1.2.1", `, 1)
	return lab + `  - {a: "rpa:to-rpb-m", a-addr: 10.1.9.1/24, b: "rpb:to-rpa-m", b-addr: 10.1.9.2/24}
`
}

// Seed 002 with MBGP: the receiver's RP learns the source from MSDP and
// the path to it only from MBGP; its (S,G) join goes out of the
// multicast-only link, and the receiver gets every packet after the join.
// The control run (no BGP) fails RPF at rpb and delivers nothing.
func TestMBGPRPF(t *testing.T) {
	for _, withBGP := range []bool{true, false} {
		t.Run(map[bool]string{true: "mbgp", false: "control without bgp"}[withBGP], func(t *testing.T) {
			l := startLab(t, mbgpLab(withBGP))
			msdpEstablished(t, l, "rpb", "10.255.1.1")
			c := api.NewClient(l.Socket("rpb"))
			if withBGP {
				eventually(t, 30*time.Second, "rpb's MBGP route to the source LAN", func() string {
					rs, err := c.BGPRoutes()
					if err != nil {
						return err.Error()
					}
					for _, r := range rs {
						if r.Prefix == "10.0.1.0/24" && r.NextHop == "10.1.9.1" && r.External && len(r.ASPath) == 1 && r.ASPath[0] == 65001 && len(rs) == 2 {
							return ""
						}
					}
					return fmt.Sprintf("%+v", rs)
				})
			}
			rpf, err := c.RPF("10.0.1.10")
			if err != nil {
				t.Fatal(err)
			}
			if withBGP && (rpf.Table != "mbgp" || rpf.Iface != "to-rpa-m" || rpf.Neighbor != "10.1.9.1") {
				t.Fatalf("rpb show rpf 10.0.1.10: %+v, want mbgp via to-rpa-m", rpf)
			}
			if !withBGP && rpf.Found {
				t.Fatalf("control: rpb has RPF to the source without MBGP: %+v", rpf)
			}
			r := startRecv(t, l, "rcv", "-g", G)
			eventually(t, 10*time.Second, "rcv joined", func() string { return hasGroup(api.NewClient(l.Socket("b1")), "lan", G) })
			pimNeighbors(t, l, "rpb", "to-rpa-m", "10.1.9.1")
			time.Sleep(500 * time.Millisecond)
			send(t, l, "src", "-g", G, "-count", "2000", "-rate", "1000")
			time.Sleep(300 * time.Millisecond)
			if !withBGP {
				p, _, _ := r.stop(t).Total()
				if p != 0 {
					t.Fatalf("control: %d packets arrived without an RPF path", p)
				}
				return
			}
			first := checkAfterJoin(t, r, 2000)
			t.Logf("MBGP RPF: first packet received was seq %d", first)
			if rt, ok := mroute(t, l, "rpb", "10.0.1.10", G); !ok || rt.IIF != "to-rpa-m" {
				t.Errorf("rpb (S,G): %+v, want input to-rpa-m (the MBGP path)", rt)
			}
			out, _ := l.Exec("rpb", bin, "show", "rpf", "10.0.1.10", "-s", l.Socket("rpb"))
			if !strings.Contains(out, "RPF type: multicast (bgp)") || !strings.Contains(out, "RPF route/mask: 10.0.1.0/24") {
				t.Errorf("show rpf text:\n%s", out)
			}
			sas, _ := c.MSDPSACache()
			if len(sas) != 1 || sas[0].AS != 65001 {
				t.Errorf("rpb sa-cache: %+v, want BGP/AS 65001 (the origin AS of the MBGP route to RP-A)", sas)
			}
			if v, _ := c.MSDPRPFPeer("10.255.1.1"); v.Table != "mbgp" || v.Peer != "10.255.1.1" {
				t.Errorf("rpb rpf-peer: %+v, want the originating RP, route from mbgp", v)
			}
			sum, _ := c.BGPSummary()
			if len(sum.Neighbors) != 1 || sum.Neighbors[0].State != "Established" || sum.Neighbors[0].Received != 2 {
				t.Errorf("rpb bgp summary: %+v", sum)
			}
		})
	}
}

// FRR configurations for mbgpLab: pimd as in frrMSDP (plus the
// multicast-only link), bgpd peering for the IPv4 multicast family only.
var frrMBGP = map[string][2]string{
	"a1": {frrMSDP["a1"], ""},
	"rpa": {strings.Replace(frrMSDP["rpa"], "interface to-rpb\n ip pim\n", "interface to-rpb\n ip pim\ninterface to-rpb-m\n ip pim\n", 1),
		"router bgp 65001\n bgp router-id 10.255.1.1\n no bgp ebgp-requires-policy\n no bgp network import-check\n neighbor 10.1.9.2 remote-as 65002\n neighbor 10.1.9.2 update-source 10.1.9.1\n neighbor 10.1.9.2 timers connect 2\n" +
			" address-family ipv4 unicast\n  no neighbor 10.1.9.2 activate\n exit-address-family\n address-family ipv4 multicast\n  network 10.0.1.0/24\n  neighbor 10.1.9.2 activate\n exit-address-family\n"},
	"rpb": {strings.Replace(frrMSDP["rpb"], "interface to-rpa\n ip pim\n", "interface to-rpa\n ip pim\ninterface to-rpa-m\n ip pim\n", 1),
		"router bgp 65002\n bgp router-id 10.255.2.1\n no bgp ebgp-requires-policy\n neighbor 10.1.9.1 remote-as 65001\n neighbor 10.1.9.1 update-source 10.1.9.2\n neighbor 10.1.9.1 timers connect 2\n" +
			" address-family ipv4 unicast\n  no neighbor 10.1.9.1 activate\n exit-address-family\n address-family ipv4 multicast\n  neighbor 10.1.9.1 activate\n exit-address-family\n"},
	"b1": {frrMSDP["b1"], ""},
}

// MBGP and MSDP with FRR, both ways round: domain A all FRR (bgpd
// announcing the source LAN in ipv4 multicast) and domain B Overcast
// (GoBGP learning it; its only path to the source is that route), then
// the reverse (Overcast announcing, FRR's bgpd learning; FRR's pimd
// cannot use the multicast RIB, see below). The receiver gets every
// packet after the join.
func TestMBGPWithFRR(t *testing.T) {
	for _, tc := range []struct {
		name string
		frr  []string
	}{{"FRR source domain", []string{"a1", "rpa"}}, {"FRR receiver domain", []string{"rpb", "b1"}}} {
		t.Run(tc.name, func(t *testing.T) {
			lab := mbgpLab(true)
			for _, n := range tc.frr {
				// Drop the node's overcast block: FRR runs there.
				i := strings.Index(lab, "  - name: "+n+"\n")
				j := strings.Index(lab[i:], "    overcast: |\n")
				k := strings.Index(lab[i+j:], "\n  - name: ")
				if k < 0 {
					k = strings.Index(lab[i+j:], "\nlinks:")
				}
				lab = lab[:i+j] + lab[i+j+k+1:]
			}
			l := startLab(t, lab)
			if tc.frr[0] == "rpb" {
				// FRR 8.4's pimd does not track the multicast RIB (FRR
				// issue 9667, fixed in 10.3): RPF reads only unicast
				// routes, so FRR's RP gets one over the same link the
				// MBGP route names. That MBGP routes are exchanged is
				// checked below on FRR's bgpd.
				if _, err := l.Exec("rpb", "ip", "route", "add", "10.0.1.0/24", "via", "10.1.9.1"); err != nil {
					t.Fatal(err)
				}
			}
			frrs := map[string]*frr{}
			for _, n := range tc.frr {
				frrs[n] = startFRRWith(t, l, n, frrMBGP[n][0], frrMBGP[n][1])
			}
			if _, err := l.Exec("src", "ethtool", "-K", "eth0", "tx", "off"); err != nil {
				t.Fatal(err)
			}
			overRP := "rpb"
			if frrs["rpb"] != nil {
				overRP = "rpa"
			}
			other := map[string]string{"rpa": "10.255.2.1", "rpb": "10.255.1.1"}[overRP]
			msdpEstablished(t, l, overRP, other)
			c := api.NewClient(l.Socket(overRP))
			eventually(t, 40*time.Second, overRP+"'s BGP session with FRR", func() string {
				s, err := c.BGPSummary()
				if err != nil || len(s.Neighbors) != 1 || s.Neighbors[0].State != "Established" {
					return fmt.Sprintf("%+v %v", s, err)
				}
				return ""
			})
			if overRP == "rpb" {
				eventually(t, 20*time.Second, "FRR's multicast route at Overcast rpb", func() string {
					if rpf, _ := c.RPF("10.0.1.10"); rpf.Table != "mbgp" || rpf.Iface != "to-rpa-m" {
						return fmt.Sprintf("%+v", rpf)
					}
					return ""
				})
			} else {
				eventually(t, 20*time.Second, "Overcast's multicast route at FRR rpb", func() string {
					out, _ := frrs["rpb"].vtysh("show bgp ipv4 multicast")
					if !strings.Contains(out, "10.0.1.0/24") || !strings.Contains(out, "10.1.9.1") {
						return out
					}
					return ""
				})
			}
			r := startRecv(t, l, "rcv", "-g", G)
			time.Sleep(4 * time.Second) // IGMP, (*,G) joins, PIM adjacencies on both kinds of router
			send(t, l, "src", "-g", G, "-count", "2000", "-rate", "1000")
			time.Sleep(500 * time.Millisecond)
			defer func() {
				if t.Failed() {
					for n, f := range frrs {
						for _, cmd := range []string{"show running-config", "show ip rpf 10.0.1.10", "show ip rpf", "show bgp ipv4 multicast", "show ip pim upstream", "show ip mroute", "show ip msdp sa"} {
							out, _ := f.vtysh(cmd)
							t.Logf("%s (FRR) %s:\n%s", n, cmd, out)
						}
					}
				}
			}()
			first := checkAfterJoin(t, r, 2000)
			t.Logf("%s: first packet received was seq %d", tc.name, first)
			if overRP == "rpa" {
				out, _ := frrs["rpb"].vtysh("show ip mroute")
				if !strings.Contains(out, "to-rpa-m") {
					t.Errorf("FRR rpb's (S,G) does not come in on the multicast-only link:\n%s", out)
				}
			} else if rt, ok := mroute(t, l, "rpb", "10.0.1.10", G); !ok || rt.IIF != "to-rpa-m" {
				t.Errorf("rpb (S,G): %+v, want input to-rpa-m", rt)
			}
		})
	}
}
