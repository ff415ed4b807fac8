package mrib

import (
	"net/netip"
	"testing"
	"time"

	"overcast/internal/dataplane"
	"overcast/internal/dataplane/fake"
)

var t0 = time.Unix(1_700_000_000, 0)

func entry(k dataplane.SG, iif string, outs ...any) Entry {
	e := Entry{SG: k, IIF: iif}
	for i := 0; i < len(outs); i += 2 {
		e.Add(outs[i].(string), outs[i+1].(Origin))
	}
	return e
}

// Outputs keep their uptime across re-derivations while name and origin
// stay; only entries whose forwarding changed are programmed; a failed
// change is retried at the next Program.
func TestRIBProgramsOnlyChanges(t *testing.T) {
	fw := fake.New()
	for _, n := range []string{"up", "a", "b", "c"} {
		fw.AddInterface(n, 0)
	}
	rec := dataplane.NewReconciler(fw)
	r := New()
	k := dataplane.SG{Source: netip.MustParseAddr("10.0.0.1"), Group: netip.MustParseAddr("239.1.1.1")}
	r.Set(t0, entry(k, "up", "b", IGMP, "a", PIM))
	if err := r.Program(rec); err != nil {
		t.Fatal(err)
	}
	got, _ := fw.Route(k)
	if got.IIF != "up" || len(got.OIFs) != 2 || got.OIFs[0] != "a" || got.OIFs[1] != "b" {
		t.Fatalf("programmed %+v", got)
	}
	calls := fw.Calls
	// Same forwarding, a later time: nothing programmed, uptimes kept.
	r.Set(t0.Add(time.Minute), entry(k, "up", "a", PIM, "b", IGMP))
	r.Program(rec)
	e, _ := r.Get(k)
	if fw.Calls != calls || !e.Outputs[0].Since().Equal(t0) || !e.Outputs[1].Since().Equal(t0) {
		t.Fatalf("re-derivation: %d calls, outputs %+v", fw.Calls-calls, e.Outputs)
	}
	// A new output starts its own uptime; an origin change restarts it.
	r.Set(t0.Add(2*time.Minute), entry(k, "up", "a", IGMP, "b", IGMP, "c", Static))
	r.Program(rec)
	e, _ = r.Get(k)
	if fw.Calls != calls+1 || !e.Outputs[0].Since().Equal(t0.Add(2*time.Minute)) || !e.Outputs[1].Since().Equal(t0) || e.Outputs[2].Origin != Static {
		t.Fatalf("change: %d calls, outputs %+v", fw.Calls-calls, e.Outputs)
	}
	// An output on an interface the forwarder lacks fails, stays marked,
	// and goes through once the interface exists.
	r.Set(t0, entry(k, "up", "zz", PIM))
	if err := r.Program(rec); err == nil {
		t.Fatal("missing interface accepted")
	}
	fw.AddInterface("zz", 9)
	if err := r.Program(rec); err != nil {
		t.Fatal(err)
	}
	if got, _ := fw.Route(k); len(got.OIFs) != 1 || got.OIFs[0] != "zz" {
		t.Fatalf("retry: %+v", got)
	}
	r.Delete(k)
	if err := r.Program(rec); err != nil || r.Len() != 0 {
		t.Fatal(err)
	}
	if _, ok := fw.Route(k); ok {
		t.Fatal("deleted entry still programmed")
	}
}

func TestFlagsAndOrigins(t *testing.T) {
	if s := (Sparse | Connected | SPT | RPTPruned | Pruned).String(); s != "SCTRP" {
		t.Errorf("flags %q", s)
	}
	if s := (Sparse | RegisterOut | Threshold).String(); s != "SFJ" {
		t.Errorf("flags %q", s)
	}
	for o, want := range map[Origin]string{IGMP: "igmp", Static: "static", PIM: "pim", Register: "register", MSDP: "msdp", Overlay: "overlay", Mirror: "mirror", Flow: "flow", 0: "unknown"} {
		if o.String() != want {
			t.Errorf("%d: %s", o, o)
		}
	}
	var e Entry
	e.Add("b", PIM)
	e.Add("a", IGMP)
	e.Add("b", IGMP) // first origin wins
	if o, ok := e.Output("b"); !ok || o.Origin != PIM || e.Outputs[0].Name != "a" {
		t.Errorf("outputs %+v", e.Outputs)
	}
	if _, ok := e.Output("c"); ok {
		t.Error("c found")
	}
}
