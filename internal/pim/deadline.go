package pim

import (
	"container/heap"
	"net/netip"
	"time"
)

// Timers at scale. With 10,000 flows, scanning every entry's timers after
// each event (NextDeadline) or on each wake-up (Advance) dominated the
// daemon's idle CPU. Instead each group's earliest timer is kept in a
// min-heap, recomputed only for the groups an event touched: every event
// that changes a timer re-evaluates its groups through reconcileGroups,
// which marks them dirty. Stale heap items are skipped lazily.

type deadlineItem struct {
	t time.Time
	g netip.Addr
}

type deadlineHeap []deadlineItem

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].t.Before(h[j].t) }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadlineItem)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type deadlines struct {
	next  map[netip.Addr]time.Time // each group's earliest timer
	heap  deadlineHeap
	dirty map[netip.Addr]bool
	all   bool // recompute every group
}

func (r *Router) markDirty(g netip.Addr) {
	if r.dl.dirty == nil {
		r.dl.dirty = map[netip.Addr]bool{}
	}
	r.dl.dirty[g] = true
}

// entryNext is an entry's earliest timer (zero if none runs).
func entryNext(e *entry) time.Time {
	var t time.Time
	min := func(x time.Time) {
		if !x.IsZero() && (t.IsZero() || x.Before(t)) {
			t = x
		}
	}
	for _, d := range e.down {
		min(d.expiry)
		min(d.ppt)
	}
	for _, d := range e.rptDown {
		min(d.expiry)
		min(d.ppt)
	}
	min(e.kat)
	min(e.sptPending)
	if e.lan != nil {
		min(e.lan.override)
	}
	min(e.rst)
	for _, a := range e.asserts {
		min(a.timer)
	}
	return t
}

func (r *Router) groupNext(g netip.Addr) time.Time {
	var t time.Time
	for _, e := range r.byGroup[g] {
		if x := entryNext(e); !x.IsZero() && (t.IsZero() || x.Before(t)) {
			t = x
		}
	}
	return t
}

func (r *Router) setGroupNext(g netip.Addr) {
	t := r.groupNext(g)
	if t.IsZero() {
		delete(r.dl.next, g)
		return
	}
	if cur, ok := r.dl.next[g]; ok && cur.Equal(t) {
		return
	}
	r.dl.next[g] = t
	heap.Push(&r.dl.heap, deadlineItem{t, g})
}

// groupsDeadline brings the heap up to date and returns the earliest
// group timer.
func (r *Router) groupsDeadline() time.Time {
	d := &r.dl
	if d.all || d.next == nil {
		d.next, d.heap, d.all = map[netip.Addr]time.Time{}, nil, false
		for g := range r.byGroup {
			r.setGroupNext(g)
		}
		clear(d.dirty)
	}
	for g := range d.dirty {
		r.setGroupNext(g)
	}
	clear(d.dirty)
	for len(d.heap) > 0 {
		top := d.heap[0]
		if cur, ok := d.next[top.g]; ok && cur.Equal(top.t) {
			break
		}
		heap.Pop(&d.heap)
	}
	if len(d.heap) > 4*len(d.next)+64 {
		d.heap = d.heap[:0]
		for g, t := range d.next {
			d.heap = append(d.heap, deadlineItem{t, g})
		}
		heap.Init(&d.heap)
	}
	if len(d.heap) == 0 {
		return time.Time{}
	}
	return d.heap[0].t
}

// dueGroups lists the groups with a timer due at now.
func (r *Router) dueGroups(now time.Time) map[netip.Addr]bool {
	r.groupsDeadline()
	out := map[netip.Addr]bool{}
	d := &r.dl
	for len(d.heap) > 0 && !d.heap[0].t.After(now) {
		it := heap.Pop(&d.heap).(deadlineItem)
		if cur, ok := d.next[it.g]; ok && cur.Equal(it.t) {
			out[it.g] = true
			delete(d.next, it.g) // recomputed once the group is processed
			r.markDirty(it.g)
		}
	}
	return out
}

func (r *Router) dueEntries(groups map[netip.Addr]bool) []*entry {
	var out []*entry
	for g := range groups {
		out = append(out, r.groupEntries(g)...)
	}
	return out
}
