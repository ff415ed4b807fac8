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
			bgp("65001", "10.255.1.1", "10.1.9.2", "65002", "10.1.9.1", "10.0.1.0/24"),
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
						if r.Prefix == "10.0.1.0/24" && r.NextHop == "10.1.9.1" && r.External && len(r.ASPath) == 1 && r.ASPath[0] == 65001 {
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
			if !strings.Contains(out, "RPF type:") || !strings.Contains(out, "mbgp (10.0.1.0/24)") {
				t.Errorf("show rpf text:\n%s", out)
			}
			sum, _ := c.BGPSummary()
			if len(sum.Neighbors) != 1 || sum.Neighbors[0].State != "Established" || sum.Neighbors[0].Received != 1 {
				t.Errorf("rpb bgp summary: %+v", sum)
			}
		})
	}
}
