// Package pim holds the PIM-SM protocol state machines (RFC 7761). They are
// pure: events and the current time go in, packets to send and state
// changes come out. This file is the per-interface part of section 4.3:
// hellos, neighbours, generation IDs, DR election and the LAN prune delay
// figures the join/prune machines use.
package pim

import (
	"net/netip"
	"slices"
	"time"

	wire "overcast/internal/packet/pim"
)

// IfConfig is an interface's hello configuration (RFC 7761 section 4.11).
type IfConfig struct {
	HelloPeriod         time.Duration // 30 s
	TriggeredHelloDelay time.Duration // 5 s
	Holdtime            time.Duration // 3.5 x HelloPeriod = 105 s
	DRPriority          uint32        // 1
	PropagationDelay    time.Duration // 500 ms
	OverrideInterval    time.Duration // 2500 ms
	TrackingSupport     bool          // T bit: this router never suppresses joins
	// Subnets are the interface's IPv4 prefixes: Hellos from outside them
	// are refused (HelloOffSubnet). None known: any source.
	Subnets []netip.Prefix
	// NeighborFilter, when set, lists the only addresses accepted as
	// neighbours on the interface (NeighborFiltered).
	NeighborFilter []netip.Prefix
}

// WithDefaults fills unset fields with the RFC 7761 defaults.
func (c IfConfig) WithDefaults() IfConfig {
	if c.HelloPeriod == 0 {
		c.HelloPeriod = 30 * time.Second
	}
	if c.TriggeredHelloDelay == 0 {
		c.TriggeredHelloDelay = 5 * time.Second
	}
	if c.Holdtime == 0 {
		c.Holdtime = c.HelloPeriod * 7 / 2
	}
	if c.DRPriority == 0 {
		c.DRPriority = 1
	}
	if c.PropagationDelay == 0 {
		c.PropagationDelay = 500 * time.Millisecond
	}
	if c.OverrideInterval == 0 {
		c.OverrideInterval = 2500 * time.Millisecond
	}
	return c
}

// Neighbor is what a PIM neighbour's hellos said.
type Neighbor struct {
	Addr             netip.Addr
	GenerationID     uint32
	HasGenerationID  bool
	DRPriority       uint32
	HasDRPriority    bool
	HasLANPruneDelay bool
	Tracking         bool
	PropagationDelay time.Duration
	OverrideInterval time.Duration
	Holdtime         time.Duration
	Secondary        []netip.Addr
	Since            time.Time
	Expires          time.Time // zero: never (holdtime 0xffff)
}

// EventKind is a neighbour or DR change the rest of PIM reacts to.
type EventKind int

const (
	NeighborUp        EventKind = iota
	NeighborDown                // holdtime expired or goodbye hello
	NeighborRestarted           // new generation ID: resend joins to it (section 4.5.7)
	DRChanged
)

func (k EventKind) String() string {
	return [...]string{"neighbor-up", "neighbor-down", "neighbor-restarted", "dr-changed"}[k]
}

// Event is a change on the interface.
type Event struct {
	Kind EventKind
	Addr netip.Addr // the neighbour, or the new DR
}

// Packet is a PIM message to send on the interface.
type Packet struct {
	Dst netip.Addr
	Msg wire.Message
}

// Output collects what a call wants done.
type Output struct {
	Packets []Packet
	Events  []Event
}

// Interface is PIM's hello and neighbour state on one interface.
type Interface struct {
	cfg       IfConfig
	addr      netip.Addr
	secondary []netip.Addr
	genID     uint32
	jitter    func(max time.Duration) time.Duration // random delay in [0, max)
	neighbors map[netip.Addr]*Neighbor
	nextHello time.Time
	dr        netip.Addr
}

// NewInterface starts PIM on an interface with primary address addr. genID
// is the generation ID for this run (random, chosen by the caller), and
// jitter supplies the random delays the RFC asks for. The first hello goes
// out at once, a second within Triggered_Hello_Delay, then every period.
func NewInterface(cfg IfConfig, addr netip.Addr, secondary []netip.Addr, genID uint32, jitter func(time.Duration) time.Duration, now time.Time) (*Interface, Output) {
	i := &Interface{cfg: cfg.WithDefaults(), addr: addr, secondary: secondary, genID: genID, jitter: jitter,
		neighbors: map[netip.Addr]*Neighbor{}, dr: addr}
	var out Output
	i.sendHello(now, &out)
	// A second hello soon after: the first often goes out before the link
	// (or a neighbour) is ready, and neighbours should not wait a whole
	// period to see us.
	i.nextHello = now.Add(jitter(i.cfg.TriggeredHelloDelay))
	return i, out
}

