package daemon

import (
	"net/netip"
	"time"

	"overcast/internal/api"
)

// joinLatency measures, per interface, the time from a member's join (an
// IGMP report that makes a group wanted there) to this router forwarding
// the group's first packet onto that interface: the route with that
// output programmed while the flow exists (its first packet is the
// upcall that made it, and the kernel forwards it from its queue). Joins
// with no source within pendingJoinTTL are not counted.
type joinLatency struct {
	pending map[netip.Addr]map[string]time.Time // group -> interface -> when it was joined
	npend   int
	counts  []uint64 // per bucket, not cumulative
	sum     time.Duration
	n       uint64
}

// joinBuckets are the histogram's upper bounds.
var joinBuckets = []time.Duration{time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second}

const (
	pendingJoinTTL = 5 * time.Minute
	maxPendingJoin = 4096 // a flood of reports cannot grow it further
)

// joined notes a group newly wanted on an interface.
func (j *joinLatency) joined(iface string, g netip.Addr, now time.Time) {
	if _, ok := j.pending[g][iface]; ok || j.npend >= maxPendingJoin {
		return
	}
	if j.pending == nil {
		j.pending = map[netip.Addr]map[string]time.Time{}
	}
	if j.pending[g] == nil {
		j.pending[g] = map[string]time.Time{}
	}
	j.pending[g][iface] = now
	j.npend++
}

// expire forgets joins that found no source within pendingJoinTTL.
func (j *joinLatency) expire(now time.Time) {
	for g, ifs := range j.pending {
		for iface, t0 := range ifs {
			if now.Sub(t0) > pendingJoinTTL {
				j.left(iface, g)
			}
		}
	}
}

// left forgets a join that ended before any packet.
func (j *joinLatency) left(iface string, g netip.Addr) {
	ifs := j.pending[g]
	if _, ok := ifs[iface]; !ok {
		return
	}
	delete(ifs, iface)
	j.npend--
	if len(ifs) == 0 {
		delete(j.pending, g)
	}
}

// forwardsOut says whether a flow of group g goes out of iface already.
func (d *Daemon) forwardsOut(g netip.Addr, iface string) bool {
	for sg := range d.byGroup[g] {
		if e, ok := d.rib.Get(sg); ok {
			if _, out := e.Output(iface); out {
				return true
			}
		}
	}
	return false
}

// observeJoins takes the joins of the given groups (every pending one
// when groups is nil) whose group now goes out of their interface: only
// the groups a burst touched can have started to.
func (d *Daemon) observeJoins(now time.Time, groups map[netip.Addr]bool) {
	j := &d.joins
	for g, ifs := range j.pending {
		if groups != nil && !groups[g] {
			continue
		}
		for iface, t0 := range ifs {
			for sg := range d.byGroup[g] {
				if e, ok := d.rib.Get(sg); ok {
					if _, out := e.Output(iface); out && d.rec.Holds(e.Route()) {
						j.add(now.Sub(t0))
						j.left(iface, g)
						break
					}
				}
			}
		}
	}
}

func (j *joinLatency) add(d time.Duration) {
	if j.counts == nil {
		j.counts = make([]uint64, len(joinBuckets)+1)
	}
	i := 0
	for i < len(joinBuckets) && d > joinBuckets[i] {
		i++
	}
	j.counts[i]++
	j.sum += d
	j.n++
}

// view is the histogram with cumulative counts, as Prometheus has it.
func (j *joinLatency) view() api.Histogram {
	h := api.Histogram{Buckets: []api.Bucket{}, Sum: api.Duration(j.sum), Count: j.n}
	var cum uint64
	for i, b := range joinBuckets {
		if j.counts != nil {
			cum += j.counts[i]
		}
		h.Buckets = append(h.Buckets, api.Bucket{LE: api.Duration(b), Count: cum})
	}
	return h
}
