package pim

import (
	"net/netip"
	"slices"
	"time"

	wire "overcast/internal/packet/pim"
)

// Admission (RFC 7761 sections 4.3, 4.5, 6.1 and 6.2, security). Every
// message is checked here before it can touch state; a message refused
// is counted under its reason, per interface and router-wide, and
// changes nothing.

// Reason is why a message (or the state it asked for) was refused.
type Reason int

const (
	NotNeighbor         Reason = iota // a Join/Prune or Assert from an address that sent no Hello on that interface
	HelloOffSubnet                    // a Hello from an address outside the interface's subnets
	NeighborFiltered                  // a Hello from an address the interface's neighbor-filter does not list
	NeighborLimit                     // a Hello from a new neighbour with the interface's neighbours at their limit
	RegisterFiltered                  // a Register whose sender or inner source the register filter does not list
	RegisterBadInner                  // a Register whose inner packet is not a unicast source to a routable group
	RegisterSSM                       // a Register for a group in the SSM range (no RP there, RFC 4607)
	RegisterRate                      // a Register beyond its sender's rate
	RegisterStopNotRP                 // a Register-Stop from an address that is not the group's RP
	StateLimit                        // a join or Register refused: the router's (S,G)/(*,G) state is at its limit
	InterfaceStateLimit               // a join refused: the state joins on this interface created is at its limit
	RegisterStateLimit                // a Register refused: the sources registered at this RP are at their limit
	numReasons
)

var reasonNames = [numReasons]string{
	"not-neighbor", "hello-off-subnet", "neighbor-filtered", "neighbor-limit",
	"register-filtered", "register-bad-inner", "register-ssm", "register-rate",
	"register-stop-not-rp", "state-limit", "interface-state-limit", "register-state-limit",
}

func (r Reason) String() string {
	if r < 0 || r >= numReasons {
		return "unknown"
	}
	return reasonNames[r]
}

// Reasons lists every reason, in order (views print them all).
func Reasons() []Reason {
	out := make([]Reason, numReasons)
	for i := range out {
		out[i] = Reason(i)
	}
	return out
}

// Drops counts refusals by reason.
type Drops [numReasons]uint64

// Total is the sum over reasons.
func (d Drops) Total() uint64 {
	var t uint64
	for _, n := range d {
		t += n
	}
	return t
}

// Limits bound the state hostile or broken peers can make. Zero fields
// take the defaults; a negative one means no limit.
type Limits struct {
	Entries          int // (S,G) and (*,G) entries in all; 100,000
	InterfaceEntries int // entries created by joins received on one interface; 50,000
	RegisterSources  int // (S,G) entries created by Registers at this RP; 20,000
	Neighbors        int // neighbours per interface; 128
	// RegisterRate is how many Registers per second one sender (a DR's
	// address) may send, in a burst of the same size; 5,000.
	RegisterRate int
}

// WithDefaults fills unset limits.
func (l Limits) WithDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.Entries, 100_000)
	def(&l.InterfaceEntries, 50_000)
	def(&l.RegisterSources, 20_000)
	def(&l.Neighbors, 128)
	def(&l.RegisterRate, 5_000)
	return l
}

func under(n, limit int) bool { return limit < 0 || n < limit }

// Drops is what the router refused on an interface ("" for unicast
// messages that arrived on no PIM interface).
func (r *Router) Drops(iface string) Drops { return r.drops[iface] }

// TotalDrops is what the router refused, by reason, on every interface.
func (r *Router) TotalDrops() Drops {
	var t Drops
	for _, d := range r.drops {
		for i, n := range d {
			t[i] += n
		}
	}
	return t
}

func (r *Router) refuse(iface string, why Reason) {
	if r.drops == nil {
		r.drops = map[string]Drops{}
	}
	d := r.drops[iface]
	d[why]++
	r.drops[iface] = d
}

