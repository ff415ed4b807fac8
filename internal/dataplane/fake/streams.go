package fake

import (
	"errors"
	"net/netip"

	"overcast/internal/dataplane"
)

// Hub joins in-memory Streams: a Dial reaches the Streams listening on
// the remote address (with the same TCP-MD5 key), bytes arrive in order.
// Nothing happens until Run delivers what is queued, so tests decide when
// (and at what virtual time) events reach the daemons.
type Hub struct {
	listeners map[netip.AddrPort]*Streams
	queue     []func()
	next      dataplane.StreamID
	Refused   int // dials that found no listener or a wrong key
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{listeners: map[netip.AddrPort]*Streams{}} }

// Run delivers everything queued, including what delivery queues.
func (h *Hub) Run() {
	for len(h.queue) > 0 {
		f := h.queue[0]
		h.queue = h.queue[1:]
		f()
	}
}

// Streams is one host's end of a Hub.
type Streams struct {
	hub   *Hub
	sink  dataplane.StreamSink
	keys  map[netip.AddrPort]map[netip.Addr]string
	conns map[dataplane.StreamID]*fconn
}

type fconn struct {
	peer   *Streams
	peerID dataplane.StreamID
}

// New returns a Streams on the hub reporting to sink.
func (h *Hub) New(sink dataplane.StreamSink) *Streams {
	return &Streams{hub: h, sink: sink, keys: map[netip.AddrPort]map[netip.Addr]string{}, conns: map[dataplane.StreamID]*fconn{}}
}

func (h *Hub) id() dataplane.StreamID { h.next++; return h.next }

// Listen implements dataplane.Streams.
func (s *Streams) Listen(local netip.AddrPort, keys map[netip.Addr]string) error {
	if o := s.hub.listeners[local]; o != nil && o != s {
		return errors.New("address in use")
	}
	s.hub.listeners[local] = s
	s.keys[local] = keys
	return nil
}

// Dial implements dataplane.Streams.
func (s *Streams) Dial(local netip.Addr, remote netip.AddrPort, key string) dataplane.StreamID {
	id := s.hub.id()
	s.hub.queue = append(s.hub.queue, func() {
		l := s.hub.listeners[remote]
		if l == nil || l.keys[remote][local] != key {
			s.hub.Refused++
			s.sink.StreamFailed(id, errors.New("connection refused"))
			return
		}
		lid := s.hub.id()
		s.conns[id] = &fconn{peer: l, peerID: lid}
		l.conns[lid] = &fconn{peer: s, peerID: id}
		from := netip.AddrPortFrom(local, 40000+uint16(id))
		l.sink.StreamUp(lid, remote, from, true)
		s.sink.StreamUp(id, from, remote, false)
	})
	return id
}

// Write implements dataplane.Streams.
func (s *Streams) Write(id dataplane.StreamID, b []byte) error {
	c := s.conns[id]
	if c == nil {
		return errors.New("no such session")
	}
	b = append([]byte(nil), b...)
	s.hub.queue = append(s.hub.queue, func() {
		if c.peer.conns[c.peerID] != nil {
			c.peer.sink.StreamData(c.peerID, b)
		}
	})
	return nil
}

// Close implements dataplane.Streams.
func (s *Streams) Close(id dataplane.StreamID) {
	c := s.conns[id]
	if c == nil {
		return
	}
	delete(s.conns, id)
	s.hub.queue = append(s.hub.queue, func() {
		if c.peer.conns[c.peerID] != nil {
			delete(c.peer.conns, c.peerID)
			c.peer.sink.StreamDown(c.peerID, nil)
		}
	})
}

// Sessions is how many sessions are open at this end.
func (s *Streams) Sessions() int { return len(s.conns) }
