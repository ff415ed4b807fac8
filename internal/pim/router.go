package pim

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	wire "overcast/internal/packet/pim"
)

// RegisterVIF names the register pseudo-interface in routes: an (S,G)
// whose outgoing list holds it is encapsulated to the RP (first hop), and
// an (S,G) whose input is it arrives decapsulated (at the RP).
const RegisterVIF = "pimreg"

// RPF is the unicast routing answer for an address: the interface toward
// it and the next-hop neighbour (invalid when directly connected).
type RPF struct {
	Iface      string
	Neighbor   netip.Addr
	Preference uint32 // administrative distance, for asserts
	Metric     uint32
	Protocol   string // who installed the route: connected, kernel, static, ospf, bgp, ...
	Table      string // which table decided: "mbgp" or "unicast"
	Prefix     netip.Prefix
}

// Routing answers unicast route lookups (the kernel's table via netlink
// in the daemon, a table in tests and simulations).
type Routing interface {
	Lookup(dst netip.Addr) (RPF, bool)
}

// SPTThreshold says when a last-hop router moves a source of a group from
// the shared tree to the shortest-path tree. The zero value switches on
// the first packet (the default).
type SPTThreshold struct {
	Never   bool   // infinity: stay on the shared tree
	Packets uint64 // after this many packets of the source on the shared tree
	Kbps    uint64 // once the source's rate on the shared tree exceeds this
}

func (t SPTThreshold) String() string {
	switch {
	case t.Never:
		return "infinity"
	case t.Packets > 0:
		return fmt.Sprintf("%d packets", t.Packets)
	case t.Kbps > 0:
		return fmt.Sprintf("%d kbps", t.Kbps)
	}
	return "immediate"
}

func (t SPTThreshold) immediate() bool { return !t.Never && t.Packets == 0 && t.Kbps == 0 }

// SPTPolicy gives the SPT threshold of a group.
type SPTPolicy func(g netip.Addr) SPTThreshold

// Config is the router-wide PIM configuration (RFC 7761 section 4.11).
type Config struct {
	RPs                 *RPSet
	JoinPruneInterval   time.Duration // t_periodic, 60 s
	JoinPruneHoldtime   time.Duration // 3.5 x t_periodic = 210 s
	KeepalivePeriod     time.Duration // 210 s
	RegisterSuppression time.Duration // 60 s
	RegisterProbe       time.Duration // 5 s
	SwitchToSPT         SPTPolicy     // nil: switch on the first packet (the default)
	// SPTSwitchGuard delays moving a flow's input to the shortest-path
	// tree after its first packet arrives there, so the copy of that
	// packet still travelling down the shared tree (or inside a Register)
	// is forwarded, not lost. The daemon normally switches earlier, the
	// moment it sees that copy forwarded (CompleteSPTSwitch); the guard is
	// the fallback when no copy comes.
	SPTSwitchGuard time.Duration // 2 ms when 0; negative for none
	MTU            int           // largest PIM message; 1480 when 0
	AssertTime     time.Duration // how long assert state lasts; 180 s
	// AnycastRP lists, per anycast RP address, the unique addresses of
	// every RP sharing it (RFC 4610): an RP forwards the Registers it gets
	// from DRs to the others, from its own unique address.
	AnycastRP map[netip.Addr][]netip.Addr
	// RegisterStopHold keeps an RP taking a new source's Registers (no
	// Register-Stop) for this long even without receivers of its own:
	// receivers elsewhere (an MSDP peer's domain) may join meanwhile, and
	// until their joins reach the source the Registers are the only path.
	RegisterStopHold time.Duration
	// RegisterFrom and RegisterSources are the register filter: when set,
	// the RP takes Registers only from senders (DRs) in RegisterFrom and
	// for inner sources in RegisterSources; the others are dropped and
	// counted (RegisterFiltered).
	RegisterFrom    []netip.Prefix
	RegisterSources []netip.Prefix
	// Limits bound the state peers can create (admit.go).
	Limits Limits
	// CheckTimers makes NextDeadline verify its cached answer against a
	// scan of every timer and panic if a timer would fire late (tests and
	// simulations; slow).
	CheckTimers bool
}

