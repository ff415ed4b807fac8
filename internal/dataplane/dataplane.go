// Package dataplane is the seam between the daemon and the machinery that
// moves packets. It has two halves:
//
//   - Forwarder: a forwarding plane whose routes have abstract outputs
//     (interfaces by name, or a replication list of unicast peers). The
//     kernel's multicast forwarding cache is one (internal/kernel over
//     linuxmr); an overlay replicator or a tc/eBPF mirror plugs in beside
//     it. Optional capabilities (RouteLister, Registerer) are separate
//     interfaces a forwarder may also implement.
//   - PacketIO: sending and receiving control packets (IGMP, PIM) per
//     interface. Received packets, kernel upcalls and routing changes are
//     delivered to a Sink.
//
// The Reconciler is the only code that programs a Forwarder: it makes the
// plane hold the routes the daemon's MRIB asks for, with as few calls as
// possible.
package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// SG names a forwarding entry.
type SG struct{ Source, Group netip.Addr }

func (k SG) String() string { return fmt.Sprintf("(%s, %s)", k.Source, k.Group) }

// Route is one (S,G) forwarding entry: packets arriving on IIF go out of
// every interface in OIFs and, unicast, to every peer in Peers.
type Route struct {
	SG
	IIF   string
	OIFs  []string         // sorted interface names (RegisterName for the register VIF)
	Peers []netip.AddrPort // sorted replication list (an overlay forwarder's outputs)
}

// RegisterName is the register pseudo-interface in routes (PIM's pimreg).
const RegisterName = "pimreg"

// Equal reports whether two routes program the same forwarding.
func (r Route) Equal(o Route) bool {
	return r.SG == o.SG && r.IIF == o.IIF && slices.Equal(r.OIFs, o.OIFs) && slices.Equal(r.Peers, o.Peers)
}

// Counters are a route's forwarding counters.
type Counters struct {
	Packets, Bytes, WrongIf uint64
}

// UpcallKind says why the forwarding plane handed a packet to the daemon.
type UpcallKind int

const (
	NoCache  UpcallKind = 1 // no route for (S,G) yet
	WrongVIF UpcallKind = 2 // (S,G) arrived on an interface other than its IIF
	WholePkt UpcallKind = 3 // whole packet for the register VIF
)

func (k UpcallKind) String() string {
	switch k {
	case NoCache:
		return "nocache"
	case WrongVIF:
		return "wrongvif"
	case WholePkt:
		return "wholepkt"
	}
	return fmt.Sprintf("upcall%d", int(k))
}

// Upcall is one notification from the forwarding plane.
type Upcall struct {
	Kind  UpcallKind
	Iface string // the interface the packet arrived on ("" unknown)
	SG
	Packet []byte // WholePkt: the packet to encapsulate, IP header included
	IPID   int    // NoCache/WrongVIF: the packet's IP identification (-1 unknown)
}

// Forwarder programs a forwarding plane. Interfaces are named; how they
// map to the plane's own numbering (kernel VIFs) is the forwarder's
// business.
type Forwarder interface {
	AddInterface(name string, ifindex int) error
	DelInterface(name string) error
	SetRoute(r Route) error // add or replace
	DelRoute(k SG) error
	Counters(fn func(SG, Counters)) error // calls fn for every route
	SGCount(k SG) (Counters, error)       // one route's counters
}

// Registerer is a forwarder that can carry PIM registers: it adds the
// register interface (RegisterName) and hands whole packets routed to it
// up as WholePkt upcalls.
type Registerer interface {
	EnableRegister() error
}

// Injector is a forwarder that can send one whole IPv4 packet out of an
// interface as if it had forwarded it (the data an MSDP SA carries, which
// reached this router inside a TCP session rather than on an interface).
type Injector interface {
	Inject(oif string, pkt []byte) error
}

// RouteLister is a forwarder that can list the routes it holds, so a
// restarted daemon can adopt them instead of flushing forwarding.
type RouteLister interface {
	ListRoutes() ([]Route, error)
}

// Flusher is a forwarder whose routes outlive the daemon (the kernel's
// static entries): Flush removes them all, for a stop that asks.
type Flusher interface {
	Flush() error
}

// Proto is a control protocol carried by PacketIO.
type Proto int

const (
	IGMP Proto = 2
	PIM  Proto = 103
)

func (p Proto) String() string {
	switch p {
	case IGMP:
		return "igmp"
	case PIM:
		return "pim"
	}
	return fmt.Sprintf("proto%d", int(p))
}

