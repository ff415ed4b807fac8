package igmp

import (
	"net/netip"
	"slices"
	"time"
)

// The interface's state as show commands read it.

// GroupView is one group's state for show commands.
type GroupView struct {
	Group    netip.Addr
	Mode     FilterMode
	Static   bool
	Expires  time.Time // group timer in EXCLUDE mode
	Created  time.Time
	Reporter netip.Addr
	Version  int // compatibility mode: 1, 2 or 3
	Sources  []SourceView
	Hosts    []netip.Addr // explicit tracking
}

// SourceView is one source record; Forward is false for the exclude list.
type SourceView struct {
	Source  netip.Addr
	Expires time.Time
	Forward bool
}

// Groups returns the membership table, sorted by group.
func (i *Interface) Groups(now time.Time) []GroupView {
	var out []GroupView
	seen := map[netip.Addr]bool{}
	for ga, g := range i.groups {
		seen[ga] = true
		out = append(out, i.view(ga, g, now))
	}
	for _, ga := range i.cfg.StaticGroups {
		if !seen[ga] {
			out = append(out, GroupView{Group: ga, Mode: Exclude, Static: true})
		}
	}
	slices.SortFunc(out, func(a, b GroupView) int { return a.Group.Compare(b.Group) })
	return out
}

// Group returns one group's membership (a static group without reports
// included), without walking the table.
func (i *Interface) Group(ga netip.Addr, now time.Time) (GroupView, bool) {
	if g := i.groups[ga]; g != nil {
		return i.view(ga, g, now), true
	}
	if slices.Contains(i.cfg.StaticGroups, ga) {
		return GroupView{Group: ga, Mode: Exclude, Static: true}, true
	}
	return GroupView{}, false
}

func (i *Interface) view(ga netip.Addr, g *group, now time.Time) GroupView {
	v := GroupView{Group: ga, Mode: g.mode, Created: g.created, Reporter: g.reporter, Version: 3,
		Static: slices.Contains(i.cfg.StaticGroups, ga)}
	if g.mode == Exclude {
		v.Expires = g.timer
	}
	if now.Before(g.v1Until) {
		v.Version = 1
	} else if now.Before(g.v2Until) {
		v.Version = 2
	}
	for s, t := range g.sources.all() {
		v.Sources = append(v.Sources, SourceView{Source: s, Expires: t, Forward: g.mode == Include || !t.IsZero()})
	}
	slices.SortFunc(v.Sources, func(a, b SourceView) int { return a.Source.Compare(b.Source) })
	for h := range g.hosts {
		v.Hosts = append(v.Hosts, h)
	}
	slices.SortFunc(v.Hosts, netip.Addr.Compare)
	return v
}