// WithDefaults fills unset fields with the RFC 7761 defaults.
func (c Config) WithDefaults() Config {
	if c.JoinPruneInterval == 0 {
		c.JoinPruneInterval = 60 * time.Second
	}
	if c.JoinPruneHoldtime == 0 {
		c.JoinPruneHoldtime = c.JoinPruneInterval * 7 / 2
	}
	if c.KeepalivePeriod == 0 {
		c.KeepalivePeriod = 210 * time.Second
	}
	if c.RegisterSuppression == 0 {
		c.RegisterSuppression = 60 * time.Second
	}
	if c.RegisterProbe == 0 {
		c.RegisterProbe = 5 * time.Second
	}
	if c.MTU == 0 {
		c.MTU = 1480
	}
	if c.AssertTime == 0 {
		c.AssertTime = 180 * time.Second
	}
	if c.SPTSwitchGuard == 0 {
		c.SPTSwitchGuard = 2 * time.Millisecond
	}
	if c.RPs == nil {
		c.RPs, _ = NewRPSet(nil, []netip.Prefix{DefaultSSMRange})
	}
	c.Limits = c.Limits.WithDefaults()
	return c
}

// SG names tree state: (S,G), or (*,G) when S is invalid.
type SG struct{ S, G netip.Addr }

func (k SG) String() string {
	if !k.S.IsValid() {
		return "(*," + k.G.String() + ")"
	}
	return "(" + k.S.String() + "," + k.G.String() + ")"
}

// DownState is a downstream per-interface join/prune state (4.5.2, 4.5.3).
type DownState int

const (
	NoInfo DownState = iota
	Join
	PrunePending
	Pruned // (S,G,rpt) only (4.5.4)
)

func (s DownState) String() string {
	return [...]string{"NoInfo", "Join", "PrunePending", "Pruned"}[s]
}

type downstream struct {
	iface  string
	state  DownState
	expiry time.Time // ET
	ppt    time.Time // prune-pending timer; zero when not running
	since  time.Time
}

// downs is an entry's downstream state, one per interface. A short slice:
// an entry has one or two downstream interfaces, and at 10,000 entries a
// map each cost three times the memory.
type downs []*downstream

func (ds downs) get(iface string) *downstream {
	for _, d := range ds {
		if d.iface == iface {
			return d
		}
	}
	return nil
}

// add returns the interface's state, created NoInfo when missing.
func (ds *downs) add(iface string, now time.Time) *downstream {
	if d := ds.get(iface); d != nil {
		return d
	}
	d := &downstream{iface: iface, since: now}
	*ds = append(*ds, d)
	return d
}

func (ds *downs) del(iface string) {
	ds.deleteIf(func(d *downstream) bool { return d.iface == iface })
}

func (ds *downs) deleteIf(f func(*downstream) bool) {
	*ds = slices.DeleteFunc(*ds, f)
	if len(*ds) == 0 {
		*ds = nil
	}
}

// RegState is the first-hop DR's register state (4.4.1).
type RegState int

const (
	RegNoInfo RegState = iota
	RegJoin
	RegJoinPending
	RegPrune
)

func (s RegState) String() string { return [...]string{"NoInfo", "Join", "JoinPending", "Prune"}[s] }

// entry is (*,G) or (S,G) tree state.
type entry struct {
	key     SG
	created time.Time
	origin  string // the interface whose join made it, registerOrigin, or "" (limits)
	down    downs  // joins received per interface
	rptDown downs  // (S,G,rpt) prunes received per interface

	// Upstream.
	joined     bool       // upstream state Joined
	upIface    string     // RPF interface used for the last join
	upNbr      netip.Addr // RPF' used for the last join
	lan        *lanTimers // nil until another router on our upstream LAN joins or prunes this state
	rptPruned  bool       // (S,G,rpt) upstream: Pruned
	sptBit     bool
	sptPending time.Time  // the SPT bit is set at this time (see SPTSwitchGuard)
	regs       *registers // RP: the source's Registers; nil until one arrives
	kat        time.Time  // keepalive expiry; zero when not running
	reg        RegState
	rst        time.Time // register-stop timer

	asserts map[string]*assertInfo // per interface; nil until an assert
	traffic *traffic               // SPT threshold accounting; nil until measured
}

