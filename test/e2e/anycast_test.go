package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
)

// anycastLab: two RPs share 10.255.0.100 (rpx, unique 10.255.0.11; rpy,
// unique 10.255.0.12). The source's first hop fh is nearest rpx, the
// receiver's last hop lh nearest rpy; each hop also reaches the other RP
// (metric 20), taken when the nearer one's links go down.
//
//	src --- fh ---- rpx ---- lh --- rcv
//	          \      |      /
//	           `--- rpy --'
//
// mode "msdp": MSDP between the unique addresses, each its own
// originator; mode "pim": RFC 4610 register forwarding, no MSDP.
func anycastLab(mode string) string {
	const igmp = "query-interval: 5s, query-response-interval: 1s"
	rp := func(self, other string, ifs ...string) string {
		c := overcastPIM("10.255.0.100", igmp, ifs...)
		switch mode {
		case "msdp":
			c += fmt.Sprintf("      msdp:\n        source: %s\n        peers: [{address: %s}]\n", self, other)
		case "pim":
			c = strings.Replace(c, "        rp: [{address: 10.255.0.100}]\n",
				"        rp: [{address: 10.255.0.100}]\n        anycast-rp: [{address: 10.255.0.100, members: [10.255.0.11, 10.255.0.12]}]\n", 1)
		}
		return c
	}
	return `name: anycast
nodes:
  - name: src
    routes: ["default via 10.0.1.1"]
  - name: rcv
    routes: ["default via 10.0.3.1"]
  - name: fh
    kind: router
    sysctls: [net.ipv4.conf.all.ignore_routes_with_linkdown=1]
    routes: ["10.255.0.100/32 via 10.1.1.2 metric 10", "10.255.0.100/32 via 10.1.2.2 metric 20", "10.0.3.0/24 via 10.1.1.2 metric 10", "10.0.3.0/24 via 10.1.2.2 metric 20"]
` + overcastPIM("10.255.0.100", igmp, "src", "to-x", "to-y") + `
  - name: rpx
    kind: router
    loopback: [10.255.0.100/32, 10.255.0.11/32]
    routes: ["10.0.1.0/24 via 10.1.1.1", "10.0.3.0/24 via 10.1.4.2", "10.255.0.12/32 via 10.1.5.2"]
` + rp("10.255.0.11", "10.255.0.12", "to-fh", "to-lh", "to-y") + `
  - name: rpy
    kind: router
    loopback: [10.255.0.100/32, 10.255.0.12/32]
    routes: ["10.0.1.0/24 via 10.1.2.1", "10.0.3.0/24 via 10.1.3.2", "10.255.0.11/32 via 10.1.5.1"]
` + rp("10.255.0.12", "10.255.0.11", "to-fh", "to-lh", "to-x") + `
  - name: lh
    kind: router
    sysctls: [net.ipv4.conf.all.ignore_routes_with_linkdown=1]
    routes: ["10.255.0.100/32 via 10.1.3.1 metric 10", "10.255.0.100/32 via 10.1.4.1 metric 20", "10.0.1.0/24 via 10.1.3.1 metric 10", "10.0.1.0/24 via 10.1.4.1 metric 20"]
` + overcastPIM("10.255.0.100", igmp, "to-x", "to-y", "lan") + `
links:
  - {a: "src:eth0",  a-addr: 10.0.1.10/24, b: "fh:src",   b-addr: 10.0.1.1/24}
  - {a: "fh:to-x",   a-addr: 10.1.1.1/24,  b: "rpx:to-fh", b-addr: 10.1.1.2/24}
  - {a: "fh:to-y",   a-addr: 10.1.2.1/24,  b: "rpy:to-fh", b-addr: 10.1.2.2/24}
  - {a: "rpy:to-lh", a-addr: 10.1.3.1/24,  b: "lh:to-y",  b-addr: 10.1.3.2/24}
  - {a: "rpx:to-lh", a-addr: 10.1.4.1/24,  b: "lh:to-x",  b-addr: 10.1.4.2/24}
  - {a: "rpx:to-y",  a-addr: 10.1.5.1/24,  b: "rpy:to-x", b-addr: 10.1.5.2/24}
  - {a: "rcv:eth0",  a-addr: 10.0.3.10/24, b: "lh:lan",   b-addr: 10.0.3.1/24}
`
}