// admit decides whether a message may be processed at all.
func (r *Router) admit(now time.Time, iface string, src, dst netip.Addr, m wire.Message) (Reason, bool) {
	i := r.ifaces[iface]
	switch m := m.(type) {
	case *wire.Hello:
		if i == nil {
			return 0, true // ignored below
		}
		if !i.onSubnet(src) {
			return HelloOffSubnet, false
		}
		if len(i.cfg.NeighborFilter) > 0 && !containsAddr(i.cfg.NeighborFilter, src) {
			return NeighborFiltered, false
		}
		if i.neighbors[src] == nil && m.Holdtime != 0 && !under(len(i.neighbors), r.cfg.Limits.Neighbors) {
			return NeighborLimit, false
		}
	case *wire.JoinPrune, *wire.Assert:
		if i == nil {
			return 0, true
		}
		if i.Neighbor(src) == nil {
			return NotNeighbor, false
		}
	case *wire.Register:
		return r.admitRegister(now, src, m)
	case *wire.RegisterStop:
		g := m.Group.Prefix.Addr()
		rp, ok := r.RP(g)
		if !ok || (src != rp && !slices.Contains(r.cfg.AnycastRP[rp], src)) {
			return RegisterStopNotRP, false
		}
	}
	return 0, true
}

var (
	linkLocalGroups = netip.MustParsePrefix("224.0.0.0/24")
	martians        = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("224.0.0.0/3"), // multicast and class E, broadcast
	}
)

// ValidInner says whether a Register's inner packet names a source that
// can really send (unicast, not a martian) to a group that can be routed
// (multicast, not link-local).
func ValidInner(s, g netip.Addr) bool {
	if !s.Is4() || !g.Is4() || !g.IsMulticast() || linkLocalGroups.Contains(g) {
		return false
	}
	return !containsAddr(martians, s)
}

func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (r *Router) admitRegister(now time.Time, src netip.Addr, m *wire.Register) (Reason, bool) {
	s, g := m.InnerSourceGroup()
	if !ValidInner(s, g) {
		return RegisterBadInner, false
	}
	if r.cfg.RPs.IsSSM(g) {
		return RegisterSSM, false
	}
	if f := r.cfg.RegisterFrom; len(f) > 0 && !containsAddr(f, src) {
		return RegisterFiltered, false
	}
	if f := r.cfg.RegisterSources; len(f) > 0 && !containsAddr(f, s) {
		return RegisterFiltered, false
	}
	if !r.regRate.allow(src, now, r.cfg.Limits.RegisterRate) {
		return RegisterRate, false
	}
	return 0, true
}