// Parts of an entry that few entries need live behind pointers: at 10,000
// entries every field costs.

// registers is what the RP tracks of a source's Registers to switch from
// them to native packets without losing or duplicating one.
type registers struct {
	firstNativeID int       // IP ID of the first native packet, -1 unknown
	lastID        int       // IP ID inside the latest Register, -1 none
	lastAt        time.Time // when the latest data Register arrived
	stopAt        time.Time // when this RP last sent the source's DR a Register-Stop
}

// registers returns the entry's register tracking, made on first use.
func (e *entry) registers() *registers {
	if e.regs == nil {
		e.regs = &registers{firstNativeID: -1, lastID: -1}
	}
	return e.regs
}

// lastRegisterAt is when the latest data Register arrived (zero: never).
func (e *entry) lastRegisterAt() time.Time {
	if e.regs == nil {
		return time.Time{}
	}
	return e.regs.lastAt
}

// lanTimers are the upstream timers other routers on our upstream LAN
// move (4.5.7): their prune makes us send an overriding join within the
// override interval, their join suppresses our periodic one.
type lanTimers struct {
	override   time.Time // a triggered join is due (someone pruned)
	suppressed time.Time // periodic joins suppressed until then (someone joined)
}

func (e *entry) lanTimers() *lanTimers {
	if e.lan == nil {
		e.lan = &lanTimers{}
	}
	return e.lan
}

// traffic is an (S,G)'s accounting against a packet or rate SPT threshold
// (Traffic): kernel counters at the start of the current window, the last
// measured rate, and whether the threshold has been crossed.
type traffic struct {
	winPkts, winBytes uint64
	winAt             time.Time
	rateKbps          uint64
	sptWanted         bool
	at                time.Time // last Traffic call with moving counters
}

func (e *entry) measure() *traffic {
	if e.traffic == nil {
		e.traffic = &traffic{}
	}
	return e.traffic
}

func (e *entry) sptWanted() bool { return e.traffic != nil && e.traffic.sptWanted }

// Send is a packet to transmit: on an interface to ALL-PIM-ROUTERS (or a
// neighbour), or routed by unicast when Iface is empty.
type Send struct {
	Iface string
	Dst   netip.Addr
	Msg   wire.Message
	Src   netip.Addr // the source address to send from; zero: the kernel's choice
}

// Result is what a call wants done: packets, neighbour events, and the
// flows whose forwarding may have changed (re-read them with Route).
type Result struct {
	Sends   []Send
	Events  []IfEvent
	Changed []SG
}

// merge appends another result's sends, events and changes.
func (res *Result) merge(o Result) {
	res.Sends = append(res.Sends, o.Sends...)
	res.Events = append(res.Events, o.Events...)
	res.Changed = append(res.Changed, o.Changed...)
}

// IfEvent is a neighbour or DR change on a named interface.
type IfEvent struct {
	Iface string
	Event
}

// Router is one router's PIM-SM state. It is not safe for concurrent use:
// the daemon's event loop owns it.
type Router struct {
	cfg    Config
	rt     Routing
	jitter func(time.Duration) time.Duration
	ifaces map[string]*Interface
	addrs  map[netip.Addr]bool // all local addresses (RP check, register)

	anycastForwarded uint64                // Registers copied to the other anycast RPs
	held             map[heldKey][]heldMsg // joins from senders not yet neighbours (admit.go)
	entries          map[SG]*entry
	byGroup          map[netip.Addr][]*entry // the entries of each group (usually one or two)
	members          map[string]map[SG]bool  // local receivers: (*,G) include or (S,G) include per interface
	excludes         map[string]map[SG]bool  // local receivers excluding S from (*,G)
	nbrTimer         map[upKey]time.Time     // periodic join/prune per upstream neighbour

	res     Result
	pending map[upKey]*jpBuild
	next    time.Time // NextDeadline's answer, valid until the next flush
	nextOK  bool
	dl      deadlines // per-group earliest timers (deadline.go)
	deferJP bool      // keep join/prune entries until FlushJoinPrunes

	drops   map[string]Drops // refusals per interface (admit.go)
	created map[string]int   // entries made by joins per interface, and by Registers
	regRate rateBuckets      // Registers per sender
}

