// Package daemon is Overcast's router: components (IGMP, PIM; later MSDP,
// overlay, mirror) over one multicast RIB, driven by typed events.
//
// The Daemon is synchronous and owns all protocol state: every event is a
// method call with the current time (Packet, Upcall, RoutingChanged,
// Advance, Tick, Reload), and EndBurst closes a burst of events (packed
// join/prunes go out, the MRIB's changes are programmed). It touches the
// outside world only through the seams in Env (dataplane.Forwarder,
// dataplane.PacketIO, dataplane.Links, Routing), so the same code runs on
// the kernel (internal/kernel) and in-process on fakes with a manual clock
// (the daemon tests, internal/sim). Run (loop.go) is the real-time driver:
// the one goroutine that calls those methods, serving the API in between.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"overcast/internal/config"
	"overcast/internal/dataplane"
	"overcast/internal/mbgp"
	"overcast/internal/mrib"
	"overcast/internal/pim"
)

// Version is printed by `overcast version` and the status API.
var Version = "0.1.0-dev"

// Routing answers unicast route lookups for RPF (the kernel's table over
// netlink, a table in tests); Invalidate drops cached answers after a
// routing change.
type Routing interface {
	pim.Routing
	Invalidate()
}

// Env is the daemon's outside world.
type Env struct {
	Forwarder dataplane.Forwarder
	IO        dataplane.PacketIO
	Links     dataplane.Links
	Routing   Routing
	// Start begins delivering packets, upcalls and routing changes to
	// sink; Run calls it once the daemon has started. Nil in synchronous
	// tests, which call the event methods themselves.
	Start func(ctx context.Context, sink dataplane.Sink) error
	// Jitter returns a random delay in [0, max); Rand32 a random 32-bit
	// number (PIM generation IDs). Nil: math/rand/v2.
	Jitter func(max time.Duration) time.Duration
	Rand32 func() uint32
	// VIF names an interface's kernel VIF for `show igmp interface` (nil:
	// the forwarder has none).
	VIF func(name string) (int, bool)
	// PID is reported by `show status`.
	PID int
	// TunePIM and TunePIMIf adjust the PIM settings built from the file
	// (simulations: timer checks, policies the file cannot express).
	TunePIM   func(*pim.Config)
	TunePIMIf func(iface string, c *pim.IfConfig)
	// Streams opens the TCP sessions of MSDP, reporting to the sink it is
	// given (nil: no session protocols). Now is the clock synchronous
	// tests drive stream events with (the real loop uses time.Now).
	Streams func(dataplane.StreamSink) dataplane.Streams
	Now     func() time.Time
	// MBGP makes the BGP speaker for the IPv4 multicast family; onChange
	// is called (from any goroutine) when its best paths change. Nil: no
	// BGP.
	MBGP func(onChange func()) mbgp.Speaker
	// Overlay makes the overlay's underlay: its device and UDP socket,
	// reporting to sink (nil: no overlay).
	Overlay func(cfg dataplane.OverlayConfig, sink dataplane.OverlaySink) (dataplane.Overlay, error)
	// PeerStore registers this overlay node in a distributed store and
	// calls update (from any goroutine) with every node listed there and
	// the store's state, until closed (nil: no store).
	PeerStore func(cfg PeerStoreConfig, update func(peers []netip.AddrPort, state string)) (io.Closer, error)
	// Mirror opens traffic mirroring's data path, at the first tap
	// service (nil: no mirroring).
	Mirror func() (dataplane.Mirror, error)
	// Handover is what a predecessor handed over at a planned restart
	// (nil: a plain start). CheckSuccessor says whether a binary can take
	// over (nil: no check).
	Handover       *Handover
	CheckSuccessor func(binary string) error
	// Ready is called once the daemon runs and its API answers (systemd's
	// READY=1; nil: nothing). Quiesce stops the planes delivering events,
	// before a restart hands their sockets over (nil: nothing to stop).
	Ready   func()
	Quiesce func()
}

// PeerStoreConfig is where overlay nodes find each other.
type PeerStoreConfig struct {
	Endpoints []string
	Prefix    string
	TTL       time.Duration
	Self      netip.AddrPort
}

