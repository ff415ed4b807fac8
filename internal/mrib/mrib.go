// Package mrib is the multicast RIB: the desired forwarding state, one
// entry per (S,G), each output tagged with the component that wants it
// (igmp, static, pim, register; later msdp, overlay, mirror) and how long
// it has been there. Components write it; the reconciler reads only it
// (Program); `show mroute` reads flags and per-output state from it.
package mrib

import (
	"iter"
	"net/netip"
	"slices"
	"strings"
	"time"

	"overcast/internal/dataplane"
)

// Origin is who wants an output (or chose the input).
type Origin uint8

const (
	IGMP     Origin = iota + 1 // a local receiver reported by IGMP
	Static                     // a static group in the config
	PIM                        // a downstream PIM join (or the RPF toward S or the RP, for inputs)
	Register                   // the register VIF: the first hop encapsulates to the RP
	MSDP                       // an MSDP SA (reserved for the inter-domain component)
	Overlay                    // a peer of the overlay (reserved)
	Mirror                     // a mirror session (reserved)
	Flow                       // inputs only: the interface the flow arrived on (no routing protocol)
	Restart                    // kept from the route a predecessor left, for the restart grace
)

func (o Origin) String() string {
	switch o {
	case IGMP:
		return "igmp"
	case Static:
		return "static"
	case PIM:
		return "pim"
	case Register:
		return "register"
	case MSDP:
		return "msdp"
	case Overlay:
		return "overlay"
	case Mirror:
		return "mirror"
	case Flow:
		return "flow"
	case Restart:
		return "restart"
	}
	return "unknown"
}

// Output is one place a flow goes.
type Output struct {
	Name   string // interface name (dataplane.RegisterName for the register VIF)
	Origin Origin
	since  int64 // unix nanoseconds: 8 bytes, not time.Time's 24, per output of 10,000s
}

// Since is when this output (with this origin) appeared.
func (o Output) Since() time.Time { return time.Unix(0, o.since) }

// Flags are an entry's state in the Cisco style.
type Flags uint16

const (
	Sparse      Flags = 1 << iota // S: PIM sparse mode
	Connected                     // C: a directly connected member
	Pruned                        // P: no outputs
	RegisterOut                   // F: registering to the RP
	SPT                           // T: forwarding on the source's tree
	RPTPruned                     // R: (S,G,rpt) pruned upstream
	Threshold                     // J: SPT threshold crossed
	MSDPCreated                   // M: created for a source an MSDP SA named
	Advertised                    // A: a candidate for MSDP advertisement (this RP originates its SA)
)

// String prints the flags as the letters of Cisco's `show ip mroute`.
func (f Flags) String() string {
	var b strings.Builder
	for _, x := range []struct {
		f Flags
		c byte
	}{{Sparse, 'S'}, {Connected, 'C'}, {RegisterOut, 'F'}, {SPT, 'T'}, {RPTPruned, 'R'}, {Threshold, 'J'}, {MSDPCreated, 'M'}, {Advertised, 'A'}, {Pruned, 'P'}} {
		if f&x.f != 0 {
			b.WriteByte(x.c)
		}
	}
	return b.String()
}

// Entry is the desired forwarding of one (S,G).
type Entry struct {
	dataplane.SG
	IIF       string
	IIFOrigin Origin
	Outputs   []Output         // sorted by name; one per name
	Peers     []netip.AddrPort // a replication list (overlay)
	Flags     Flags
}

// Route is the entry as a forwarder route.
func (e *Entry) Route() dataplane.Route {
	r := dataplane.Route{SG: e.SG, IIF: e.IIF, Peers: e.Peers}
	if len(e.Outputs) > 0 {
		r.OIFs = make([]string, len(e.Outputs))
		for i, o := range e.Outputs {
			r.OIFs[i] = o.Name
		}
	}
	return r
}