type upKey struct {
	iface string
	nbr   netip.Addr
}

type jpBuild struct {
	groups map[netip.Addr]*wire.GroupSet
	order  []netip.Addr
}

// NewRouter makes a router. jitter supplies random delays in [0, max).
func NewRouter(cfg Config, rt Routing, jitter func(time.Duration) time.Duration) *Router {
	return &Router{cfg: cfg.WithDefaults(), rt: rt, jitter: jitter, ifaces: map[string]*Interface{},
		addrs: map[netip.Addr]bool{}, entries: map[SG]*entry{}, byGroup: map[netip.Addr][]*entry{}, members: map[string]map[SG]bool{},
		excludes: map[string]map[SG]bool{}, nbrTimer: map[upKey]time.Time{}}
}

// Config returns the router's configuration.
func (r *Router) Config() Config { return r.cfg }

// SetRPs replaces the RP set (a reload). Every entry is re-checked at
// once: (*,G) joins go to the new RP's RPF neighbour and prunes to the
// old one in the same result.
func (r *Router) SetRPs(now time.Time, rps *RPSet) Result {
	r.cfg.RPs = rps
	r.nextOK = false
	r.reconcile(now)
	return r.flush()
}

// Reconfigure replaces the router-wide configuration (a reload): RP set,
// SSM ranges, SPT thresholds, timers. Entries are re-checked at once;
// timers already running keep their deadline and later ones use the new
// periods.
func (r *Router) Reconfigure(now time.Time, cfg Config) Result {
	check := r.cfg.CheckTimers
	r.cfg = cfg.WithDefaults()
	r.cfg.CheckTimers = r.cfg.CheckTimers || check
	r.nextOK = false
	r.reconcile(now)
	return r.flush()
}

// ReconfigureInterface changes an interface's hello settings (DR
// priority, hello period) and keeps its neighbours and generation ID: a
// hello with the new values goes out at once and the DR is re-elected.
func (r *Router) ReconfigureInterface(now time.Time, name string, cfg IfConfig) Result {
	i := r.ifaces[name]
	if i == nil {
		return Result{}
	}
	var out Output
	i.cfg = cfg.WithDefaults()
	i.electDR(&out)
	i.sendHello(now, &out)
	r.absorb(name, out)
	r.nextOK = false
	r.reconcile(now)
	return r.flush()
}

// IsLocal says whether a is one of this router's addresses.
func (r *Router) IsLocal(a netip.Addr) bool { return r.addrs[a] }

// AddInterface enables PIM on an interface and returns its first hello.
func (r *Router) AddInterface(now time.Time, name string, cfg IfConfig, addr netip.Addr, secondary []netip.Addr, genID uint32) Result {
	i, out := NewInterface(cfg, addr, secondary, genID, r.jitter, now)
	r.ifaces[name] = i
	r.addrs[addr] = true
	for _, a := range secondary {
		r.addrs[a] = true
	}
	r.absorb(name, out)
	r.reconcile(now)
	return r.flush()
}

// AddLocalAddress records an address of this router that is not on a PIM
// interface (the RP address on a loopback).
func (r *Router) AddLocalAddress(a netip.Addr) { r.addrs[a] = true }

// RemoveInterface disables PIM on an interface, with a goodbye hello.
func (r *Router) RemoveInterface(now time.Time, name string) Result {
	i := r.ifaces[name]
	if i == nil {
		return Result{}
	}
	r.absorb(name, i.Shutdown())
	delete(r.ifaces, name)
	for _, e := range r.entries {
		e.down.del(name)
		e.rptDown.del(name)
	}
	delete(r.members, name)
	delete(r.excludes, name)
	r.reconcile(now)
	return r.flush()
}

// Interface returns the hello state of an interface.
func (r *Router) Interface(name string) *Interface { return r.ifaces[name] }

