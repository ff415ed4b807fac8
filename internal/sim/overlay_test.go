package sim

import (
	"net/netip"
	"testing"
	"time"

	"overcast/internal/dataplane/fake"
)

// TestOverlayTwoHundredPeers: 200 real daemons, each with 199 overlay
// peers over the in-memory underlay. Receivers on every third node (SSM
// on some, ASM on others, one excluding the source): every interested node
// gets each packet exactly once, the others none, nothing comes back into
// the overlay; a leave and a dead node are cleaned up, the rest undisturbed.
func TestOverlayTwoHundredPeers(t *testing.T) {
	const n = 200
	o, err := NewOverlayNet(time.Unix(1_800_000_000, 0), n)
	if err != nil {
		t.Fatal(err)
	}
	o.Run(300 * time.Millisecond)
	for _, nd := range o.Nodes[:3] {
		st := peersUp(t, nd)
		if st != n-1 {
			t.Fatalf("node %d has %d peers up, want %d", nd.Index, st, n-1)
		}
	}
	g := netip.MustParseAddr("239.1.2.3")
	src := o.Nodes[0]
	want := map[int]bool{}
	for i := 3; i < n; i += 3 {
		nd := o.Nodes[i]
		switch i % 2 {
		case 0:
			o.Join(nd, g, src.Source) // SSM-style INCLUDE
		default:
			o.Join(nd, g) // ASM
		}
		want[i] = true
	}
	o.Join(o.Nodes[2], g, netip.MustParseAddr("10.99.0.1")) // wants another source only
	o.Run(100 * time.Millisecond)
	for range 5 {
		got := o.Send(src, g)
		check(t, got, want)
	}
	// A leave stops that node's copies.
	o.Leave(o.Nodes[3], g)
	o.Run(3 * time.Second) // last member query
	delete(want, 3)
	check(t, o.Send(src, g), want)
	// Node 6 dies: its datagrams stop; after the hold time the others
	// drop its interest and the rest still get every packet.
	dead := o.Nodes[6].Under
	o.Hub.Lose = func(d fake.OverlayDatagram) bool { return d.From == dead || d.To == dead }
	o.Run(4 * time.Second)
	delete(want, 6)
	got := o.Send(src, g)
	if got[6] != 0 {
		t.Fatalf("a dead node still gets copies")
	}
	check(t, got, want)
	for _, nd := range o.Nodes[:2] {
		if up := peersUp(t, nd); up != n-2 {
			t.Fatalf("node %d: %d peers up, want %d", nd.Index, up, n-2)
		}
	}
}

func check(t *testing.T, got map[int]int, want map[int]bool) {
	t.Helper()
	for i, c := range got {
		if !want[i] {
			t.Fatalf("node %d got %d copies, wants none", i, c)
		}
		if c != 1 {
			t.Fatalf("node %d got %d copies, want 1", i, c)
		}
	}
	for i := range want {
		if got[i] != 1 {
			t.Fatalf("node %d got %d copies, want 1", i, got[i])
		}
	}
}

func peersUp(t *testing.T, nd *OverlayNode) int {
	t.Helper()
	v, err := nd.D.View(time.Time{}, "/v1/overlay", "")
	if err != nil {
		t.Fatal(err)
	}
	return overlayUp(v)
}
