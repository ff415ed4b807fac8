package dataplane_test

import (
	"fmt"
	"net/netip"
	"testing"

	"overcast/internal/dataplane"
	"overcast/internal/dataplane/fake"
)

func TestReconcilerConverges(t *testing.T) {
	fw := fake.New()
	for _, n := range []string{"eth0", "eth1", "eth2"} {
		if err := fw.AddInterface(n, 0); err != nil {
			t.Fatal(err)
		}
	}
	rc := dataplane.NewReconciler(fw)
	k1 := dataplane.SG{Source: netip.MustParseAddr("10.0.0.1"), Group: netip.MustParseAddr("239.1.1.1")}
	k2 := dataplane.SG{Source: netip.MustParseAddr("10.0.0.2"), Group: netip.MustParseAddr("239.1.1.1")}
	want := map[dataplane.SG]dataplane.Route{
		k1: {SG: k1, IIF: "eth0", OIFs: []string{"eth1"}},
		k2: {SG: k2, IIF: "eth0", OIFs: []string{"eth1", "eth2"}},
	}
	if err := rc.Apply(want); err != nil {
		t.Fatal(err)
	}
	if out, _, up := fw.Forward(k2, "eth0", 100); up != nil || len(out) != 2 {
		t.Fatalf("forward: %v %v", out, up)
	}
	calls := fw.Calls
	// Applying the same state again programs nothing.
	if err := rc.Apply(want); err != nil || fw.Calls != calls {
		t.Fatalf("idempotent apply made %d calls", fw.Calls-calls)
	}
	// Changing one route and dropping the other makes exactly two calls.
	want = map[dataplane.SG]dataplane.Route{k1: {SG: k1, IIF: "eth0", OIFs: []string{"eth2"}}}
	if err := rc.Apply(want); err != nil || fw.Calls != calls+2 {
		t.Fatalf("err %v, %d calls", err, fw.Calls-calls)
	}
	if _, _, up := fw.Forward(k2, "eth0", 100); up == nil || up.Kind != dataplane.NoCache {
		t.Fatalf("k2 should be gone, upcall %v", up)
	}
	if _, _, up := fw.Forward(k1, "eth1", 100); up == nil || up.Kind != dataplane.WrongVIF {
		t.Fatalf("wrong vif upcall %v", up)
	}
	// A route on a missing VIF fails, is counted, and is retried next time.
	bad := map[dataplane.SG]dataplane.Route{k1: {SG: k1, IIF: "eth0", OIFs: []string{"eth7"}}}
	if err := rc.Apply(bad); err == nil || rc.Errors != 1 {
		t.Fatal("expected an error for a missing vif")
	}
	fw.AddInterface("eth7", 7)
	if err := rc.Apply(bad); err != nil || !fw.Routes[k1].Equal(bad[k1]) {
		t.Fatalf("retry: %v", err)
	}
}

// Update touches only the routes it is given; Lookup reads back what was
// installed; a route on an interface the plane lacks is an error, not a
// wrong route.
func TestReconcilerUpdate(t *testing.T) {
	fw := fake.New()
	for _, n := range []string{"eth0", "eth1", "eth31"} {
		fw.AddInterface(n, 0)
	}
	rc := dataplane.NewReconciler(fw)
	k1 := dataplane.SG{Source: netip.MustParseAddr("10.0.0.1"), Group: netip.MustParseAddr("239.1.1.1")}
	k2 := dataplane.SG{Source: netip.MustParseAddr("10.0.0.2"), Group: netip.MustParseAddr("239.1.1.2")}
	r1 := dataplane.Route{SG: k1, IIF: "eth0", OIFs: []string{"eth1", "eth31"}}
	r2 := dataplane.Route{SG: k2, IIF: "eth1"}
	if err := rc.Apply(map[dataplane.SG]dataplane.Route{k1: r1, k2: r2}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []dataplane.Route{r1, r2} {
		if got, ok := rc.Lookup(want.SG); !ok || !got.Equal(want) || !rc.Holds(want) {
			t.Fatalf("lookup %v: %+v %v", want.SG, got, ok)
		}
	}
	calls := fw.Calls
	r1b := dataplane.Route{SG: k1, IIF: "eth0", OIFs: []string{"eth31"}}
	if err := rc.Update([]dataplane.Route{r1b, r2}); err != nil || fw.Calls != calls+1 {
		t.Fatalf("update: %v, %d calls", err, fw.Calls-calls)
	}
	if !fw.Routes[k1].Equal(r1b) || !fw.Routes[k2].Equal(r2) || rc.Len() != 2 {
		t.Fatalf("after update: %+v", fw.Routes)
	}
	if err := rc.Update([]dataplane.Route{{SG: k1, IIF: "eth0", OIFs: []string{"eth64"}}}); err == nil || !fw.Routes[k1].Equal(r1b) {
		t.Fatalf("missing interface accepted: %v", err)
	}
}

// Outputs are names, not VIF bits: a route may replicate to hundreds of
// outputs (an overlay's), and a replication list of peers is kept exactly.
func TestReconcilerManyOutputsAndPeers(t *testing.T) {
	fw := fake.New()
	var oifs []string
	for i := range 300 {
		n := fmt.Sprintf("tun%03d", i)
		fw.AddInterface(n, i)
		oifs = append(oifs, n)
	}
	fw.AddInterface("up", 1000)
	rc := dataplane.NewReconciler(fw)
	k := dataplane.SG{Source: netip.MustParseAddr("10.0.0.1"), Group: netip.MustParseAddr("239.1.1.1")}
	peers := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:4789"), netip.MustParseAddrPort("192.0.2.2:4789")}
	r := dataplane.Route{SG: k, IIF: "up", OIFs: oifs, Peers: peers}
	if err := rc.Update([]dataplane.Route{r}); err != nil {
		t.Fatal(err)
	}
	got, ok := rc.Lookup(k)
	if !ok || !got.Equal(r) || !rc.Holds(r) || !fw.Routes[k].Equal(r) {
		t.Fatalf("lookup: %v %d oifs %v", ok, len(got.OIFs), got.Peers)
	}
	calls := fw.Calls
	r2 := r
	r2.Peers = peers[:1]
	if rc.Holds(r2) {
		t.Fatal("a changed peer list reads as held")
	}
	if err := rc.Update([]dataplane.Route{r2}); err != nil || fw.Calls != calls+1 || !fw.Routes[k].Equal(r2) {
		t.Fatalf("peer change: %v %d calls", err, fw.Calls-calls)
	}
	r3 := r2
	r3.OIFs = oifs[:299]
	if rc.Holds(r3) {
		t.Fatal("dropping output 300 reads as held")
	}
}