// component is one protocol of the daemon. Each wraps a pure core and is
// driven by the daemon's events; adding one means adding it to
// Daemon.components (and, for new event types, one dispatch line).
type component interface {
	name() string
	ifaceUp(x *iface, now time.Time) error
	ifaceDown(x *iface, now time.Time)
	nextDeadline() time.Time
	advance(now time.Time)
	endBurst(now time.Time)
	// checkReload rejects a new config it cannot apply without a
	// restart; reload applies it (only after every component checked).
	checkReload(next *config.Config) error
	reload(next *config.Config, now time.Time)
	views(add func(path string, h viewFunc))
}

// viewFunc answers a show command on the loop.
type viewFunc func(now time.Time, arg string) (any, error)

// iface is one interface Overcast runs on.
type iface struct {
	name     string
	ifindex  int
	addr     netip.Addr
	prefixes []netip.Prefix // the link's IPv4 subnets (PIM admits Hellos from these)
	order    int            // when it was added: views list interfaces in this order
	cfg      config.Interface
}

// flow is an (S,G) the data plane has seen (or PIM has state for):
// created on the first packet's upcall, removed after keepalive without
// traffic. Its desired route lives in the MRIB.
type flow struct {
	key        dataplane.SG
	iif        string // where the first packet arrived ("" unknown)
	created    time.Time
	lastActive time.Time
	counters   dataplane.Counters
	pps, bps   float64
}

// Daemon owns the state. Create with New; drive with Start and the event
// methods, or with Run.
type Daemon struct {
	path  string
	cfg   *config.Config
	env   Env
	log   *slog.Logger
	level *slog.LevelVar

	rec *dataplane.Reconciler
	rib *mrib.RIB
	// frozen: stopping; the forwarder's routes stay as they are (for the
	// next run to adopt), whatever the components' goodbyes change.
	frozen        bool
	exit          exitReq // why the loop ended
	defaultBinary string
	adopted       int // kernel routes taken over at start
	ifs           map[string]*iface
	flows         map[dataplane.SG]*flow
	// byGroup indexes flows by group: a change to one group re-derives
	// its flows without walking every flow (addFlow, forgetFlow).
	byGroup map[netip.Addr]map[dataplane.SG]*flow
	added   int

	igmp *igmpComp
	pim  *pimComp     // nil when PIM is off
	msdp *msdpComp    // nil when MSDP is off
	mbgp *mbgpComp    // nil when BGP is off
	ovl  *overlayComp // nil when the overlay is off
	mir  *mirrorComp  // always (its data path opens at the first tap service)

	// Groups, and single flows, whose routes are re-derived at the end of the burst.
	dirtyGroups map[netip.Addr]bool
	dirtySGs    map[dataplane.SG]bool

	start       time.Time
	countersAt  time.Time
	reloads     uint64
	reloadError string
	upcalls     uint64
	polling     bool // a counter poll is running off the loop (Tick)
	joins       joinLatency
	restart     restartState // routes a predecessor left, kept for the grace

	loop loop
}

// New loads the config at path and prepares a daemon; nothing is touched
// until Start.
func New(path string, env Env, log *slog.Logger, level *slog.LevelVar) (*Daemon, error) {
	d := newDaemon(path, env, log, level)
	cfg, err := config.Load(path, d.linkExists)
	if err != nil {
		return nil, err
	}
	d.cfg = cfg
	return d, nil
}

// NewFromConfig prepares a daemon from a config already parsed (tests and
// simulations; ReloadFile still reads path).
func NewFromConfig(path string, cfg *config.Config, env Env, log *slog.Logger) *Daemon {
	d := newDaemon(path, env, log, nil)
	d.cfg = cfg
	return d
}

func newDaemon(path string, env Env, log *slog.Logger, level *slog.LevelVar) *Daemon {
	if env.Jitter == nil {
		env.Jitter = func(max time.Duration) time.Duration {
			if max <= 0 {
				return 0
			}
			return time.Duration(rand.Int64N(int64(max)))
		}
	}
	if env.Rand32 == nil {
		env.Rand32 = rand.Uint32
	}
	d := &Daemon{path: path, env: env, log: log, level: level,
		ifs: map[string]*iface{}, flows: map[dataplane.SG]*flow{}, byGroup: map[netip.Addr]map[dataplane.SG]*flow{}, rib: mrib.New()}
	d.loop.init()
	return d
}