// Addr is the interface's primary address.
func (i *Interface) Addr() netip.Addr { return i.addr }

// Config is the interface's hello configuration.
func (i *Interface) Config() IfConfig { return i.cfg }

// GenerationID is this router's generation ID on the interface.
func (i *Interface) GenerationID() uint32 { return i.genID }

// DR is the designated router (this router's own address when it is DR).
func (i *Interface) DR() netip.Addr { return i.dr }

// IsDR says whether this router is the DR.
func (i *Interface) IsDR() bool { return i.dr == i.addr }

// NextHello is when the next periodic hello is due.
func (i *Interface) NextHello() time.Time { return i.nextHello }

// Neighbor returns a neighbour by primary or secondary address.
func (i *Interface) Neighbor(a netip.Addr) *Neighbor {
	if n := i.neighbors[a]; n != nil {
		return n
	}
	for _, n := range i.neighbors {
		if slices.Contains(n.Secondary, a) {
			return n
		}
	}
	return nil
}

// Neighbors lists the neighbours by address.
func (i *Interface) Neighbors() []Neighbor {
	out := make([]Neighbor, 0, len(i.neighbors))
	for _, n := range i.neighbors {
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b Neighbor) int { return a.Addr.Compare(b.Addr) })
	return out
}

func (i *Interface) hello() *wire.Hello {
	hold := uint16(min(i.cfg.Holdtime/time.Second, 0xffff))
	return wire.NewHello(hold, uint16(i.cfg.PropagationDelay/time.Millisecond), uint16(i.cfg.OverrideInterval/time.Millisecond),
		i.cfg.TrackingSupport, i.cfg.DRPriority, i.genID, i.secondary)
}

func (i *Interface) sendHello(now time.Time, out *Output) {
	out.Packets = append(out.Packets, Packet{Dst: wire.AllPIMRouters, Msg: i.hello()})
	i.nextHello = now.Add(i.cfg.HelloPeriod)
}

// triggerHello schedules a hello within Triggered_Hello_Delay unless one
// is due sooner (section 4.3.1).
func (i *Interface) triggerHello(now time.Time) {
	t := now.Add(i.jitter(i.cfg.TriggeredHelloDelay))
	if t.Before(i.nextHello) {
		i.nextHello = t
	}
}

// ReceiveHello processes a hello from src (section 4.3.1).
func (i *Interface) ReceiveHello(now time.Time, src netip.Addr, h *wire.Hello) Output {
	var out Output
	if src == i.addr {
		return out
	}
	n := i.neighbors[src]
	if h.Holdtime == 0 {
		if n != nil {
			i.removeNeighbor(src, &out)
			i.electDR(&out)
		}
		return out
	}
	if n == nil {
		n = &Neighbor{Addr: src, Since: now}
		i.neighbors[src] = n
		out.Events = append(out.Events, Event{Kind: NeighborUp, Addr: src})
		i.triggerHello(now)
	} else if h.HasGenerationID && n.HasGenerationID && h.GenerationID != n.GenerationID {
		// The neighbour restarted: it lost our joins. Treat it as new.
		n.Since = now
		out.Events = append(out.Events, Event{Kind: NeighborRestarted, Addr: src})
		i.triggerHello(now)
	}
	n.GenerationID, n.HasGenerationID = h.GenerationID, h.HasGenerationID
	n.DRPriority, n.HasDRPriority = h.DRPriority, h.HasDRPriority
	n.HasLANPruneDelay, n.Tracking = h.HasLANPruneDelay, h.TrackingSupport
	n.PropagationDelay = time.Duration(h.PropagationDelay) * time.Millisecond
	n.OverrideInterval = time.Duration(h.OverrideInterval) * time.Millisecond
	n.Secondary = h.Addresses
	n.Holdtime = h.HoldtimeDuration()
	if h.Holdtime == 0xffff {
		n.Expires = time.Time{}
	} else {
		n.Expires = now.Add(n.Holdtime)
	}
	i.electDR(&out)
	return out
}