// Anycast RP both ways. The source registers to rpx; the receiver's (*,G)
// is at rpy; rpy learns the source from rpx (an MSDP SA, or rpx's copy
// of the Register) and the receiver gets the stream. Then rpy dies under
// traffic (its links go down): lh's routes move to rpx, its joins follow,
// and the receiver keeps getting the stream; the outage is its loss.
func TestAnycastRP(t *testing.T) {
	for _, mode := range []string{"msdp", "pim"} {
		t.Run(mode, func(t *testing.T) {
			l := startLab(t, anycastLab(mode))
			if mode == "msdp" {
				msdpEstablished(t, l, "rpx", "10.255.0.12")
			}
			for _, a := range [][3]string{{"fh", "to-x", "10.1.1.2"}, {"fh", "to-y", "10.1.2.2"}, {"lh", "to-y", "10.1.3.1"},
				{"lh", "to-x", "10.1.4.1"}, {"rpx", "to-y", "10.1.5.2"}} {
				pimNeighbors(t, l, a[0], a[1], a[2])
			}
			r := startRecv(t, l, "rcv", "-g", G)
			eventually(t, 10*time.Second, "rcv joined", func() string { return hasGroup(api.NewClient(l.Socket("lh")), "lan", G) })
			time.Sleep(500 * time.Millisecond)
			sent := sendBackground(t, l, "src", "-g", G, "-count", "6000", "-rate", "1000")
			time.Sleep(3 * time.Second) // past the anycast RP's register hold (2 s)
			if rt, ok := mroute(t, l, "lh", "10.0.1.10", G); !ok || rt.IIF != "to-y" {
				t.Fatalf("lh before the failure: %+v, want the stream from rpy", rt)
			}
			if rt, ok := mroute(t, l, "rpx", "10.0.1.10", G); !ok || rt.IIF != "pimreg" && rt.IIF != "to-fh" {
				t.Fatalf("rpx has no (S,G) from the Registers: %+v", rt)
			}
			if mode == "pim" {
				rps, _ := api.NewClient(l.Socket("rpx")).PIMRPs()
				if len(rps) == 0 || len(rps[0].Anycast) != 2 || rps[0].Forwarded == 0 {
					t.Errorf("rpx show pim rp: %+v, want the set and Registers forwarded", rps)
				}
			}
			if mode == "msdp" {
				sas, _ := api.NewClient(l.Socket("rpy")).MSDPSACache()
				if len(sas) != 1 || sas[0].RP != "10.255.0.11" {
					t.Errorf("rpy sa-cache: %+v, want the SA originated by rpx's unique address", sas)
				}
			}
			// rpy dies: its links go down, then its daemon stops (after
			// the links, so no goodbye reaches anyone).
			for _, n := range []string{"to-fh", "to-lh", "to-x"} {
				if _, err := l.Exec("rpy", "ip", "link", "set", n, "down"); err != nil {
					t.Fatal(err)
				}
			}
			l.StopDaemon("rpy")
			sent(10 * time.Second)
			time.Sleep(300 * time.Millisecond)
			st := r.stop(t)
			p, lost, dups := st.Total()
			var miss []uint64
			var first uint64
			if len(st.Streams) > 0 {
				miss, first = st.Streams[0].MissingSample, st.Streams[0].FirstSeq
			}
			t.Logf("anycast RP (%s) failover: %d packets, first seq %d, %d lost at 1000 pps (~%d ms; first missing %v), %d duplicates", mode, p, first, lost, lost, miss, dups)
			if len(st.Streams) != 1 || dups != 0 || p+lost+first != 6000 || lost > 500 {
				t.Errorf("receiver over the failover: %d packets, %d lost, %d duplicates, first %d", p, lost, dups, first)
			}
			if rt, ok := mroute(t, l, "lh", "10.0.1.10", G); !ok || rt.IIF != "to-x" {
				t.Errorf("lh after the failure: %+v, want the stream from rpx", rt)
			}
		})
	}
}
