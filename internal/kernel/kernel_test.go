package kernel

import (
	"fmt"
	"strings"
	"testing"

	"overcast/internal/dataplane"
	"overcast/internal/dataplane/linuxmr"
)

// Interfaces and the register VIF share one space of kernel VIFs: however
// they come and go (an interface added on reload after the register VIF
// took its number), no two hold the same VIF, and the 33rd is refused
// with the reason.
func TestVIFTableNeverCollides(t *testing.T) {
	var vt VIFTable
	alloc := func(name string) int {
		t.Helper()
		v, err := vt.Alloc(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	alloc("eth0")
	alloc("eth1")
	reg := alloc(dataplane.RegisterName)
	if reg != 2 {
		t.Fatalf("register VIF %d, want 2 (after eth0 and eth1)", reg)
	}
	vt.Free("eth0")
	if v := alloc("eth2"); v != 0 {
		t.Fatalf("eth2 got %d, want the freed 0", v)
	}
	if v := alloc("eth3"); v == reg {
		t.Fatalf("eth3 collides with the register VIF %d", reg)
	}
	if _, err := vt.Alloc("eth1"); err == nil {
		t.Fatal("eth1 allocated twice")
	}
	for i := 4; ; i++ {
		_, err := vt.Alloc(fmt.Sprintf("eth%d", i))
		if err != nil {
			if !strings.Contains(err.Error(), "all 32 kernel VIFs are in use") {
				t.Fatalf("error %v", err)
			}
			break
		}
	}
	seen := map[int]string{}
	for v := range linuxmr.MaxVIFs {
		name := vt.Name(v)
		if name == "" {
			t.Fatalf("VIF %d free after the table filled", v)
		}
		if w, ok := vt.VIF(name); !ok || w != v {
			t.Fatalf("%s: VIF %d vs %d", name, w, v)
		}
		seen[v] = name
	}
	if len(seen) != linuxmr.MaxVIFs || vt.Name(-1) != "" || vt.Name(32) != "" {
		t.Fatal("table inconsistent")
	}
}