// PIM is the PIM core, for inspection by tests and simulations (nil when
// PIM is off). Changing it behind the daemon's back skips the MRIB.
func (d *Daemon) PIM() *pim.Router {
	if d.pim == nil {
		return nil
	}
	return d.pim.r
}

// Upcalls is how many forwarding-plane upcalls the daemon has handled.
func (d *Daemon) Upcalls() uint64 { return d.upcalls }

// Routes is the MRIB (read-only use: tests, simulations).
func (d *Daemon) Routes() *mrib.RIB { return d.rib }

func (d *Daemon) linkExists(name string) bool {
	_, err := d.env.Links.Link(name)
	return err == nil || errors.Is(err, dataplane.ErrNoIPv4)
}

// Config is the running configuration.
func (d *Daemon) Config() *config.Config { return d.cfg }

// components lists the running components, in the order they see events.
func (d *Daemon) components() []component {
	cs := []component{d.igmp}
	if d.mbgp != nil {
		cs = append(cs, d.mbgp)
	}
	if d.pim != nil {
		cs = append(cs, d.pim)
	}
	if d.msdp != nil {
		cs = append(cs, d.msdp)
	}
	if d.ovl != nil {
		cs = append(cs, d.ovl)
	}
	if d.mir != nil {
		cs = append(cs, d.mir)
	}
	return cs
}

// Start brings the configured interfaces and components up at now.
func (d *Daemon) Start(now time.Time) error {
	d.setLevel(d.cfg.LogLevel)
	d.start, d.countersAt = now, now
	d.rec = dataplane.NewReconciler(d.env.Forwarder)
	d.igmp = &igmpComp{d: d, ifs: map[string]*igmpIface{}}
	if d.cfg.BGP != nil {
		m, err := newMBGP(d)
		if err != nil {
			return err
		}
		d.mbgp = m
	}
	if d.cfg.PIMEnabled() {
		p, err := newPIM(d, now)
		if err != nil {
			return err
		}
		d.pim = p
	}
	if d.cfg.MSDP != nil && d.pim != nil {
		m, err := newMSDP(d, now)
		if err != nil {
			return err
		}
		d.msdp = m
	}
	if d.cfg.Overlay != nil {
		o, err := newOverlay(d, now)
		if err != nil {
			return err
		}
		d.ovl = o
	}
	m, err := newMirror(d) // always: the API may add services; the data path opens at the first
	if err != nil {
		return err
	}
	d.mir = m
	for _, ic := range d.cfg.Interfaces {
		if err := d.addInterface(ic, now); err != nil {
			return err
		}
	}
	var left []dataplane.Route
	if l, ok := d.env.Forwarder.(dataplane.RouteLister); ok {
		// Routes a predecessor left are adopted: kept for the restart
		// grace (restart.go), or removed at the first full pass. Read
		// once the interfaces are up: a route through a VIF that had to
		// be replaced (its device was re-created) names no interface.
		if rs, err := l.ListRoutes(); err == nil {
			for _, r := range rs {
				d.rec.Adopt(r)
			}
			left = rs
		}
	}
	d.replayHellos(now)
	d.adoptLeftovers(now, left)
	d.reconcile(now)
	d.EndBurst(now)
	names := []string{}
	for _, c := range d.components() {
		names = append(names, c.name())
	}
	d.log.Info("overcast started", "config", d.path, "interfaces", len(d.ifs), "api", d.cfg.APISocket, "components", names)
	return nil
}

// Stop ends every component: PIM says goodbye on its interfaces. The
// forwarder's routes are left as they are, for the next run (Flush, when
// the forwarder has it, removes them).
func (d *Daemon) Stop(now time.Time) {
	d.frozen = true
	for _, x := range d.sortedIfs() {
		for _, c := range slices.Backward(d.components()) {
			c.ifaceDown(x, now)
		}
	}
	d.EndBurst(now)
	if d.mbgp != nil {
		d.mbgp.stop()
	}
	if d.ovl != nil {
		d.ovl.stop()
	}
	if d.mir != nil {
		d.mir.stop()
	}
}

func (d *Daemon) setLevel(s string) {
	if d.level == nil {
		return
	}
	switch s {
	case "debug":
		d.level.Set(slog.LevelDebug)
	case "warn":
		d.level.Set(slog.LevelWarn)
	case "error":
		d.level.Set(slog.LevelError)
	default:
		d.level.Set(slog.LevelInfo)
	}
}