// rateBuckets is a token bucket per Register sender. The map is bounded:
// past maxSenders, every further sender shares one bucket, so spoofed
// sender addresses cannot grow it.
type rateBuckets struct {
	m      map[netip.Addr]*bucket
	shared bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

const maxSenders = 4096

func (rb *rateBuckets) allow(src netip.Addr, now time.Time, rate int) bool {
	if rate < 0 {
		return true
	}
	if rb.m == nil {
		rb.m = map[netip.Addr]*bucket{}
	}
	b := rb.m[src]
	if b == nil {
		if len(rb.m) >= maxSenders {
			// Forget senders idle for a second or more (full again) first.
			for a, x := range rb.m {
				if now.Sub(x.at) >= time.Second {
					delete(rb.m, a)
				}
			}
		}
		if len(rb.m) >= maxSenders {
			b = &rb.shared
		} else {
			b = &bucket{tokens: float64(rate), at: now}
			rb.m[src] = b
		}
	}
	if el := now.Sub(b.at).Seconds(); el > 0 {
		b.tokens = min(float64(rate), b.tokens+el*float64(rate))
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// onSubnet says whether src is on one of the interface's subnets. An
// interface with no subnets known, or only host routes (a point-to-point
// link), accepts any source.
func (i *Interface) onSubnet(src netip.Addr) bool {
	checked := false
	for _, p := range i.cfg.Subnets {
		if p.Bits() >= 31 {
			continue
		}
		checked = true
		if p.Contains(src) {
			return true
		}
	}
	return !checked
}

// Origins of state, for the limits: what made an entry.
const (
	byData     = iota // a packet (upcall) or local membership
	byJoin            // a Join/Prune received on e.origin's interface
	byRegister        // a Register at this RP
)

// mayCreate says whether a new entry may be made by a join on iface (or
// a Register when iface is ""), counting the refusal when not.
func (r *Router) mayCreate(k SG, how int, iface string) bool {
	if r.entries[k] != nil {
		return true
	}
	l := r.cfg.Limits
	switch {
	case !under(len(r.entries), l.Entries):
		r.refuse(iface, StateLimit)
	case how == byJoin && !under(r.created[iface], l.InterfaceEntries):
		r.refuse(iface, InterfaceStateLimit)
	case how == byRegister && !under(r.created[registerOrigin], l.RegisterSources):
		r.refuse(iface, RegisterStateLimit)
	default:
		return true
	}
	return false
}

// registerOrigin keys the count of Register-made entries in Router.created
// (no interface has this name: names with a space are not valid).
const registerOrigin = " register"

// ensureBy is ensure for state a join on iface or a Register made: the
// entry remembers it, and its origin's count goes up until it is forgotten.
func (r *Router) ensureBy(now time.Time, k SG, how int, iface string) *entry {
	if e := r.entries[k]; e != nil {
		return e
	}
	e := r.ensure(now, k)
	switch how {
	case byJoin:
		e.origin = iface
	case byRegister:
		e.origin = registerOrigin
	default:
		return e
	}
	if r.created == nil {
		r.created = map[string]int{}
	}
	r.created[e.origin]++
	return e
}

// Joins that arrive before their sender's Hello. A router that has just
// started (or restarted: its neighbours see a new generation ID and send
// their joins at once, their Hellos within Triggered_Hello_Delay), or a
// link that comes back (each side sends its joins when it hears the
// other's Hello, which may reach it before its own Hello reaches the
// other), would otherwise refuse them and go without them until the next
// periodic Join/Prune, a minute later. A Join/Prune from an on-subnet
// address that is not yet a neighbour is held for HoldNewNeighbor, a few
// per sender and a bounded number of senders, and taken when that
// sender's Hello makes it a neighbour. It counts as refused
// (not-neighbor) when it comes, whatever follows; one whose Hello never
// comes is dropped when it expires.

// HoldNewNeighbor is how long a join from a sender not yet a neighbour
// is held for its Hello.
const HoldNewNeighbor = 10 * time.Second

const (
	maxHeldPerSender = 8
	maxHeldSenders   = 256
)

type heldKey struct {
	iface string
	src   netip.Addr
}

type heldMsg struct {
	dst netip.Addr
	m   wire.Message
	at  time.Time
}

// hold keeps a Join/Prune from a sender not yet a neighbour, when the
// interface came up lately; false: refuse it as usual.
func (r *Router) hold(now time.Time, iface string, src, dst netip.Addr, m wire.Message) bool {
	i := r.ifaces[iface]
	if _, jp := m.(*wire.JoinPrune); !jp || i == nil || !i.onSubnet(src) {
		return false
	}
	r.expireHeld(now)
	k := heldKey{iface, src}
	if r.held == nil {
		r.held = map[heldKey][]heldMsg{}
	}
	if hs, ok := r.held[k]; (!ok && len(r.held) >= maxHeldSenders) || len(hs) >= maxHeldPerSender {
		return false
	}
	r.held[k] = append(r.held[k], heldMsg{dst: dst, m: m, at: now})
	return true
}

// takeHeld returns (and forgets) the joins held for a sender that has
// just become a neighbour.
func (r *Router) takeHeld(now time.Time, iface string, src netip.Addr) []heldMsg {
	r.expireHeld(now)
	k := heldKey{iface, src}
	hs := r.held[k]
	delete(r.held, k)
	return hs
}

// expireHeld drops the held joins whose Hello did not come in time.
func (r *Router) expireHeld(now time.Time) {
	for k, hs := range r.held {
		kept := hs[:0]
		for _, h := range hs {
			if now.Sub(h.at) < HoldNewNeighbor {
				kept = append(kept, h)
			}
		}
		if len(kept) == 0 {
			delete(r.held, k)
		} else {
			r.held[k] = kept
		}
	}
}

// Held is how many joins are held for senders not yet neighbours.
func (r *Router) Held() int {
	n := 0
	for _, hs := range r.held {
		n += len(hs)
	}
	return n
}
