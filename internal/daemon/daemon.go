// Package daemon is Overcast's event loop: the one goroutine that owns all
// protocol state. Packets, kernel upcalls, timers, API requests and reloads
// arrive as events; IGMP decides membership, the flow table decides the
// desired (S,G) routes, and the reconciler alone programs the kernel.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"overcast/internal/api"
	"overcast/internal/config"
	"overcast/internal/dataplane"
	"overcast/internal/dataplane/linuxmr"
	"overcast/internal/igmp"
	"overcast/internal/packet/ip4"
	"overcast/internal/pim"
)

// Version is printed by `overcast version` and the status API.
var Version = "0.1.0-dev"

// iface is one interface Overcast runs on.
type iface struct {
	name    string
	ifindex int
	vif     int
	addr    netip.Addr
	cfg     config.Interface
	igmp    *igmp.Interface
}

// flow is an (S,G) the kernel has seen: created on the first packet's upcall,
// removed after keepalive without traffic.
type flow struct {
	key        dataplane.SG
	iif        *iface
	created    time.Time
	lastActive time.Time
	counters   dataplane.Counters
	pps, bps   float64
}

// Daemon owns the state. Create with New, run with Run.
type Daemon struct {
	path   string
	cfg    *config.Config
	log    *slog.Logger
	level  *slog.LevelVar
	sock   *linuxmr.Socket
	rec    *dataplane.Reconciler
	ifs    map[string]*iface
	byIdx  map[int]*iface
	flows  map[dataplane.SG]*flow
	events chan func()
	start  time.Time
	timer  *time.Timer

	pim *pimState // nil when PIM is off

	// Groups whose kernel routes are re-derived when the event queue runs dry.
	dirtyGroups map[netip.Addr]bool

	reloads     uint64
	reloadError string
	upcalls     uint64
	countersAt  time.Time
}

// New loads the config and prepares a daemon; Run starts it.
func New(path string, log *slog.Logger, level *slog.LevelVar) (*Daemon, error) {
	cfg, err := config.Load(path, interfaceExists)
	if err != nil {
		return nil, err
	}
	return &Daemon{
		path: path, cfg: cfg, log: log, level: level,
		ifs: map[string]*iface{}, byIdx: map[int]*iface{}, flows: map[dataplane.SG]*flow{},
		events: make(chan func(), 1024),
	}, nil
}

func interfaceExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// Run opens the kernel's multicast routing socket, starts IGMP on every
// configured interface, serves the API and loops until ctx ends or reload
// channel closes.
func (d *Daemon) Run(ctx context.Context, hup <-chan os.Signal) error {
	d.setLevel(d.cfg.LogLevel)
	sock, err := linuxmr.Open()
	if err != nil {
		return err
	}
	d.sock = sock
	defer sock.Close() // the kernel flushes our VIFs and routes
	d.rec = dataplane.NewReconciler(sock)
	d.start = time.Now()
	for _, ic := range d.cfg.Interfaces {
		if err := d.addInterface(ic, d.start); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if d.cfg.PIMEnabled() {
		if err := d.startPIM(ctx, d.start); err != nil {
			return err
		}
		defer d.pim.sock.Close()
	}
	apiErr := make(chan error, 1)
	go func() { apiErr <- api.Serve(ctx, d.cfg.APISocket, backend{d}) }()
	go d.readLoop(ctx)
	d.log.Info("overcast started", "config", d.path, "interfaces", len(d.ifs), "api", d.cfg.APISocket, "mc_forwarding", readSysctl("net/ipv4/conf/all/mc_forwarding"))

	d.timer = time.NewTimer(time.Hour)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	d.rearm(time.Now())
	burst := 0
	for {
		select {
		case <-ctx.Done():
			d.log.Info("overcast stopping")
			return nil
		case err := <-apiErr:
			if err != nil {
				return err
			}
		case f := <-d.events:
			f()
		case <-d.timer.C:
			d.onTimers(time.Now())
		case now := <-tick.C:
			d.onCounterTick(now)
		case <-hup:
			d.reload(time.Now())
		}
		// Join/prunes from a burst of events go out together, packed, when
		// the queue runs dry (or every 256 events under load).
		// So do kernel route changes: one pass over the routes per burst,
		// not one per IGMP record or join.
		if burst++; len(d.events) == 0 || burst >= 256 {
			burst = 0
			if d.pim != nil {
				d.applyPIM(d.pim.r.FlushJoinPrunes())
			}
			d.flushRoutes()
		}
		d.rearm(time.Now())
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
	ni, err := net.InterfaceByName(ic.Name)
	if err != nil {
		return fmt.Errorf("interface %s: %w", ic.Name, err)
	}
	if ni.Flags&net.FlagMulticast == 0 {
		d.log.Warn("interface has no MULTICAST flag; hosts on it cannot join groups (ip link set dev X multicast on)", "interface", ic.Name)
	}
	addr, err := ifaceAddr(ni)
	if err != nil {
		return err
	}
	vif := 0
	for slices.ContainsFunc(mapValues(d.ifs), func(x *iface) bool { return x.vif == vif }) {
		vif++
	}
	if err := d.sock.AddVIF(dataplane.VIF{Index: vif, IfIndex: ni.Index, Name: ic.Name}); err != nil {
		return err
	}
	for _, g := range []netip.Addr{igmp.AllRoutersGroup, igmp.V3ReportsGroup} {
		if err := d.sock.JoinGroup(ni.Index, g); err != nil {
			return err
		}
	}
	x := &iface{name: ic.Name, ifindex: ni.Index, vif: vif, addr: addr, cfg: ic}
	var out igmp.Output
	x.igmp, out = igmp.NewInterface(igmpConfig(ic), addr, now)
	d.ifs[ic.Name] = x
	d.byIdx[ni.Index] = x
	d.log.Info("interface up", "interface", ic.Name, "vif", vif, "address", addr, "igmp_version", x.igmp.Config().Version)
	d.handle(x, out)
	return nil
}

func (d *Daemon) removeInterface(x *iface) {
	delete(d.ifs, x.name)
	delete(d.byIdx, x.ifindex)
	for k, f := range d.flows {
		if f.iif == x {
			delete(d.flows, k)
		}
	}
	d.reconcile()
	if err := d.sock.DelVIF(x.vif); err != nil {
		d.log.Warn("remove vif", "interface", x.name, "err", err)
	}
	d.log.Info("interface removed", "interface", x.name)
}

func ifaceAddr(ni *net.Interface) (netip.Addr, error) {
	addrs, err := ni.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if pn, ok := a.(*net.IPNet); ok {
			if v4 := pn.IP.To4(); v4 != nil {
				ip, _ := netip.AddrFromSlice(v4)
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no IPv4 address: IGMP queries need one as their source", ni.Name)
}

func igmpConfig(ic config.Interface) igmp.Config {
	g := ic.IGMP
	c := igmp.Config{
		Version: g.Version, Robustness: g.Robustness, QueryInterval: g.QueryInterval,
		QueryResponseInterval: g.QueryResponseInterval, LastMemberQueryInterval: g.LastMemberQueryInterval,
		LastMemberQueryCount: g.LastMemberQueryCount, ExplicitTracking: g.ExplicitTracking,
		NoQuerier: g.Querier != nil && !*g.Querier,
	}
	for _, s := range g.StaticGroups {
		c.StaticGroups = append(c.StaticGroups, netip.MustParseAddr(s))
	}
	return c
}

// readLoop turns socket reads into events for the loop.
func (d *Daemon) readLoop(ctx context.Context) {
	buf := make([]byte, 65536)
	oob := make([]byte, 256)
	for ctx.Err() == nil {
		m, err := d.sock.Read(buf, oob)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return
			}
			d.log.Warn("mroute socket read", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if m.Upcall != nil {
			up := *m.Upcall
			d.post(func() { d.onUpcall(up, time.Now()) })
			continue
		}
		pkt := slices.Clone(m.Packet)
		idx := m.IfIndex
		d.post(func() { d.onPacket(idx, pkt, time.Now()) })
	}
}

func (d *Daemon) post(f func()) { d.events <- f }

// call runs f on the loop and waits: how API reads see consistent state.
func (d *Daemon) call(f func()) {
	done := make(chan struct{})
	d.post(func() { f(); close(done) })
	<-done
}

func (d *Daemon) onPacket(ifindex int, pkt []byte, now time.Time) {
	x := d.byIdx[ifindex]
	if x == nil {
		return // IGMP on an interface we do not run on
	}
	h, payload, err := ip4.Parse(pkt)
	if err != nil || h.Protocol != ip4.ProtoIGMP {
		x.igmp.CountMalformed()
		return
	}
	d.handle(x, x.igmp.Receive(now, h, payload))
}

func (d *Daemon) onUpcall(up dataplane.Upcall, now time.Time) {
	d.upcalls++
	if d.pim != nil {
		d.pimUpcall(up, now)
		return
	}
	if up.Kind != dataplane.NoCache {
		d.log.Debug("upcall ignored", "kind", up.Kind, "sg", up.SG, "vif", up.VIF)
		return
	}
	var in *iface
	for _, x := range d.ifs {
		if x.vif == up.VIF {
			in = x
		}
	}
	if in == nil || !up.Group.IsMulticast() || up.Group.IsLinkLocalMulticast() {
		return
	}
	if f, ok := d.flows[up.SG]; ok {
		f.lastActive = now
	} else {
		d.flows[up.SG] = &flow{key: up.SG, iif: in, created: now, lastActive: now}
		d.log.Debug("new flow", "sg", up.SG, "iif", in.name)
	}
	d.touch(up.Group)
	d.flushRoutes() // now: the kernel holds the flow's packets until then
}

// handle sends an IGMP output's packets and re-derives routes if membership changed.
func (d *Daemon) handle(x *iface, out igmp.Output) {
	for _, p := range out.Send {
		h := ip4.Header{TOS: 0xc0, TTL: 1, Protocol: ip4.ProtoIGMP, Src: x.addr, Dst: p.Dst, Options: ip4.OptRouterAlert}
		if err := d.sock.Send(x.ifindex, h.Marshal(p.Msg.Marshal()), p.Dst); err != nil {
			d.log.Warn("send igmp", "interface", x.name, "err", err)
		}
	}
	for _, g := range out.Changed {
		d.log.Debug("membership changed", "interface", x.name, "group", g, "wanted", x.igmp.Wants(g))
		if d.pim != nil {
			d.pushMembership(x, g, time.Now())
		}
	}
	for _, g := range out.Changed {
		d.touch(g)
	}
}

func (d *Daemon) onTimers(now time.Time) {
	for _, x := range d.ifs {
		var out igmp.Output
		x.igmp.Advance(now, &out)
		d.handle(x, out)
	}
	if d.pim != nil {
		if t := d.pim.r.NextDeadline(); !t.IsZero() && !t.After(now) {
			d.applyPIM(d.pim.r.Advance(now))
		}
	}
}

func (d *Daemon) rearm(now time.Time) {
	var next time.Time
	for _, x := range d.ifs {
		if t := x.igmp.NextDeadline(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if d.pim != nil {
		if t := d.pim.r.NextDeadline(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	wait := time.Hour
	if !next.IsZero() {
		wait = max(next.Sub(now), 0)
	}
	d.timer.Reset(wait)
}

// counterPollInterval is how often the kernel's counters are read. The
// kernel prints every route for each read (10,000 routes cost it about
// 10 ms), so polls slow down as routes grow: every second up to 2,000
// routes, a second more per 2,000 beyond, at most 5 s. Rates and SPT
// thresholds are computed over the real interval; idle flows expire after
// the keepalive period (210 s), far longer.
func counterPollInterval(routes int) time.Duration {
	return time.Duration(min(routes/2000+1, 5)) * time.Second
}

// onCounterTick reads kernel counters, computes rates and expires idle flows.
func (d *Daemon) onCounterTick(now time.Time) {
	// A tick a little early still counts as a full interval.
	if now.Sub(d.countersAt) < counterPollInterval(len(d.flows))-100*time.Millisecond {
		d.readMeasured(now)
		return
	}
	dt := now.Sub(d.countersAt).Seconds()
	d.countersAt = now
	err := d.sock.Counters(func(k dataplane.SG, c dataplane.Counters) {
		f := d.flows[k]
		if f == nil {
			return
		}
		if c.Packets != f.counters.Packets || c.WrongIf != f.counters.WrongIf {
			f.lastActive = now
			if d.pim != nil && c.Packets != f.counters.Packets {
				d.pim.r.Traffic(now, k.Source, k.Group, c.Packets, c.Bytes)
				if iif, _, okR := d.pim.r.Route(k.Source, k.Group); okR {
					d.applyPIM(d.pim.r.DataArrived(now, k.Source, k.Group, iif, pim.DataActive))
				}
			}
		}
		if dt > 0 && c.Packets >= f.counters.Packets {
			f.pps = float64(c.Packets-f.counters.Packets) / dt
			f.bps = float64(c.Bytes-f.counters.Bytes) * 8 / dt
		}
		f.counters = c
	})
	if err != nil {
		d.log.Warn("read kernel counters", "err", err)
		return
	}
	changed := false
	for k, f := range d.flows {
		if now.Sub(f.lastActive) > d.cfg.Keepalive {
			d.log.Debug("flow idle, removed", "sg", k)
			delete(d.flows, k)
			changed = true
		}
	}
	if changed {
		d.reconcile()
	}
}

// readMeasured reads, between full polls, the counters of the flows PIM
// measures against an SPT threshold (one ioctl each; there are few), so
// a source that crosses its threshold moves to the SPT within a second
// even when thousands of routes slow the full poll down.
func (d *Daemon) readMeasured(now time.Time) {
	if d.pim == nil {
		return
	}
	for _, k := range d.pim.r.Measuring(now) {
		c, err := d.sock.SGCount(dataplane.SG{Source: k.S, Group: k.G})
		if err != nil {
			continue
		}
		d.pim.r.Traffic(now, k.S, k.G, c.Packets, c.Bytes)
		if _, crossed := d.pim.r.FlowFlags(k.S, k.G); crossed {
			if iif, _, ok := d.pim.r.Route(k.S, k.G); ok {
				d.applyPIM(d.pim.r.DataArrived(now, k.S, k.G, iif, pim.DataActive))
			}
		}
	}
}

// route derives a flow's kernel route: with PIM, PIM's route; without,
// the flow goes out of every other interface whose members want (S,G)
// (RFC 3376 section 6.3).
func (d *Daemon) route(f *flow) dataplane.Route {
	if d.pim != nil {
		return d.pimRoute(f)
	}
	k := f.key
	r := dataplane.Route{SG: k, IIF: f.iif.vif}
	for _, x := range d.ifs {
		if x != f.iif && x.igmp.Forwards(k.Group, k.Source) {
			r.OIFs = append(r.OIFs, x.vif)
		}
	}
	slices.Sort(r.OIFs)
	return r
}

// touch marks a group's routes for re-derivation at the next flush.
func (d *Daemon) touch(g netip.Addr) {
	if d.dirtyGroups == nil {
		d.dirtyGroups = map[netip.Addr]bool{}
	}
	d.dirtyGroups[g] = true
}

// flushRoutes re-derives the routes marked since the last flush. With
// thousands of flows an IGMP report or a Join/Prune touches a few groups,
// and only their flows are recomputed; the full pass (reconcile) is kept
// for changes that can move any route (RPF, interfaces, reload, expiry).
func (d *Daemon) flushRoutes() {
	if len(d.dirtyGroups) == 0 {
		return
	}
	groups := d.dirtyGroups
	d.dirtyGroups = nil
	if d.pim != nil {
		for g := range groups {
			d.adoptPIMFlows(time.Now(), d.pim.r.GroupFlows(g))
		}
	}
	var routes []dataplane.Route
	for _, f := range d.flows {
		if groups[f.key.Group] {
			routes = append(routes, d.route(f))
		}
	}
	d.logRoutes(slices.Values(routes))
	if err := d.rec.Update(routes); err != nil {
		d.log.Warn("kernel programming", "err", err)
	}
}

// reconcile re-derives every route and makes the kernel hold exactly those.
func (d *Daemon) reconcile() {
	d.dirtyGroups = nil
	if d.pim != nil {
		d.adoptPIMFlows(time.Now(), d.pim.r.Flows())
	}
	want := make(map[dataplane.SG]dataplane.Route, len(d.flows))
	for k, f := range d.flows {
		want[k] = d.route(f)
	}
	d.logRoutes(maps.Values(want))
	if err := d.rec.Apply(want); err != nil {
		d.log.Warn("kernel programming", "err", err)
	}
}

// logRoutes logs the routes about to change (debug level).
func (d *Daemon) logRoutes(routes iter.Seq[dataplane.Route]) {
	if !d.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	for r := range routes {
		if !d.rec.Holds(r) {
			d.log.Debug("kernel route", "sg", r.SG, "iif", d.vifName(r.IIF), "oifs", r.OIFs)
		}
	}
}

// reload re-reads the config. A bad file is rejected whole and the running
// state is kept.
func (d *Daemon) reload(now time.Time) {
	cfg, err := config.Load(d.path, interfaceExists)
	if err != nil {
		d.reloadError = err.Error()
		d.log.Error("reload rejected; keeping the running configuration", "err", err)
		return
	}
	d.reloads++
	d.reloadError = ""
	if cfg.APISocket != d.cfg.APISocket {
		d.log.Warn("api-socket changes apply after a restart", "running", d.cfg.APISocket)
		cfg.APISocket = d.cfg.APISocket
	}
	d.cfg = cfg
	d.setLevel(cfg.LogLevel)
	want := map[string]config.Interface{}
	for _, ic := range cfg.Interfaces {
		want[ic.Name] = ic
	}
	for name, x := range d.ifs {
		if _, ok := want[name]; !ok {
			d.removeInterface(x)
		}
	}
	for _, ic := range cfg.Interfaces {
		x, ok := d.ifs[ic.Name]
		if !ok {
			if err := d.addInterface(ic, now); err != nil {
				d.log.Error("reload: interface", "interface", ic.Name, "err", err)
			}
			continue
		}
		old := igmpConfig(x.cfg)
		neu := igmpConfig(ic)
		x.cfg = ic
		statics := neu.StaticGroups
		old.StaticGroups, neu.StaticGroups = nil, nil
		if fmt.Sprint(old) != fmt.Sprint(neu) {
			// Timer or version changes restart IGMP on the interface; its
			// startup queries relearn membership within one response interval.
			neu.StaticGroups = statics
			var out igmp.Output
			x.igmp, out = igmp.NewInterface(neu, x.addr, now)
			d.log.Info("igmp restarted with new settings", "interface", x.name)
			d.handle(x, out)
			d.reconcile()
			continue
		}
		d.handle(x, x.igmp.SetStaticGroups(statics))
	}
	d.log.Info("configuration reloaded", "config", d.path)
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func readSysctl(p string) string {
	b, err := os.ReadFile("/proc/sys/" + p)
	if err != nil {
		return "?"
	}
	return string(slices.DeleteFunc(b, func(c byte) bool { return c == '\n' }))
}