func (d *Daemon) addInterface(ic config.Interface, now time.Time) error {
	l, err := d.env.Links.Link(ic.Name)
	if err != nil {
		return err
	}
	if !l.Multicast {
		d.log.Warn("interface has no MULTICAST flag; hosts on it cannot join groups (ip link set dev X multicast on)", "interface", ic.Name)
	}
	if err := d.env.Forwarder.AddInterface(ic.Name, l.Index); err != nil {
		return err
	}
	d.added++
	x := &iface{name: ic.Name, ifindex: l.Index, addr: l.Addr, prefixes: l.Prefixes, cfg: ic, order: d.added}
	d.ifs[ic.Name] = x
	for _, c := range d.components() {
		if err := c.ifaceUp(x, now); err != nil {
			return fmt.Errorf("interface %s: %s: %w", ic.Name, c.name(), err)
		}
	}
	vif := -1
	if d.env.VIF != nil {
		vif, _ = d.env.VIF(ic.Name)
	}
	d.log.Info("interface up", "interface", ic.Name, "vif", vif, "address", l.Addr)
	return nil
}

func (d *Daemon) removeInterface(x *iface, now time.Time) {
	for _, c := range slices.Backward(d.components()) {
		c.ifaceDown(x, now)
	}
	delete(d.ifs, x.name)
	for k, f := range d.flows {
		if f.iif == x.name {
			d.forgetFlow(k)
		}
	}
	d.EndBurst(now)
	d.reconcile(now) // no route may use the interface when it goes
	if err := d.env.Forwarder.DelInterface(x.name); err != nil {
		d.log.Warn("remove interface from the forwarder", "interface", x.name, "err", err)
	}
	d.log.Info("interface removed", "interface", x.name)
}

// --- Events ----------------------------------------------------------------

// Packet handles a control packet received on an interface (a whole IPv4
// packet). iface is "" for unicast PIM arriving where no daemon interface is.
func (d *Daemon) Packet(now time.Time, ifname string, proto dataplane.Proto, pkt []byte) {
	switch proto {
	case dataplane.IGMP:
		d.igmp.packet(now, ifname, pkt)
	case dataplane.PIM:
		if d.pim != nil {
			d.pim.packet(now, ifname, pkt)
		}
	}
}

// Upcall handles a forwarding-plane upcall.
func (d *Daemon) Upcall(now time.Time, up dataplane.Upcall) {
	d.upcalls++
	if d.ovl != nil {
		d.ovl.noteSource(up)
	}
	if d.pim != nil {
		d.pim.upcall(now, up)
		return
	}
	if up.Kind != dataplane.NoCache {
		d.log.Debug("upcall ignored", "kind", up.Kind, "sg", up.SG, "iif", up.Iface)
		return
	}
	if d.ifs[up.Iface] == nil || !up.Group.IsMulticast() || up.Group.IsLinkLocalMulticast() {
		return
	}
	d.seeFlow(up.SG, up.Iface, now)
	d.touchSG(up.SG)
	d.flushRoutes(now) // now: the kernel holds the flow's packets until then
}

// seeFlow records traffic of k arriving on iif.
func (d *Daemon) seeFlow(k dataplane.SG, iif string, now time.Time) *flow {
	if f, ok := d.flows[k]; ok {
		f.lastActive = now
		return f
	}
	f := d.addFlow(&flow{key: k, iif: iif, created: now, lastActive: now})
	d.log.Debug("new flow", "sg", k, "iif", iif)
	return f
}

// addFlow records a new flow.
func (d *Daemon) addFlow(f *flow) *flow {
	d.flows[f.key] = f
	m := d.byGroup[f.key.Group]
	if m == nil {
		m = map[dataplane.SG]*flow{}
		d.byGroup[f.key.Group] = m
	}
	m[f.key] = f
	return f
}

// forgetFlow removes a flow, and what components keep about it.
func (d *Daemon) forgetFlow(k dataplane.SG) {
	delete(d.flows, k)
	if m := d.byGroup[k.Group]; m != nil {
		if delete(m, k); len(m) == 0 {
			delete(d.byGroup, k.Group)
		}
	}
	if d.pim != nil {
		d.pim.forgetFlow(k)
	}
}