// InterfaceNames lists PIM interfaces.
func (r *Router) InterfaceNames() []string {
	var out []string
	for n := range r.ifaces {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (r *Router) absorb(iface string, out Output) {
	for _, p := range out.Packets {
		r.res.Sends = append(r.res.Sends, Send{Iface: iface, Dst: p.Dst, Msg: p.Msg})
	}
	for _, e := range out.Events {
		r.res.Events = append(r.res.Events, IfEvent{Iface: iface, Event: e})
	}
}

// --- Local membership (from IGMP) -------------------------------------

// SetMembership tells the router what local receivers on an interface
// want for group g: all sources except exclude (asm true), or only the
// include sources. It is the local_receiver_include/exclude of RFC 7761
// section 4.1.6, fed from IGMP.
func (r *Router) SetMembership(now time.Time, iface string, g netip.Addr, asm bool, include, exclude []netip.Addr) Result {
	if !g.IsMulticast() || linkLocal.Contains(g) {
		return Result{} // never routed (224.0.0.0/24)
	}
	if r.members[iface] == nil {
		r.members[iface] = map[SG]bool{}
		r.excludes[iface] = map[SG]bool{}
	}
	for _, e := range r.byGroup[g] {
		delete(r.members[iface], e.key) // members always have entries (ensure below)
	}
	for k := range r.excludes[iface] {
		if k.G == g {
			delete(r.excludes[iface], k)
		}
	}
	if asm {
		r.members[iface][SG{G: g}] = true
		for _, s := range exclude {
			r.excludes[iface][SG{S: s, G: g}] = true
		}
	}
	for _, s := range include {
		r.members[iface][SG{S: s, G: g}] = true
	}
	if asm && r.cfg.RPs.IsSSM(g) {
		r.res.Events = append(r.res.Events, IfEvent{Iface: iface, Event: Event{Kind: ASMJoinInSSMRange, Addr: g}})
	}
	if asm && r.mayCreate(SG{G: g}, byData, iface) {
		r.ensure(now, SG{G: g})
	}
	for _, s := range include {
		if r.mayCreate(SG{S: s, G: g}, byData, iface) {
			r.ensure(now, SG{S: s, G: g})
		}
	}
	r.reconcileGroups(now, map[netip.Addr]bool{g: true})
	return r.flush()
}

var linkLocal = netip.MustParsePrefix("224.0.0.0/24")

// ASMJoinInSSMRange reports a (*,G) membership for a group in the SSM
// range: routers must ignore it, and operators must hear about it.
const ASMJoinInSSMRange EventKind = 100

func (r *Router) ensure(now time.Time, k SG) *entry {
	e := r.entries[k]
	if e == nil {
		e = &entry{key: k, created: now} // maps made on first use
		r.entries[k] = e
		r.markDirty(k)
		r.byGroup[k.G] = append(r.byGroup[k.G], e)
	}
	return e
}

// --- Reconcile: apply JoinDesired/PruneDesired/CouldRegister changes --

func (r *Router) reconcile(now time.Time) { r.reconcileGroups(now, nil) }

// reconcileGroups re-evaluates the entries of the given groups (all when
// nil): events about one group need not walk thousands of others.
func (r *Router) reconcileGroups(now time.Time, groups map[netip.Addr]bool) {
	r.reconcileScope(now, groups, nil)
}

// reconcileKey re-evaluates one entry: an event about one (S,G) (its
// data, its Register, its (S,G) join or assert) changes no other, so
// 20,000 sources in a group cost one entry each, not the group each.
// A (*,G) key re-evaluates the whole group: every (S,G) inherits from it.
func (r *Router) reconcileKey(now time.Time, k SG) {
	if !k.S.IsValid() {
		r.reconcileGroups(now, map[netip.Addr]bool{k.G: true})
		return
	}
	r.reconcileScope(now, map[netip.Addr]bool{}, []SG{k})
}

// reconcileScope re-evaluates the entries of whole groups (every entry
// when groups is nil) and single entries.
func (r *Router) reconcileScope(now time.Time, groups map[netip.Addr]bool, single []SG) {
	var keys []SG
	if groups == nil {
		r.dl.all = true
		keys = make([]SG, 0, len(r.entries))
		for k := range r.entries {
			keys = append(keys, k)
		}
	} else {
		for g := range groups {
			for _, e := range r.byGroup[g] {
				r.markDirty(e.key)
				keys = append(keys, e.key)
			}
		}
		for _, k := range single {
			if r.entries[k] != nil && !groups[k.G] && !slices.Contains(keys, k) {
				r.markDirty(k)
				keys = append(keys, k)
			}
		}
	}
	// (*,G) before (S,G) so prunes can ride on the (*,G) joins built first.
	slices.SortFunc(keys, func(a, b SG) int {
		if a.S.IsValid() != b.S.IsValid() {
			if !a.S.IsValid() {
				return -1
			}
			return 1
		}
		if c := a.G.Compare(b.G); c != 0 {
			return c
		}
		return a.S.Compare(b.S)
	})
	for _, k := range keys {
		e := r.entries[k]
		r.reconcileUpstream(e, now)
		if k.S.IsValid() {
			r.reconcileRPT(e, now)
			r.reconcileRegister(e, now)
		}
		if e.asserts != nil {
			r.reconcileAssert(e, now)
		}
		if k.S.IsValid() {
			r.assertOnSPTSwitch(e, now)
		}
		r.markChanged(e)
	}
	// Forget state nobody needs.
	for _, k := range keys {
		e := r.entries[k]
		if !e.joined && !e.rptPruned && len(e.down) == 0 && len(e.rptDown) == 0 && !r.katRunning(e, now) &&
			!r.wanted(k) && e.reg == RegNoInfo && len(e.asserts) == 0 && !r.counting(e, now) {
			r.forget(k)
			r.res.Changed = append(r.res.Changed, k)
		}
	}
}

func (r *Router) forget(k SG) {
	r.markDirty(k)
	if e := r.entries[k]; e != nil && e.origin != "" {
		if r.created[e.origin]--; r.created[e.origin] <= 0 {
			delete(r.created, e.origin)
		}
	}
	delete(r.entries, k)
	ks := r.byGroup[k.G]
	if i := slices.IndexFunc(ks, func(e *entry) bool { return e.key == k }); i >= 0 {
		ks[i] = ks[len(ks)-1]
		ks[len(ks)-1] = nil
		ks = ks[:len(ks)-1]
	}
	if len(ks) == 0 {
		delete(r.byGroup, k.G)
	} else {
		r.byGroup[k.G] = ks
	}
}

// groupEntries lists the entries of one group.
func (r *Router) groupEntries(g netip.Addr) []*entry {
	return slices.Clone(r.byGroup[g]) // callers may forget entries as they go
}

func (r *Router) wanted(k SG) bool {
	for _, m := range r.members {
		if m[k] {
			return true
		}
	}
	return false
}

func (r *Router) reconcileUpstream(e *entry, now time.Time) {
	want := r.joinDesired(e, now)
	up, ok := r.upstream(e.key)
	switch {
	case want && !e.joined:
		if ok {
			e.joined, e.upIface, e.upNbr = true, up.iface, up.nbr
			r.queue(up, e.key, true, false, now)
			if e.key.S.IsValid() && r.IAmRP(e.key.G) && !e.sptBit && r.registersStopped(e, now) {
				// The RP joins a source whose Registers have stopped (or
				// that it told to stop): the first packet will come
				// natively, so expect it there rather than drop it as
				// arriving on the wrong interface.
				e.sptBit = true
			}
		}
	case !want && e.joined:
		r.queue(upKey{e.upIface, e.upNbr}, e.key, false, false, now)
		e.joined, e.lan = false, nil
	case want && e.joined && ok && (up.iface != e.upIface || up.nbr != e.upNbr):
		// RPF'(k) changed: join the new path, prune the old (4.5.6, 4.5.7).
		r.queue(upKey{e.upIface, e.upNbr}, e.key, false, false, now)
		e.upIface, e.upNbr, e.lan = up.iface, up.nbr, nil
		r.queue(up, e.key, true, false, now)
	}
}

// reconcileRPT runs the upstream (S,G,rpt) machine (4.5.8): prune S off
// the shared tree when it arrives by the SPT or nobody wants it from the RPT.
func (r *Router) reconcileRPT(e *entry, now time.Time) {
	want := r.pruneDesiredRPT(e, now)
	star, ok := r.upstream(SG{G: e.key.G})
	switch {
	case want && !e.rptPruned && ok:
		e.rptPruned = true
		r.queue(star, e.key, false, true, now)
	case !want && e.rptPruned:
		e.rptPruned = false
		if ok && r.rptJoinDesired(e.key.G, now) {
			r.queue(star, e.key, true, true, now) // Join(S,G,rpt) undoes the prune
		}
	}
}

// reconcileRegister runs the DR's register machine (4.4.1).
func (r *Router) reconcileRegister(e *entry, now time.Time) {
	could := r.couldRegister(e, now)
	switch {
	case could && e.reg == RegNoInfo:
		e.reg = RegJoin
	case !could && e.reg != RegNoInfo:
		e.reg, e.rst = RegNoInfo, time.Time{}
	}
}

func (r *Router) markChanged(e *entry) {
	r.res.Changed = append(r.res.Changed, e.key)
}

// queue adds an entry to the join/prune message being built for an
// upstream neighbour. rpt marks (S,G,rpt) entries.
func (r *Router) queue(up upKey, k SG, join, rpt bool, now time.Time) {
	if up.iface == "" || !up.nbr.IsValid() {
		return // no upstream router (directly connected source, or we are the RP)
	}
	if r.pending == nil {
		r.pending = map[upKey]*jpBuild{}
	}
	b := r.pending[up]
	if b == nil {
		b = &jpBuild{groups: map[netip.Addr]*wire.GroupSet{}}
		r.pending[up] = b
	}
	gs := b.groups[k.G]
	if gs == nil {
		gs = &wire.GroupSet{Group: wire.GroupPrefix(k.G)}
		b.groups[k.G] = gs
		b.order = append(b.order, k.G)
	}
	src := wire.Source{Addr: k.S, MaskLen: 32, Sparse: true}
	if !k.S.IsValid() {
		rp, _ := r.RP(k.G)
		src = wire.Source{Addr: rp, MaskLen: 32, Sparse: true, WC: true, RPT: true}
	} else if rpt {
		src.RPT = true
	}
	// Replace an earlier opposite decision for the same entry in this message.
	gs.Joins = slices.DeleteFunc(gs.Joins, func(s wire.Source) bool { return s == src })
	gs.Prunes = slices.DeleteFunc(gs.Prunes, func(s wire.Source) bool { return s == src })
	if join {
		gs.Joins = append(gs.Joins, src)
	} else {
		gs.Prunes = append(gs.Prunes, src)
	}
	if _, ok := r.nbrTimer[up]; !ok && join {
		r.nbrTimer[up] = now.Add(r.cfg.JoinPruneInterval)
	}
}

// DeferJoinPrunes makes the router keep triggered join/prune entries
// until FlushJoinPrunes. The daemon flushes whenever its event queue runs
// dry: one event's joins still go at once, while a burst (thousands of
// receivers joining together) goes out in few, full messages.
func (r *Router) DeferJoinPrunes(on bool) { r.deferJP = on }

// FlushJoinPrunes sends the join/prune entries kept by DeferJoinPrunes.
func (r *Router) FlushJoinPrunes() Result {
	d := r.deferJP
	r.deferJP = false
	res := r.flush()
	r.deferJP = d
	return res
}

// flush turns queued join/prune entries into messages (unless deferred)
// and returns the result.
func (r *Router) flush() Result {
	r.nextOK = false // every state change ends here
	ups := make([]upKey, 0, len(r.pending))
	for up := range r.pending {
		if !r.deferJP {
			ups = append(ups, up)
		}
	}
	slices.SortFunc(ups, func(a, b upKey) int {
		if a.iface != b.iface {
			if a.iface < b.iface {
				return -1
			}
			return 1
		}
		return a.nbr.Compare(b.nbr)
	})
	hold := uint16(min(r.cfg.JoinPruneHoldtime/time.Second, 0xfffe))
	for _, up := range ups {
		b := r.pending[up]
		var sets []wire.GroupSet
		for _, g := range b.order {
			sets = append(sets, *b.groups[g])
		}
		for _, m := range wire.Split(up.nbr, hold, sets, r.cfg.MTU) {
			r.res.Sends = append(r.res.Sends, Send{Iface: up.iface, Dst: wire.AllPIMRouters, Msg: m})
		}
		delete(r.pending, up)
	}
	res := r.res
	r.res = Result{}
	res.Changed = compactSG(res.Changed)
	return res
}

func compactSG(ks []SG) []SG {
	seen := map[SG]bool{}
	out := ks[:0]
	for _, k := range ks {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}