// Output returns the output named n.
func (e *Entry) Output(n string) (Output, bool) {
	i, ok := slices.BinarySearchFunc(e.Outputs, n, func(o Output, n string) int { return strings.Compare(o.Name, n) })
	if !ok {
		return Output{}, false
	}
	return e.Outputs[i], true
}

// Add puts an output on the entry (first origin wins for a name).
func (e *Entry) Add(name string, o Origin) {
	i, ok := slices.BinarySearchFunc(e.Outputs, name, func(o Output, n string) int { return strings.Compare(o.Name, n) })
	if ok {
		return
	}
	e.Outputs = slices.Insert(e.Outputs, i, Output{Name: name, Origin: o})
}

// RIB holds the entries and which changed since the last Program.
type RIB struct {
	entries map[dataplane.SG]*Entry
	changed map[dataplane.SG]bool
	peak    int // the most changes held at once since changed was made
}

// New returns an empty RIB.
func New() *RIB {
	return &RIB{entries: map[dataplane.SG]*Entry{}, changed: map[dataplane.SG]bool{}}
}

// Set replaces k's entry at now. Outputs that were already there with
// the same origin keep their Since; new ones start now. It marks the
// entry for programming only when its forwarding changed.
func (r *RIB) Set(now time.Time, e Entry) {
	old := r.entries[e.SG]
	for i := range e.Outputs {
		o := &e.Outputs[i]
		if old != nil {
			if prev, ok := old.Output(o.Name); ok && prev.Origin == o.Origin {
				o.since = prev.since
				continue
			}
		}
		o.since = now.UnixNano()
	}
	if old == nil || !sameForwarding(old, &e) {
		r.mark(e.SG)
	}
	if old != nil {
		*old = e
		return
	}
	r.entries[e.SG] = &e
}

func sameForwarding(a, b *Entry) bool {
	if a.IIF != b.IIF || len(a.Outputs) != len(b.Outputs) || !slices.Equal(a.Peers, b.Peers) {
		return false
	}
	for i := range a.Outputs {
		if a.Outputs[i].Name != b.Outputs[i].Name {
			return false
		}
	}
	return true
}

// Delete removes k's entry.
func (r *RIB) Delete(k dataplane.SG) {
	if _, ok := r.entries[k]; ok {
		delete(r.entries, k)
		r.mark(k)
	}
}

func (r *RIB) mark(k dataplane.SG) {
	r.changed[k] = true
	r.peak = max(r.peak, len(r.changed))
}

// Get returns k's entry.
func (r *RIB) Get(k dataplane.SG) (*Entry, bool) {
	e, ok := r.entries[k]
	return e, ok
}

// Len is the number of entries.
func (r *RIB) Len() int { return len(r.entries) }

// All iterates over the entries in no order.
func (r *RIB) All() iter.Seq[*Entry] {
	return func(yield func(*Entry) bool) {
		for _, e := range r.entries {
			if !yield(e) {
				return
			}
		}
	}
}

// Changes iterates over the entries changed since the last Program
// (deleted ones have ok false).
func (r *RIB) Changes() iter.Seq2[dataplane.SG, bool] {
	return func(yield func(dataplane.SG, bool) bool) {
		for k := range r.changed {
			_, ok := r.entries[k]
			if !yield(k, ok) {
				return
			}
		}
	}
}

// Program makes the reconciler hold the changed entries and forgets the
// changes that went through; a failed change stays marked and is retried
// at the next Program. It returns the first error.
func (r *RIB) Program(rec *dataplane.Reconciler) error {
	var first error
	for k := range r.changed {
		var err error
		if e, ok := r.entries[k]; ok {
			err = rec.Update([]dataplane.Route{e.Route()})
		} else if err = rec.Delete(k); err != nil {
			rec.Errors++
		}
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		delete(r.changed, k)
	}
	if len(r.changed) == 0 && r.peak > 1024 {
		// A map keeps its buckets when emptied: after a burst of 10,000
		// new routes that would be a megabyte held for nothing.
		r.changed, r.peak = map[dataplane.SG]bool{}, 0
	}
	return first
}
