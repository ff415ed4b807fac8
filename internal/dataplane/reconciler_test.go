package dataplane_test

import (
	"net/netip"
	"testing"

	"overcast/internal/dataplane"
	"overcast/internal/dataplane/fake"
)

func TestReconcilerConverges(t *testing.T) {
	fw := fake.New()
	for i := range 3 {
		if err := fw.AddVIF(dataplane.VIF{Index: i}); err != nil {
			t.Fatal(err)
		}
	}
	rc := dataplane.NewReconciler(fw)
	k1 := dataplane.SG{Source: netip.MustParseAddr("10.0.0.1"), Group: netip.MustParseAddr("239.1.1.1")}
	k2 := dataplane.SG{Source: netip.MustParseAddr("10.0.0.2"), Group: netip.MustParseAddr("239.1.1.1")}
	want := map[dataplane.SG]dataplane.Route{
		k1: {SG: k1, IIF: 0, OIFs: []int{1}},
		k2: {SG: k2, IIF: 0, OIFs: []int{1, 2}},
	}
	if err := rc.Apply(want); err != nil {
		t.Fatal(err)
	}
	if out, up := fw.Forward(k2, 0, 100); up != nil || len(out) != 2 {
		t.Fatalf("forward: %v %v", out, up)
	}
	calls := fw.Calls
	// Applying the same state again programs nothing.
	if err := rc.Apply(want); err != nil || fw.Calls != calls {
		t.Fatalf("idempotent apply made %d calls", fw.Calls-calls)
	}
	// Changing one route and dropping the other makes exactly two calls.
	want = map[dataplane.SG]dataplane.Route{k1: {SG: k1, IIF: 0, OIFs: []int{2}}}
	if err := rc.Apply(want); err != nil || fw.Calls != calls+2 {
		t.Fatalf("err %v, %d calls", err, fw.Calls-calls)
	}
	if _, up := fw.Forward(k2, 0, 100); up == nil || up.Kind != dataplane.NoCache {
		t.Fatalf("k2 should be gone, upcall %v", up)
	}
	if _, up := fw.Forward(k1, 1, 100); up == nil || up.Kind != dataplane.WrongVIF {
		t.Fatalf("wrong vif upcall %v", up)
	}
	// A route on a missing VIF fails, is counted, and is retried next time.
	bad := map[dataplane.SG]dataplane.Route{k1: {SG: k1, IIF: 0, OIFs: []int{7}}}
	if err := rc.Apply(bad); err == nil || rc.Errors != 1 {
		t.Fatal("expected an error for a missing vif")
	}
	fw.AddVIF(dataplane.VIF{Index: 7})
	if err := rc.Apply(bad); err != nil || !fw.Routes[k1].Equal(bad[k1]) {
		t.Fatalf("retry: %v", err)
	}
}

// Update touches only the routes it is given; Lookup reads back what was
// installed; a VIF outside 0..MaxVIF is an error, not a wrong route.
func TestReconcilerUpdate(t *testing.T) {
	fw := fake.New()
	for _, i := range []int{0, 1, 31} {
		fw.AddVIF(dataplane.VIF{Index: i})
	}
	rc := dataplane.NewReconciler(fw)
	k1 := dataplane.SG{Source: netip.MustParseAddr("10.0.0.1"), Group: netip.MustParseAddr("239.1.1.1")}
	k2 := dataplane.SG{Source: netip.MustParseAddr("10.0.0.2"), Group: netip.MustParseAddr("239.1.1.2")}
	r1 := dataplane.Route{SG: k1, IIF: 0, OIFs: []int{1, 31}}
	r2 := dataplane.Route{SG: k2, IIF: 1}
	if err := rc.Apply(map[dataplane.SG]dataplane.Route{k1: r1, k2: r2}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []dataplane.Route{r1, r2} {
		if got, ok := rc.Lookup(want.SG); !ok || !got.Equal(want) || !rc.Holds(want) {
			t.Fatalf("lookup %v: %+v %v", want.SG, got, ok)
		}
	}
	calls := fw.Calls
	r1b := dataplane.Route{SG: k1, IIF: 0, OIFs: []int{31}}
	if err := rc.Update([]dataplane.Route{r1b, r2}); err != nil || fw.Calls != calls+1 {
		t.Fatalf("update: %v, %d calls", err, fw.Calls-calls)
	}
	if !fw.Routes[k1].Equal(r1b) || !fw.Routes[k2].Equal(r2) || rc.Len() != 2 {
		t.Fatalf("after update: %+v", fw.Routes)
	}
	if err := rc.Update([]dataplane.Route{{SG: k1, IIF: 0, OIFs: []int{64}}}); err == nil || !fw.Routes[k1].Equal(r1b) {
		t.Fatalf("VIF 64 accepted: %v", err)
	}
}