// StreamUp, StreamFailed, StreamData and StreamDown are the session
// protocols' TCP events (Env.Streams).
func (d *Daemon) StreamUp(now time.Time, id dataplane.StreamID, local, remote netip.AddrPort, inbound bool) {
	if d.msdp != nil {
		d.msdp.streamUp(now, id, local, remote, inbound)
	}
}

func (d *Daemon) StreamFailed(now time.Time, id dataplane.StreamID, err error) {
	if d.msdp != nil {
		d.msdp.streamFailed(now, id, err)
	}
}

func (d *Daemon) StreamData(now time.Time, id dataplane.StreamID, b []byte) {
	if d.msdp != nil {
		d.msdp.streamData(now, id, b)
	}
}

func (d *Daemon) StreamDown(now time.Time, id dataplane.StreamID, err error) {
	if d.msdp != nil {
		d.msdp.streamDown(now, id, err)
	}
}

// streamSink is where Streams report: the loop's queue under Run, else
// straight into the event methods at Env.Now (synchronous tests).
func (d *Daemon) streamSink() dataplane.StreamSink {
	if d.loop.live || d.env.Now == nil {
		return sink{d}
	}
	return syncStreams{d}
}

type syncStreams struct{ d *Daemon }

func (s syncStreams) StreamUp(id dataplane.StreamID, local, remote netip.AddrPort, inbound bool) {
	s.d.StreamUp(s.d.env.Now(), id, local, remote, inbound)
}
func (s syncStreams) StreamFailed(id dataplane.StreamID, err error) {
	s.d.StreamFailed(s.d.env.Now(), id, err)
}
func (s syncStreams) StreamData(id dataplane.StreamID, b []byte) {
	s.d.StreamData(s.d.env.Now(), id, b)
}
func (s syncStreams) StreamDown(id dataplane.StreamID, err error) {
	s.d.StreamDown(s.d.env.Now(), id, err)
}

// OverlayControl handles a control datagram of the overlay.
func (d *Daemon) OverlayControl(now time.Time, from netip.AddrPort, b []byte) {
	if d.ovl != nil {
		d.ovl.control(now, from, b)
	}
}

// overlaySink is where the overlay reports: the loop's queue under Run,
// else straight into the event methods at Env.Now.
func (d *Daemon) overlaySink() dataplane.OverlaySink {
	if d.loop.live || d.env.Now == nil {
		return sink{d}
	}
	return syncOverlay{d}
}

type syncOverlay struct{ d *Daemon }

func (s syncOverlay) OverlayControl(from netip.AddrPort, b []byte) {
	s.d.OverlayControl(s.d.env.Now(), from, b)
}
func (s syncOverlay) Upcall(up dataplane.Upcall) { s.d.Upcall(s.d.env.Now(), up) }

// RoutingChanged re-checks RPF after a unicast route or link change.
func (d *Daemon) RoutingChanged(now time.Time) {
	d.env.Routing.Invalidate()
	d.restartRouting()
	if d.pim != nil {
		d.pim.apply(now, d.pim.r.RPFChanged(now))
	}
	d.reconcile(now)
	if d.msdp != nil {
		d.msdp.endBurst(now)
	}
}

// Advance runs every component's timers due at now.
func (d *Daemon) Advance(now time.Time) {
	for _, c := range d.components() {
		if t := c.nextDeadline(); !t.IsZero() && !t.After(now) {
			c.advance(now)
		}
	}
	if t := d.restartDeadline(); !t.IsZero() && !t.After(now) {
		d.endRestart(now)
	}
}

