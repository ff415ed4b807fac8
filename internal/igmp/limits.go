package igmp

import (
	"net/netip"
	"time"

	"overcast/internal/packet/igmp"
)

// What bounds the state hosts can make (MaxGroups, MaxSources,
// MaxGroupsPerHost), the one place a group goes (dropGroup), and clear
// ip igmp group.

// full says whether a new group from host src would pass MaxGroups or
// src's MaxGroupsPerHost (counting the refusal).
func (i *Interface) full(ga, src netip.Addr) bool {
	if i.groups[ga] != nil {
		return false
	}
	if i.cfg.MaxGroups >= 0 && len(i.groups) >= i.cfg.MaxGroups {
		i.stats.GroupLimit++
		return true
	}
	if i.cfg.MaxGroupsPerHost > 0 && i.byHost[src] >= i.cfg.MaxGroupsPerHost {
		i.stats.HostLimit++
		return true
	}
	return false
}

// dropGroup forgets a group, and that its creator made it.
func (i *Interface) dropGroup(ga netip.Addr) {
	if g := i.groups[ga]; g != nil && g.creator.IsValid() {
		if i.byHost[g.creator]--; i.byHost[g.creator] <= 0 {
			delete(i.byHost, g.creator)
		}
	}
	delete(i.groups, ga)
}

// capSources keeps, of a record's sources, those the group has and as
// many new ones as MaxSources leaves room for (counting the rest).
func (i *Interface) capSources(g *group, srcs []netip.Addr) []netip.Addr {
	if i.cfg.MaxSources < 0 || len(srcs) == 0 {
		return srcs
	}
	room := i.cfg.MaxSources - len(g.sources)
	var out []netip.Addr
	for _, s := range srcs {
		if _, ok := g.sources.get(s); ok {
			out = append(out, s)
		} else if room > 0 {
			out = append(out, s)
			room--
		} else {
			i.stats.SourceLimit++
		}
	}
	return out
}

// HostGroups is how many groups a host's reports made on the interface
// (what MaxGroupsPerHost bounds).
func (i *Interface) HostGroups(src netip.Addr) int { return i.byHost[src] }

// Clear forgets the membership of group ga, or of every group when ga is
// the zero Addr (clear ip igmp group). Static groups stay. As querier it
// asks at once (a general query), so members still there report again
// within the response interval. It returns how many groups it forgot.
func (i *Interface) Clear(now time.Time, ga netip.Addr, out *Output) int {
	n := 0
	for a := range i.groups {
		if ga.IsValid() && a != ga {
			continue
		}
		i.dropGroup(a)
		delete(i.pending, a)
		out.changed(a)
		n++
	}
	i.nextValid = false
	if n > 0 && i.querier {
		i.send(out, igmp.AllSystems, i.generalQuery())
	}
	return n
}