func (i *Interface) removeNeighbor(a netip.Addr, out *Output) {
	delete(i.neighbors, a)
	out.Events = append(out.Events, Event{Kind: NeighborDown, Addr: a})
}

// electDR runs the DR election of section 4.3.2: the highest DR priority
// wins, then the highest address; priorities count only when every router
// on the LAN advertises one.
func (i *Interface) electDR(out *Output) {
	usePriority := true
	for _, n := range i.neighbors {
		if !n.HasDRPriority {
			usePriority = false
		}
	}
	best, bestPrio := i.addr, i.cfg.DRPriority
	for _, n := range i.neighbors {
		if usePriority && n.DRPriority != bestPrio {
			if n.DRPriority > bestPrio {
				best, bestPrio = n.Addr, n.DRPriority
			}
			continue
		}
		if n.Addr.Compare(best) > 0 {
			best, bestPrio = n.Addr, n.DRPriority
		}
	}
	if best != i.dr {
		i.dr = best
		out.Events = append(out.Events, Event{Kind: DRChanged, Addr: best})
	}
}

// Advance runs timers due at now: periodic hellos and neighbour expiry.
func (i *Interface) Advance(now time.Time, out *Output) {
	if !now.Before(i.nextHello) {
		i.sendHello(now, out)
	}
	expired := false
	for _, n := range i.Neighbors() { // sorted, so events come in a fixed order
		if !n.Expires.IsZero() && !now.Before(n.Expires) {
			i.removeNeighbor(n.Addr, out)
			expired = true
		}
	}
	if expired {
		i.electDR(out)
	}
}

// NextDeadline is the earliest time Advance has work to do.
func (i *Interface) NextDeadline() time.Time {
	t := i.nextHello
	for _, n := range i.neighbors {
		if !n.Expires.IsZero() && n.Expires.Before(t) {
			t = n.Expires
		}
	}
	return t
}

// Shutdown returns the goodbye hello (holdtime 0) to send as PIM stops on
// the interface (section 4.3.1).
func (i *Interface) Shutdown() Output {
	h := i.hello()
	h.Holdtime = 0
	h.Options = nil
	return Output{Packets: []Packet{{Dst: wire.AllPIMRouters, Msg: h}}}
}

// LANDelayEnabled is true when every neighbour sent the LAN Prune Delay
// option (section 4.3.3).
func (i *Interface) LANDelayEnabled() bool {
	for _, n := range i.neighbors {
		if !n.HasLANPruneDelay {
			return false
		}
	}
	return true
}

// EffectivePropagationDelay is the largest propagation delay on the LAN
// when LAN delay is enabled, else the default (section 4.3.3).
func (i *Interface) EffectivePropagationDelay() time.Duration {
	if !i.LANDelayEnabled() {
		return 500 * time.Millisecond
	}
	d := i.cfg.PropagationDelay
	for _, n := range i.neighbors {
		d = max(d, n.PropagationDelay)
	}
	return d
}

// EffectiveOverrideInterval is the largest override interval on the LAN
// when LAN delay is enabled, else the default (section 4.3.3).
func (i *Interface) EffectiveOverrideInterval() time.Duration {
	if !i.LANDelayEnabled() {
		return 2500 * time.Millisecond
	}
	d := i.cfg.OverrideInterval
	for _, n := range i.neighbors {
		d = max(d, n.OverrideInterval)
	}
	return d
}

// SuppressionEnabled is false only when LAN delay is enabled and every
// router on the LAN, this one included, sets the T bit (section 4.3.3).
func (i *Interface) SuppressionEnabled() bool {
	if !i.LANDelayEnabled() || !i.cfg.TrackingSupport {
		return true
	}
	for _, n := range i.neighbors {
		if !n.Tracking {
			return true
		}
	}
	return false
}

// JPOverrideInterval is the time a router waits for a join overriding a
// prune before acting on the prune (section 4.5.3).
func (i *Interface) JPOverrideInterval() time.Duration {
	return i.EffectivePropagationDelay() + i.EffectiveOverrideInterval()
}
