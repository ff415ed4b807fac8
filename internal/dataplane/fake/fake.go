// Package fake is an in-memory forwarding plane for simulations and tests:
// it holds VIFs and routes and forwards packets by table lookup.
package fake

import (
	"fmt"
	"slices"

	"overcast/internal/dataplane"
)

// Forwarder implements dataplane.Forwarder in memory.
type Forwarder struct {
	VIFs     map[int]dataplane.VIF
	Routes   map[dataplane.SG]dataplane.Route
	counters map[dataplane.SG]dataplane.Counters
	Calls    int // SetRoute + DelRoute calls, to check the reconciler is minimal
}

// New returns an empty forwarder.
func New() *Forwarder {
	return &Forwarder{VIFs: map[int]dataplane.VIF{}, Routes: map[dataplane.SG]dataplane.Route{}, counters: map[dataplane.SG]dataplane.Counters{}}
}

func (f *Forwarder) AddVIF(v dataplane.VIF) error {
	if _, ok := f.VIFs[v.Index]; ok || v.Index < 0 || v.Index >= 32 {
		return fmt.Errorf("fake: vif %d busy or out of range", v.Index)
	}
	f.VIFs[v.Index] = v
	return nil
}

func (f *Forwarder) DelVIF(i int) error {
	if _, ok := f.VIFs[i]; !ok {
		return fmt.Errorf("fake: no vif %d", i)
	}
	delete(f.VIFs, i)
	return nil
}

func (f *Forwarder) SetRoute(r dataplane.Route) error {
	f.Calls++
	for _, v := range append([]int{r.IIF}, r.OIFs...) {
		if _, ok := f.VIFs[v]; !ok {
			return fmt.Errorf("fake: route %v uses missing vif %d", r.SG, v)
		}
	}
	r.OIFs = slices.Clone(r.OIFs)
	f.Routes[r.SG] = r
	return nil
}

func (f *Forwarder) DelRoute(k dataplane.SG) error {
	f.Calls++
	if _, ok := f.Routes[k]; !ok {
		return fmt.Errorf("fake: no route %v", k)
	}
	delete(f.Routes, k)
	delete(f.counters, k)
	return nil
}

func (f *Forwarder) Counters(fn func(dataplane.SG, dataplane.Counters)) error {
	for k, v := range f.counters {
		fn(k, v)
	}
	return nil
}

// Forward delivers one packet of size bytes arriving on vif and returns the
// VIFs it leaves by, or ok=false with an upcall when there is no route or the
// packet came in the wrong way.
func (f *Forwarder) Forward(k dataplane.SG, vif, size int) (out []int, up *dataplane.Upcall) {
	r, ok := f.Routes[k]
	if !ok {
		return nil, &dataplane.Upcall{Kind: dataplane.NoCache, VIF: vif, SG: k}
	}
	c := f.counters[k]
	if r.IIF != vif {
		c.WrongIf++
		f.counters[k] = c
		return nil, &dataplane.Upcall{Kind: dataplane.WrongVIF, VIF: vif, SG: k}
	}
	c.Packets++
	c.Bytes += uint64(size)
	f.counters[k] = c
	return slices.Clone(r.OIFs), nil
}