// NextDeadline is the earliest time Advance has work (zero: none).
func (d *Daemon) NextDeadline() time.Time {
	next := d.restartDeadline()
	for _, c := range d.components() {
		if t := c.nextDeadline(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

// EndBurst closes a burst of events: the routes the burst touched are
// re-derived and programmed, then join/prunes go out together, packed.
// Routes first: an (S,G,rpt) prune sent before this router's own switch
// to the SPT is in the forwarder would let the upstream router stop
// sending on the shared tree while the SPT copies are still dropped here.
func (d *Daemon) EndBurst(now time.Time) {
	d.flushRoutes(now)
	for _, c := range d.components() {
		c.endBurst(now)
	}
	d.flushRoutes(now)
}

// counterPollInterval is how often the forwarding counters are read. The
// kernel prints every route for each read (10,000 routes cost it about
// 10 ms), so polls slow down as routes grow: every second up to 2,000
// routes, a second more per 2,000 beyond, at most 5 s. Rates and SPT
// thresholds are computed over the real interval; idle flows expire after
// the keepalive period (210 s), far longer.
func counterPollInterval(routes int) time.Duration {
	return time.Duration(min(routes/2000+1, 5)) * time.Second
}

// Tick runs once a second: reads counters, computes rates and expires
// idle flows.
func (d *Daemon) Tick(now time.Time) {
	d.joins.expire(now)
	if d.pim != nil {
		d.pim.logRefusals(now)
	}
	// A tick a little early still counts as a full interval.
	if now.Sub(d.countersAt) < counterPollInterval(len(d.flows))-100*time.Millisecond {
		if d.pim != nil {
			d.pim.readMeasured(now)
		}
		return
	}
	if d.loop.live {
		// Under the real-time loop the counters are read off the loop, one
		// lookup per flow (linear; the kernel's /proc dump of 100,000
		// routes takes seconds and grows worse than linearly), and the
		// result comes back as an event. One poll at a time.
		if d.polling {
			return
		}
		d.polling = true
		keys := make([]dataplane.SG, 0, len(d.flows))
		for k := range d.flows {
			keys = append(keys, k)
		}
		fw, start := d.env.Forwarder, now
		go func() {
			read := make([]polled, 0, len(keys))
			for _, k := range keys {
				if c, err := fw.SGCount(k); err == nil {
					read = append(read, polled{k, c})
				}
			}
			d.post(func() {
				d.polling = false
				d.applyCounters(start, read)
			})
		}()
		return
	}
	var read []polled
	if err := d.env.Forwarder.Counters(func(k dataplane.SG, c dataplane.Counters) { read = append(read, polled{k, c}) }); err != nil {
		d.log.Warn("read forwarding counters", "err", err)
		return
	}
	d.applyCounters(now, read)
}

// polled is one flow's counters as a poll read them.
type polled struct {
	k dataplane.SG
	c dataplane.Counters
}

// applyCounters takes a poll's counters (read at now): rates, activity,
// PIM's keepalives and thresholds, then idle flows expire.
func (d *Daemon) applyCounters(now time.Time, read []polled) {
	dt := now.Sub(d.countersAt).Seconds()
	d.countersAt = now
	for _, p := range read {
		k, c := p.k, p.c
		f := d.flows[k]
		if f == nil {
			continue
		}
		if c.Packets != f.counters.Packets || c.WrongIf != f.counters.WrongIf {
			f.lastActive = now
			if d.pim != nil && c.Packets != f.counters.Packets {
				d.pim.traffic(now, k, c)
			}
		}
		if dt > 0 && c.Packets >= f.counters.Packets {
			f.pps = float64(c.Packets-f.counters.Packets) / dt
			f.bps = float64(c.Bytes-f.counters.Bytes) * 8 / dt
		}
		f.counters = c
	}
	changed := false
	for k, f := range d.flows {
		if now.Sub(f.lastActive) > d.cfg.Keepalive {
			d.log.Debug("flow idle, removed", "sg", k)
			d.forgetFlow(k)
			changed = true
		}
	}
	if changed {
		if d.ovl != nil {
			d.ovl.expireSources()
		}
		d.reconcile(now)
	}
}

// --- Routes ----------------------------------------------------------------

// derive writes a flow's desired route into the MRIB: PIM's route when
// PIM runs, else IGMP's (the flow goes out of every other interface whose
// members want it, RFC 3376 section 6.3).
func (d *Daemon) derive(f *flow, now time.Time) {
	e := mrib.Entry{SG: f.key}
	if d.pim != nil {
		d.pim.route(f, &e, now)
	} else {
		d.igmp.route(f, &e)
	}
	if d.ovl != nil {
		d.ovl.route(f, &e)
	}
	d.keepRestart(&e, now)
	d.rib.Set(now, e)
}

// touch marks a group's routes for re-derivation at the end of the burst.
func (d *Daemon) touch(g netip.Addr) {
	if d.ovl != nil {
		d.ovl.membership(g) // a PIM join or an IGMP change may change what this node wants
	}
	if d.dirtyGroups == nil {
		d.dirtyGroups = map[netip.Addr]bool{}
	}
	d.dirtyGroups[g] = true
}

// touchSG marks one flow's route for re-derivation (an event about that
// (S,G) alone: its first packet, its Register, its (S,G) join).
func (d *Daemon) touchSG(k dataplane.SG) {
	if d.ovl != nil {
		d.ovl.membership(k.Group)
	}
	if d.dirtySGs == nil {
		d.dirtySGs = map[dataplane.SG]bool{}
	}
	d.dirtySGs[k] = true
}

// flushRoutes re-derives the routes marked since the last flush. With
// thousands of flows an IGMP report or a Join/Prune touches a few groups
// or flows, and only those are recomputed (through byGroup, never a walk
// of every flow); the full pass (reconcile) is kept for changes that can
// move any route (RPF, interfaces, reload, expiry).
func (d *Daemon) flushRoutes(now time.Time) {
	if len(d.dirtyGroups) == 0 && len(d.dirtySGs) == 0 {
		return
	}
	groups, sgs := d.dirtyGroups, d.dirtySGs
	d.dirtyGroups, d.dirtySGs = nil, nil
	if d.pim != nil {
		for g := range groups {
			d.pim.adoptFlows(now, d.pim.r.GroupFlows(g))
		}
		for k := range sgs {
			if !groups[k.Group] {
				d.pim.adoptFlows(now, []pim.SG{{S: k.Source, G: k.Group}})
			}
		}
	}
	for g := range groups {
		for _, f := range d.byGroup[g] {
			d.derive(f, now)
		}
	}
	for k := range sgs {
		if f := d.flows[k]; f != nil && !groups[k.Group] {
			d.derive(f, now)
		}
	}
	d.program()
	if len(d.joins.pending) > 0 {
		touched := maps.Clone(groups)
		if touched == nil {
			touched = map[netip.Addr]bool{}
		}
		for k := range sgs {
			touched[k.Group] = true
		}
		d.observeJoins(now, touched)
	}
}

// reconcile re-derives every route and makes the forwarder hold exactly those.
func (d *Daemon) reconcile(now time.Time) {
	d.dirtyGroups, d.dirtySGs = nil, nil
	if d.pim != nil {
		d.pim.adoptFlows(now, d.pim.r.Flows())
	}
	for _, f := range d.flows {
		d.derive(f, now)
	}
	var gone []dataplane.SG
	for e := range d.rib.All() {
		if d.flows[e.SG] == nil {
			gone = append(gone, e.SG)
		}
	}
	for _, k := range gone {
		d.rib.Delete(k)
	}
	// Routes installed that the MRIB never held (adopted from a
	// predecessor, or left by a failed delete) go too.
	want := make(map[dataplane.SG]dataplane.Route, d.rib.Len())
	for e := range d.rib.All() {
		want[e.SG] = e.Route()
	}
	if d.frozen {
		return
	}
	d.logChanges()
	if err := d.rec.Apply(want); err != nil {
		d.log.Warn("programming the forwarder", "err", err)
	}
	d.rib.Program(d.rec) // clears the change marks: Apply holds every entry already
	d.observeJoins(now, nil)
}

// program hands the MRIB's changes to the reconciler.
func (d *Daemon) program() {
	if d.frozen {
		return
	}
	d.logChanges()
	if err := d.rib.Program(d.rec); err != nil {
		d.log.Warn("programming the forwarder", "err", err)
	}
}

// logChanges logs the routes about to change (debug level).
func (d *Daemon) logChanges() {
	if !d.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	for k, ok := range d.rib.Changes() {
		if !ok {
			d.log.Debug("route removed", "sg", k)
			continue
		}
		e, _ := d.rib.Get(k)
		if r := e.Route(); !d.rec.Holds(r) {
			d.log.Debug("route", "sg", k, "iif", r.IIF, "oifs", r.OIFs, "flags", e.Flags.String())
		}
	}
}

func (d *Daemon) sortedIfs() []*iface {
	out := make([]*iface, 0, len(d.ifs))
	for _, x := range d.ifs {
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b *iface) int { return a.order - b.order })
	return out
}

func (d *Daemon) isLocal(a netip.Addr) bool {
	for _, x := range d.ifs {
		if x.addr == a {
			return true
		}
	}
	return false
}
