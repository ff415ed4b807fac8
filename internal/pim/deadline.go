package pim

import (
	"container/heap"
	"time"
)

// Timers at scale. With 10,000 flows, scanning every entry's timers after
// each event (NextDeadline) or on each wake-up (Advance) dominated the
// daemon's idle CPU. Instead each entry's earliest timer is kept in a
// min-heap, recomputed only for the entries an event touched: every event
// that changes a timer re-evaluates its entries through reconcileScope,
// which marks them dirty. Stale heap items are skipped lazily. Keyed by
// entry, not group: 20,000 sources in one group cost one entry's work per
// event, not the group's.

type deadlineItem struct {
	t time.Time
	k SG
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
	next  map[SG]time.Time // each entry's earliest timer
	heap  deadlineHeap
	dirty map[SG]bool
	all   bool // recompute every entry
}

func (r *Router) markDirty(k SG) {
	if r.dl.dirty == nil {
		r.dl.dirty = map[SG]bool{}
	}
	r.dl.dirty[k] = true
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

func (r *Router) setEntryNext(k SG) {
	var t time.Time
	if e := r.entries[k]; e != nil {
		t = entryNext(e)
	}
	if t.IsZero() {
		delete(r.dl.next, k)
		return
	}
	if cur, ok := r.dl.next[k]; ok && cur.Equal(t) {
		return
	}
	r.dl.next[k] = t
	heap.Push(&r.dl.heap, deadlineItem{t, k})
}

// entriesDeadline brings the heap up to date and returns the earliest
// entry timer.
func (r *Router) entriesDeadline() time.Time {
	d := &r.dl
	if d.all || d.next == nil {
		d.next, d.heap, d.all = map[SG]time.Time{}, nil, false
		for k := range r.entries {
			r.setEntryNext(k)
		}
		clear(d.dirty)
	}
	for k := range d.dirty {
		r.setEntryNext(k)
	}
	clear(d.dirty)
	for len(d.heap) > 0 {
		top := d.heap[0]
		if cur, ok := d.next[top.k]; ok && cur.Equal(top.t) {
			break
		}
		heap.Pop(&d.heap)
	}
	if len(d.heap) > 4*len(d.next)+64 {
		d.heap = d.heap[:0]
		for k, t := range d.next {
			d.heap = append(d.heap, deadlineItem{t, k})
		}
		heap.Init(&d.heap)
	}
	if len(d.heap) == 0 {
		return time.Time{}
	}
	return d.heap[0].t
}

// dueKeys lists the entries with a timer due at now.
func (r *Router) dueKeys(now time.Time) []SG {
	r.entriesDeadline()
	var out []SG
	d := &r.dl
	for len(d.heap) > 0 && !d.heap[0].t.After(now) {
		it := heap.Pop(&d.heap).(deadlineItem)
		if cur, ok := d.next[it.k]; ok && cur.Equal(it.t) {
			out = append(out, it.k)
			delete(d.next, it.k) // recomputed once the entry is processed
			r.markDirty(it.k)
		}
	}
	return out
}
