package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/lab"
)

// FRR pimd configurations for the seed lab's routers.
var frrSeed = map[string]string{
	"r1": "interface src\n ip pim\n ip igmp\ninterface to-r2\n ip pim\ninterface to-r3\n ip pim\nip pim rp 10.255.0.2 224.0.0.0/4\n",
	"r2": "interface lo\n ip pim\ninterface to-r1\n ip pim\ninterface to-r3\n ip pim\ninterface lan\n ip pim\n ip igmp\nip pim rp 10.255.0.2 224.0.0.0/4\n",
	"r3": "interface to-r1\n ip pim\ninterface to-r2\n ip pim\ninterface lan\n ip pim\n ip igmp\nip pim rp 10.255.0.2 224.0.0.0/4\n",
}

// frrSG reads FRR's (S,G) entry: incoming interface and outgoing list.
func (f *frr) frrSG(src, group string) (iif string, oil []string, err error) {
	out, err := f.vtysh("show ip mroute json")
	if err != nil {
		return "", nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return "", nil, fmt.Errorf("%v: %s", err, out)
	}
	var g map[string]json.RawMessage
	if err := json.Unmarshal(m[group], &g); err != nil {
		return "", nil, fmt.Errorf("no %s in %s", group, out)
	}
	var sg struct {
		IIF string                     `json:"iif"`
		OIL map[string]json.RawMessage `json:"oil"`
	}
	if err := json.Unmarshal(g[src], &sg); err != nil {
		return "", nil, fmt.Errorf("no (%s,%s) in %s", src, group, out)
	}
	for k := range sg.OIL {
		if k != "pimreg" {
			oil = append(oil, k)
		}
	}
	sort.Strings(oil)
	return sg.IIF, oil, nil
}

// frrNeighbors lists FRR's PIM neighbours on an interface.
func (f *frr) frrNeighbors(iface string) ([]string, error) {
	out, err := f.vtysh("show ip pim neighbor json")
	if err != nil {
		return nil, err
	}
	var m map[string]map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	var ns []string
	for a := range m[iface] {
		ns = append(ns, a)
	}
	sort.Strings(ns)
	return ns, nil
}

// mixedDomain runs the seed lab with FRR on the named routers and Overcast
// on the others, streams 3,000 packets to both receivers, and checks
// delivery and that both implementations agree on the (S,G) state.
func mixedDomain(t *testing.T, firstLossOK bool, frrOn ...string) (l *lab.Lab, frrs map[string]*frr) {
	over := map[string]string{}
	for _, n := range frrOn {
		over[n] = "" // no overcast daemon
	}
	l = startLab(t, pimLab(over))
	frrs = map[string]*frr{}
	for _, n := range frrOn {
		frrs[n] = startFRR(t, l, n, frrSeed[n])
	}
	// Real NICs hand a router complete UDP checksums; a veth leaves them to
	// offload, which FRR's Registers would carry unfinished.
	if _, err := l.Exec("src", "ethtool", "-K", "eth0", "tx", "off"); err != nil {
		t.Fatal(err)
	}
	// Every adjacency, seen from both sides.
	adj := [][3]string{{"r1", "to-r2", "10.1.12.2"}, {"r1", "to-r3", "10.1.13.3"}, {"r2", "to-r1", "10.1.12.1"},
		{"r2", "to-r3", "10.1.23.3"}, {"r3", "to-r1", "10.1.13.1"}, {"r3", "to-r2", "10.1.23.2"}}
	for _, a := range adj {
		if f := frrs[a[0]]; f != nil {
			eventually(t, 40*time.Second, a[0]+" (FRR) neighbour "+a[2], func() string {
				ns, err := f.frrNeighbors(a[1])
				if err != nil {
					return err.Error()
				}
				for _, n := range ns {
					if n == a[2] {
						return ""
					}
				}
				return fmt.Sprint(ns)
			})
		} else {
			pimNeighbors(t, l, a[0], a[1], a[2])
		}
	}
	r1 := startRecv(t, l, "rcv", "-g", G)
	r2 := startRecv(t, l, "rcv2", "-g", G)
	time.Sleep(3 * time.Second) // IGMP reports and (*,G) joins on both kinds of router
	send(t, l, "src", "-g", G, "-count", "3000", "-rate", "1000")
	time.Sleep(500 * time.Millisecond)
	for _, x := range []struct {
		name string
		r    *receiver
	}{{"rcv (behind R3)", r1}, {"rcv2 (behind R2)", r2}} {
		st := x.r.stop(t)
		p, lost, dups := st.Total()
		// With FRR as the RP the stream's first packets may go (up to 30
		// on this 2-core machine under the whole suite, and a few more
		// among the first 60 while FRR settles).
		earlyOnly := lost == 0 || lost <= 10 && len(st.Streams) == 1 && len(st.Streams[0].MissingSample) == int(lost) && st.Streams[0].MissingSample[lost-1] < 60
		if firstLossOK && len(st.Streams) == 1 && earlyOnly && dups == 0 && st.Streams[0].FirstSeq <= 30 && p+lost == 3000-st.Streams[0].FirstSeq {
			t.Logf("%s: the first %d packet(s) and %v lost at FRR's RP (FRR does not forward the packets that arrive before it resolves the new (S,G); the FRR baseline shows the same), every packet after them arrived once", x.name, st.Streams[0].FirstSeq, st.Streams[0].MissingSample)
			continue
		}
		// FRR as last hop switches to the SPT on the first native packet
		// without waiting for the shared tree's copy of it. FRR as first
		// hop registers from user space, so its Registers can lag its
		// native packets by more than one packet at the RP's switch: the
		// RP has one input per route, and the packets whose native copy
		// came before the switch and whose Register after it are lost on
		// both paths (forwarding those Registers from user space would
		// close it). Either can drop one of the first packets.
		frrSwitch := x.name == "rcv (behind R3)" && frrs["r3"] != nil || frrs["r1"] != nil
		if frrSwitch && len(st.Streams) == 1 && dups == 0 && lost <= 2 && p+lost == 3000 &&
			len(st.Streams[0].MissingSample) == int(lost) && (lost == 0 || st.Streams[0].MissingSample[lost-1] < 10) {
			if lost > 0 {
				t.Logf("%s: dropped packet(s) %v at a switchover with FRR; all others arrived once", x.name, st.Streams[0].MissingSample)
			}
			continue
		}
		if len(st.Streams) == 1 && dups == 0 && p+lost == 3000 && st.Streams[0].FirstSeq == 0 && startOfStreamLoss(st.Streams[0]) {
			t.Logf("%s: packets %v lost at the stream's start (a known defect, see startOfStreamLoss); all others arrived once", x.name, st.Streams[0].MissingSample)
			continue
		}
		if p != 3000 || lost != 0 || dups != 0 {
			var missing []uint64
			var first uint64
			if len(st.Streams) > 0 {
				missing, first = st.Streams[0].MissingSample, st.Streams[0].FirstSeq
			}
			t.Errorf("%s: %d packets (first seq %d, missing %v), %d lost, %d duplicates; want 3000, 0, 0", x.name, p, first, missing, lost, dups)
		}
	}
	return l, frrs
}

