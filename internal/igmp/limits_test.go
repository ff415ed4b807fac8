package igmp

import (
	"net/netip"
	"testing"
	"time"

	"overcast/internal/packet/igmp"
)

// One host's reports for more channels than the interface allows: the
// groups and sources past the limits are refused and counted, those
// already there stay, and a source of a group already there still joins
// while the group has room.
func TestLimitsGroupsAndSources(t *testing.T) {
	r := newRig(t, Config{MaxGroups: 3, MaxSources: 4})
	r.rx(h1, &igmp.V3Report{Records: []igmp.GroupRecord{{Type: igmp.ModeIsExclude, Group: grp}}})
	var recs []igmp.GroupRecord
	for i := range 10 {
		rec := igmp.GroupRecord{Type: igmp.AllowNewSources, Group: netip.AddrFrom4([4]byte{232, 1, 1, byte(i)})}
		for j := range 6 {
			rec.Sources = append(rec.Sources, netip.AddrFrom4([4]byte{10, 0, byte(i), byte(j + 1)}))
		}
		recs = append(recs, rec)
	}
	r.rx(h2, &igmp.V3Report{Records: recs})
	gs := r.ifc.Groups(r.now)
	if len(gs) != 3 {
		t.Fatalf("%d groups, limit 3: %+v", len(gs), gs)
	}
	st := r.ifc.Stats()
	if st.GroupLimit != 8 || st.SourceLimit != 2*2 {
		t.Errorf("group limit refusals %d (want 8), source limit refusals %d (want 4): %+v", st.GroupLimit, st.SourceLimit, st)
	}
	for _, g := range gs {
		if g.Group == grp && g.Mode != Exclude {
			t.Errorf("the first group changed: %+v", g)
		}
		if n := len(g.Sources); n > 4 {
			t.Errorf("%s has %d sources, limit 4", g.Group, n)
		}
	}
	// No limit: -1.
	r = newRig(t, Config{MaxGroups: -1, MaxSources: -1})
	r.rx(h2, &igmp.V3Report{Records: recs})
	if n := len(r.ifc.Groups(r.now)); n != 10 {
		t.Errorf("%d groups without a limit, want 10", n)
	}
}

// One host's reports make at most max-groups-per-host groups; the others
// still make theirs and join the first host's freely; once the host's
// groups go (it leaves) it may make new ones.
func TestLimitsGroupsPerHost(t *testing.T) {
	r := newRig(t, Config{MaxGroupsPerHost: 10})
	var recs []igmp.GroupRecord
	for i := range 50 {
		recs = append(recs, igmp.GroupRecord{Type: igmp.ChangeToExclude, Group: netip.AddrFrom4([4]byte{239, 9, 0, byte(i)})})
	}
	r.rx(h1, &igmp.V3Report{Records: recs})
	if n, st := r.ifc.HostGroups(h1), r.ifc.Stats(); n != 10 || st.HostLimit != 40 || len(r.ifc.Groups(r.now)) != 10 {
		t.Fatalf("h1 made %d groups (limit 10), %d refused (want 40), %d groups", n, st.HostLimit, len(r.ifc.Groups(r.now)))
	}
	// h2 joins one of h1's groups and makes one of its own.
	r.rx(h2, &igmp.V3Report{Records: []igmp.GroupRecord{{Type: igmp.ChangeToExclude, Group: netip.AddrFrom4([4]byte{239, 9, 0, 3})}, {Type: igmp.ChangeToExclude, Group: grp}}})
	if n := len(r.ifc.Groups(r.now)); n != 11 || r.ifc.HostGroups(h2) != 1 {
		t.Fatalf("after h2: %d groups (want 11), h2 made %d", n, r.ifc.HostGroups(h2))
	}
	// h1 leaves the groups it alone holds: its count falls, it may make more.
	var leave []igmp.GroupRecord
	for i := range 10 {
		leave = append(leave, igmp.GroupRecord{Type: igmp.ChangeToInclude, Group: netip.AddrFrom4([4]byte{239, 9, 0, byte(i)})})
	}
	r.rx(h1, &igmp.V3Report{Records: leave})
	r.advance(30 * time.Second) // the last-member queries go unanswered
	r.rx(h1, &igmp.V3Report{Records: recs[20:25]})
	if n := r.ifc.HostGroups(h1); n < 5 || n > 10 {
		t.Fatalf("h1 after leaving and joining 5 new groups made %d", n)
	}
}
