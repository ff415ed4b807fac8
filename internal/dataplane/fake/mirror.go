package fake

import (
	"fmt"
	"sync"

	"overcast/internal/dataplane"
	"overcast/internal/mirror"
)

// Mirror is an in-memory mirroring data path: it checks sets as the
// kernel's does (ports must exist), and classifies packets handed to
// Tap with the reference classifier, recording the copies per service.
type Mirror struct {
	mu      sync.Mutex
	Ports   map[string]bool // interfaces that exist
	set     mirror.Set
	filters map[string]mirror.Filter
	ctr     map[string]mirror.Counters
	Copies  map[string][][]byte // by service
	Applied int                 // how many Applys changed the set
}

// NewMirror is a fake with these ports.
func NewMirror(ports ...string) *Mirror {
	m := &Mirror{Ports: map[string]bool{}, filters: map[string]mirror.Filter{}, ctr: map[string]mirror.Counters{}, Copies: map[string][][]byte{}}
	for _, p := range ports {
		m.Ports[p] = true
	}
	return m
}

var _ dataplane.Mirror = (*Mirror)(nil)

func (m *Mirror) Check(s mirror.Set) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.check(s)
}

func (m *Mirror) check(s mirror.Set) error {
	if err := s.Check(); err != nil {
		return err
	}
	for _, x := range s.Services {
		if x.Port != "" && !m.Ports[x.Port] {
			return fmt.Errorf("service %s: no interface %q on this host (ip link shows them)", x.Name, x.Port)
		}
	}
	for _, f := range s.Flows {
		if !m.Ports[f.Port] {
			return fmt.Errorf("flow %s: no interface %q on this host (ip link shows them)", f.Name, f.Port)
		}
	}
	return nil
}

func (m *Mirror) Apply(s mirror.Set) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(s); err != nil {
		return err
	}
	m.set = s
	m.filters = map[string]mirror.Filter{}
	for _, f := range s.Flows {
		m.filters[f.Name], _ = f.Filter()
	}
	for name := range m.ctr {
		if _, ok := m.filters[name]; !ok {
			delete(m.ctr, name)
		}
	}
	m.Applied++
	return nil
}

// Tap offers one IPv4 packet seen on a port in a direction.
func (m *Mirror) Tap(port string, d mirror.Direction, pkt []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := mirror.ParseIPv4(pkt)
	for _, f := range m.set.Flows {
		if f.Port != port || f.Direction&d == 0 {
			continue
		}
		c := m.ctr[f.Name]
		ok, _ := m.filters[f.Name].Classify(p)
		if err != nil {
			ok, _ = m.filters[f.Name].ClassifyOther()
		}
		if ok {
			svc, _ := m.set.Service(f.Service)
			cp := append([]byte(nil), pkt...)
			if svc.Truncate > 0 && len(cp) > int(svc.Truncate) {
				cp = cp[:svc.Truncate]
				c.Truncated++
			}
			c.Mirrored++
			c.Bytes += uint64(len(cp))
			m.Copies[f.Service] = append(m.Copies[f.Service], cp)
		} else {
			c.Skipped++
		}
		m.ctr[f.Name] = c
	}
}

func (m *Mirror) Counters() map[string]dataplane.MirrorFlowState {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]dataplane.MirrorFlowState{}
	for _, f := range m.set.Flows {
		out[f.Name] = dataplane.MirrorFlowState{Counters: m.ctr[f.Name], Attached: m.Ports[f.Port]}
	}
	return out
}

func (m *Mirror) Close() error { return m.Apply(mirror.Set{}) }
