package fake

import (
	"net/netip"
	"slices"
	"sync"

	"overcast/internal/dataplane"
)

// OverlayHub is an in-memory underlay for overlay nodes: control
// datagrams wait in a queue until Deliver; data is moved by the caller
// (a simulation) with Accepts and the counters.
type OverlayHub struct {
	mu    sync.Mutex
	ends  map[netip.AddrPort]*OverlayEnd
	queue []OverlayDatagram
	Lose  func(OverlayDatagram) bool // drops a control datagram in flight
}

// OverlayDatagram is one control datagram in flight.
type OverlayDatagram struct {
	From, To netip.AddrPort
	B        []byte
}

// OverlayEnd is one node's overlay: it implements dataplane.Overlay.
type OverlayEnd struct {
	hub      *OverlayHub
	Local    netip.AddrPort
	Config   dataplane.OverlayConfig
	sink     dataplane.OverlaySink
	peers    map[netip.AddrPort]bool
	up       map[netip.AddrPort]bool
	counters map[netip.AddrPort]*dataplane.PeerCounters
	stats    dataplane.OverlayStats
	closed   bool
}

// NewOverlayHub returns an empty underlay.
func NewOverlayHub() *OverlayHub { return &OverlayHub{ends: map[netip.AddrPort]*OverlayEnd{}} }

// Open is daemon.Env.Overlay on the hub.
func (h *OverlayHub) Open(cfg dataplane.OverlayConfig, sink dataplane.OverlaySink) (dataplane.Overlay, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := &OverlayEnd{hub: h, Local: cfg.Local, Config: cfg, sink: sink, peers: map[netip.AddrPort]bool{},
		up: map[netip.AddrPort]bool{}, counters: map[netip.AddrPort]*dataplane.PeerCounters{}}
	h.ends[cfg.Local] = e
	return e, nil
}

// End returns a node's overlay.
func (h *OverlayHub) End(a netip.AddrPort) *OverlayEnd {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ends[a]
}

// Deliver hands every queued control datagram to its addressee (those
// it sends in turn wait for the next Deliver) and says how many it moved.
func (h *OverlayHub) Deliver() int {
	h.mu.Lock()
	q := h.queue
	h.queue = nil
	h.mu.Unlock()
	for _, d := range q {
		h.mu.Lock()
		e := h.ends[d.To]
		lose := h.Lose
		h.mu.Unlock()
		if e == nil || e.closed || lose != nil && lose(d) {
			continue
		}
		if !e.peers[d.From] {
			e.stats.NotPeer++
			continue
		}
		e.sink.OverlayControl(d.From, d.B)
	}
	return len(q)
}

// Queued is how many control datagrams are in flight.
func (h *OverlayHub) Queued() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.queue)
}

// Accepts says whether to takes data from from (from is a peer that is
// up), counting a refusal; it counts the packet both ways when it does.
func (h *OverlayHub) Accepts(from, to netip.AddrPort, size int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	src, dst := h.ends[from], h.ends[to]
	if dst == nil || dst.closed {
		return false
	}
	if !dst.up[from] {
		dst.stats.NotPeer++
		return false
	}
	if src != nil {
		c := src.counter(to)
		c.PacketsOut++
		c.BytesOut += uint64(size)
	}
	c := dst.counter(from)
	c.PacketsIn++
	c.BytesIn += uint64(size)
	return true
}

func (e *OverlayEnd) counter(p netip.AddrPort) *dataplane.PeerCounters {
	c := e.counters[p]
	if c == nil {
		c = &dataplane.PeerCounters{}
		e.counters[p] = c
	}
	return c
}

// SetPeers implements dataplane.Overlay.
func (e *OverlayEnd) SetPeers(all, up []netip.AddrPort) {
	e.hub.mu.Lock()
	defer e.hub.mu.Unlock()
	clear(e.peers)
	clear(e.up)
	for _, p := range all {
		e.peers[p] = true
	}
	for _, p := range up {
		e.up[p] = true
	}
}

// SendControl implements dataplane.Overlay.
func (e *OverlayEnd) SendControl(to netip.AddrPort, b []byte) error {
	e.hub.mu.Lock()
	defer e.hub.mu.Unlock()
	e.hub.queue = append(e.hub.queue, OverlayDatagram{From: e.Local, To: to, B: slices.Clone(b)})
	return nil
}

// Counters implements dataplane.Overlay.
func (e *OverlayEnd) Counters(fn func(netip.AddrPort, dataplane.PeerCounters)) {
	e.hub.mu.Lock()
	cs := map[netip.AddrPort]dataplane.PeerCounters{}
	for p, c := range e.counters {
		cs[p] = *c
	}
	e.hub.mu.Unlock()
	for p, c := range cs {
		fn(p, c)
	}
}

// Stats implements dataplane.Overlay.
func (e *OverlayEnd) Stats() dataplane.OverlayStats {
	e.hub.mu.Lock()
	defer e.hub.mu.Unlock()
	return e.stats
}

// Close implements dataplane.Overlay.
func (e *OverlayEnd) Close() error {
	e.hub.mu.Lock()
	defer e.hub.mu.Unlock()
	e.closed = true
	return nil
}