// sgState is a router's (S,G) as "iif -> oif,oif", from FRR or Overcast.
func sgState(t *testing.T, l *lab.Lab, frrs map[string]*frr, node string) string {
	t.Helper()
	if f := frrs[node]; f != nil {
		iif, oil, err := f.frrSG("10.0.1.10", G)
		if err != nil {
			t.Fatal(err)
		}
		return iif + " -> " + strings.Join(oil, ",")
	}
	r, ok := mroute(t, l, node, "10.0.1.10", G)
	if !ok {
		t.Fatalf("%s has no (S,G)", node)
	}
	return r.IIF + " -> " + oifNames(r)
}

// FRR's pimd as the RP, Overcast at the first and last hops.
func TestMixedDomainFRRAsRP(t *testing.T) {
	l, frrs := mixedDomain(t, true, "r2")
	want := map[string]string{"r1": "src -> to-r2,to-r3", "r2": "to-r1 -> lan", "r3": "to-r1 -> lan"}
	for _, n := range []string{"r1", "r2", "r3"} {
		if got := sgState(t, l, frrs, n); got != want[n] {
			t.Errorf("%s (S,G): %s, want %s", n, got, want[n])
		}
	}
}

// Overcast as the RP, FRR's pimd at the first and last hops.
func TestMixedDomainOvercastAsRP(t *testing.T) {
	l, frrs := mixedDomain(t, false, "r1", "r3")
	defer func() {
		if t.Failed() {
			js, _ := api.NewClient(l.Socket("r2")).PIMJoins()
			t.Logf("r2 joins: %+v", js)
			out, _ := frrs["r3"].vtysh("show ip pim upstream")
			t.Logf("r3 FRR upstream:\n%s", out)
		}
	}()
	// FRR 8.4 at R3 sends its (S,G,rpt) prune only seconds after moving to
	// the SPT (captured here: with the next (*,G) message), so until then
	// R2 still sends S down the shared tree and FRR drops it at R3 as
	// arriving on the wrong interface; the receiver sees no duplicates.
	want := map[string][]string{"r1": {"src -> to-r2,to-r3"}, "r2": {"to-r1 -> lan", "to-r1 -> lan,to-r3"}, "r3": {"to-r1 -> lan"}}
	for _, n := range []string{"r1", "r2", "r3"} {
		if got := sgState(t, l, frrs, n); !slices.Contains(want[n], got) {
			t.Errorf("%s (S,G): %s, want one of %v", n, got, want[n])
		}
	}
}
