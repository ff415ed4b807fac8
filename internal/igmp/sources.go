package igmp

import (
	"iter"
	"net/netip"
	"slices"
	"time"
)

// sourceTimers is a group's sources and their timers (RFC 3376 section
// 6.2.3) as a short slice with map-like methods. Most groups have one or
// two sources, and at 10,000 groups a map each cost ten times the memory.
type sourceTimers []sourceTimer

type sourceTimer struct {
	addr netip.Addr
	t    time.Time
}

func (ss sourceTimers) get(a netip.Addr) (time.Time, bool) {
	for _, s := range ss {
		if s.addr == a {
			return s.t, true
		}
	}
	return time.Time{}, false
}

func (ss *sourceTimers) set(a netip.Addr, t time.Time) {
	for i := range *ss {
		if (*ss)[i].addr == a {
			(*ss)[i].t = t
			return
		}
	}
	*ss = append(*ss, sourceTimer{a, t})
}

func (ss *sourceTimers) del(a netip.Addr) {
	ss.deleteIf(func(s netip.Addr, _ time.Time) bool { return s == a })
}

func (ss *sourceTimers) deleteIf(f func(netip.Addr, time.Time) bool) {
	*ss = slices.DeleteFunc(*ss, func(s sourceTimer) bool { return f(s.addr, s.t) })
	if len(*ss) == 0 {
		*ss = nil
	}
}

// all iterates over the sources and their timers.
func (ss sourceTimers) all() iter.Seq2[netip.Addr, time.Time] {
	return func(yield func(netip.Addr, time.Time) bool) {
		for _, s := range ss {
			if !yield(s.addr, s.t) {
				return
			}
		}
	}
}