// PacketIO sends control packets and subscribes interfaces to them.
type PacketIO interface {
	// Listen makes proto's packets on an interface reach the Sink
	// (joins the link-local groups they are sent to); Unlisten undoes it.
	Listen(iface string, ifindex int, proto Proto) error
	Unlisten(iface string, ifindex int, proto Proto) error
	// Send transmits on an interface ("" for unicast routed by the
	// plane). IGMP packets are whole IPv4 packets (header included, with
	// Router Alert); PIM packets are the PIM message only.
	Send(iface string, proto Proto, dst netip.Addr, pkt []byte) error
}

// SourceSender is a PacketIO that can send unicast from a chosen local
// address (an anycast RP forwards Registers from its unique address).
type SourceSender interface {
	SendFrom(src, dst netip.Addr, proto Proto, pkt []byte) error
}

// Sink receives what the planes report. The daemon's event loop
// implements it by queueing each report as an event.
type Sink interface {
	Packet(iface string, proto Proto, pkt []byte) // whole IPv4 packet
	Upcall(up Upcall)
	RoutingChanged() // unicast routes or links changed: re-check RPF
}

// ErrNoIPv4 is what Links.Link wraps for an interface that exists but has
// no IPv4 address (a tap port may; an IGMP interface may not).
var ErrNoIPv4 = errors.New("no IPv4 address")

// Link is what the daemon needs to know about a network interface.
type Link struct {
	Index     int
	Addr      netip.Addr     // primary IPv4 address (the source of queries and hellos)
	Prefixes  []netip.Prefix // every IPv4 subnet on the link (masked)
	Multicast bool           // the MULTICAST flag
}

// Links looks interfaces up on the host.
type Links interface {
	Link(name string) (Link, error)
	LocalAddrs() []netip.Addr // every IPv4 address of the host (RP and register checks)
}

// StreamID names one TCP connection of a Streams.
type StreamID uint64

// Streams carries the TCP sessions of the session protocols (MSDP). It
// reports through a StreamSink: connections accepted or dialled, their
// bytes, dial failures and closes. Nothing blocks the caller.
type Streams interface {
	// Listen accepts connections to local (port included); keys are the
	// TCP-MD5 keys (RFC 2385) by remote address, replacing earlier ones.
	Listen(local netip.AddrPort, keys map[netip.Addr]string) error
	// Dial connects from local to remote; the outcome comes as StreamUp
	// or StreamFailed with the returned ID.
	Dial(local netip.Addr, remote netip.AddrPort, key string) StreamID
	Write(id StreamID, b []byte) error
	Close(id StreamID)
}

// StreamSink receives what Streams reports.
type StreamSink interface {
	StreamUp(id StreamID, local, remote netip.AddrPort, inbound bool)
	StreamFailed(id StreamID, err error)
	StreamData(id StreamID, b []byte)
	StreamDown(id StreamID, err error)
}

// OverlayConfig is the overlay's device and socket: one TUN device that is
// a single interface (one VIF) for every peer, and one UDP socket.
type OverlayConfig struct {
	Interface  string
	MTU        int
	Local      netip.AddrPort
	LocalRoute bool // route 224.0.0.0/4 into the device for this host's own senders and receivers
}

// Overlay is the overlay's underlay. Data never passes through the
// daemon: packets the forwarder sends out of the overlay device are copied
// to the peers of their route (Route.Peers), and data from a peer comes
// back in through the device as if received on it. The daemon sees the
// control datagrams (OverlaySink) and an upcall for an (S,G) leaving the
// device with no route yet.
type Overlay interface {
	// SetPeers sets the peers: control datagrams are accepted from all
	// of them, data only from those up (authenticated by their control
	// messages); anything else is dropped and counted as NotPeer.
	SetPeers(all, up []netip.AddrPort)
	SendControl(to netip.AddrPort, b []byte) error
	Counters(fn func(netip.AddrPort, PeerCounters))
	Stats() OverlayStats
	Close() error
}

// PeerCounters are one peer's data counters.
type PeerCounters struct {
	PacketsIn, BytesIn   uint64
	PacketsOut, BytesOut uint64
	SendErrors           uint64
}

// OverlayStats counts what the overlay's data path dropped.
type OverlayStats struct {
	NotPeer   uint64 // datagrams from addresses that are not peers (data: not peers that are up)
	Malformed uint64 // datagrams that are not overlay data or control
	Looped    uint64 // data from a peer whose source is this node's own
	NoRoute   uint64 // packets out of the device with no replication list yet (queued briefly, then dropped)
	TooBig    uint64 // packets that would not fit the underlay
}

// OverlaySink receives what the overlay reports.
type OverlaySink interface {
	OverlayControl(from netip.AddrPort, b []byte)
	Upcall(up Upcall)
}
