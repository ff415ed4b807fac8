package daemon

import (
	"context"
	"net/netip"
	"os"
	"sync"
	"time"

	"overcast/internal/api"
	"overcast/internal/dataplane"
)

// loop is the real-time driver's state: the event queue and whether the
// loop has exited.
type loop struct {
	events chan func()
	// api is the API's lane: served before any queued event, so a flood
	// that fills events delays an answer by one event, not by the queue.
	api  chan func()
	quit chan exitReq  // a restart or stop asked for
	done chan struct{} // closed when the loop exits
	once sync.Once
	live bool // Run is driving the daemon (real time, real goroutines)
}

func (l *loop) init() {
	l.events = make(chan func(), 1024)
	l.api = make(chan func(), 64)
	l.quit = make(chan exitReq, 1)
	l.done = make(chan struct{})
}

func (l *loop) exited() { l.once.Do(func() { close(l.done) }) }

// ErrStopped is what an API call gets once the loop has exited.
var ErrStopped = api.ErrUnavailable

// post queues f for the loop; after the loop has exited it is dropped.
func (d *Daemon) post(f func()) {
	select {
	case d.loop.events <- f:
	case <-d.loop.done:
	}
}

// call runs f on the loop and waits: how API reads see consistent state.
// Once the loop has exited it returns ErrStopped instead of waiting.
func (d *Daemon) call(f func()) error {
	ran := make(chan struct{})
	select {
	case d.loop.api <- func() { f(); close(ran) }:
	case <-d.loop.done:
		return ErrStopped
	}
	select {
	case <-ran:
		return nil
	case <-d.loop.done:
		return ErrStopped
	}
}

// handlers are the views served through the loop.
func (d *Daemon) handlers() map[string]api.Handler {
	out := map[string]api.Handler{}
	for path, h := range d.viewFuncs() {
		out[path] = func(arg string) (any, error) {
			var v any
			var err error
			if cerr := d.call(func() { v, err = h(time.Now(), arg) }); cerr != nil {
				return nil, cerr
			}
			return v, err
		}
	}
	d.lifecycleHandlers(out)
	return out
}

// sink turns the planes' reports into loop events.
type sink struct{ d *Daemon }

func (s sink) Packet(iface string, proto dataplane.Proto, pkt []byte) {
	s.d.post(func() { s.d.Packet(time.Now(), iface, proto, pkt) })
}

func (s sink) Upcall(up dataplane.Upcall) {
	s.d.post(func() { s.d.Upcall(time.Now(), up) })
}

func (s sink) StreamUp(id dataplane.StreamID, local, remote netip.AddrPort, inbound bool) {
	s.d.post(func() { s.d.StreamUp(time.Now(), id, local, remote, inbound) })
}

func (s sink) StreamFailed(id dataplane.StreamID, err error) {
	s.d.post(func() { s.d.StreamFailed(time.Now(), id, err) })
}

func (s sink) StreamData(id dataplane.StreamID, b []byte) {
	s.d.post(func() { s.d.StreamData(time.Now(), id, b) })
}

func (s sink) StreamDown(id dataplane.StreamID, err error) {
	s.d.post(func() { s.d.StreamDown(time.Now(), id, err) })
}

func (s sink) OverlayControl(from netip.AddrPort, b []byte) {
	s.d.post(func() { s.d.OverlayControl(time.Now(), from, b) })
}

func (s sink) RoutingChanged() {
	s.d.post(func() { s.d.RoutingChanged(time.Now()) })
}

// Run starts the daemon, serves the API and loops until ctx ends or a
// stop or restart is asked for: the one goroutine that owns the state.
// hup delivers reload requests. It returns ErrRestart when the daemon
// stopped to hand over to a successor.
func (d *Daemon) Run(ctx context.Context, hup <-chan os.Signal) error {
	defer d.loop.exited()
	d.loop.live = true // before Start: PIM's switch guard depends on it
	if err := d.Start(time.Now()); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if d.env.Start != nil {
		if err := d.env.Start(ctx, sink{d}); err != nil {
			return err
		}
	}
	// The API outlives the loop by the moment its last answers take (a
	// restart's or a stop's is written before the process goes).
	ln, err := api.Listen(d.cfg.APISocket)
	if err != nil {
		return err
	}
	apiCtx, apiStop := context.WithCancel(context.Background())
	defer apiStop()
	var apis sync.WaitGroup
	apiErr := make(chan error, 2)
	serve := func(f func(context.Context) error) {
		apis.Add(1)
		go func() { defer apis.Done(); apiErr <- f(apiCtx) }()
	}
	handlers := d.handlers()
	serve(func(c context.Context) error { return api.ServeOn(c, ln, d.cfg.APISocket, handlers) })
	if d.cfg.Metrics != "" {
		serve(func(c context.Context) error { return api.ServeMetrics(c, d.cfg.Metrics, handlers) })
		d.log.Info("prometheus metrics", "url", "http://"+d.cfg.Metrics+"/metrics")
	}
	if d.env.Ready != nil {
		d.env.Ready()
	}
	err = d.loopUntilExit(ctx, hup, apiErr)
	d.loop.exited()
	apiStop()
	apis.Wait()
	return err
}

// loopUntilExit is the loop itself; it ends the daemon as its exit asks.
func (d *Daemon) loopUntilExit(ctx context.Context, hup <-chan os.Signal, apiErr <-chan error) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	rearm := func(now time.Time) {
		wait := time.Hour
		if next := d.NextDeadline(); !next.IsZero() {
			wait = max(next.Sub(now), 0)
		}
		timer.Reset(wait)
	}
	rearm(time.Now())
	burst := 0
	for {
		d.serveAPI()
		select {
		case f := <-d.loop.api:
			f()
		case <-ctx.Done():
			d.log.Info("overcast stopping; the kernel's routes stay for the next start")
			d.Stop(time.Now())
			return nil
		case r := <-d.loop.quit:
			d.exit = r
			// What the sockets delivered is handled first: for a
			// restart, the readers stop (the successor reads the rest).
			if r.restart && d.env.Quiesce != nil {
				d.env.Quiesce()
			}
			d.drainEvents()
			if r.restart {
				d.log.Info("overcast handing over to a successor", "binary", r.binary)
				d.stopForHandover()
				return ErrRestart
			}
			d.Stop(time.Now())
			if r.flush {
				if fl, ok := d.env.Forwarder.(dataplane.Flusher); ok {
					if err := fl.Flush(); err != nil {
						d.log.Warn("stop --flush", "err", err)
						return err
					}
				}
				d.log.Info("overcast stopped; the kernel's routes and VIFs removed")
			} else {
				d.log.Info("overcast stopped; the kernel's routes stay for the next start")
			}
			return nil
		case err := <-apiErr:
			if err != nil {
				return err
			}
		case f := <-d.loop.events:
			f()
		case <-timer.C:
			d.Advance(time.Now())
		case now := <-tick.C:
			d.Tick(now)
		case <-hup:
			d.ReloadFile(time.Now())
		}
		// Join/prunes from a burst of events go out together, packed,
		// when the queue runs dry (or every 256 events under load); so
		// do route changes: one pass per burst, not one per IGMP record.
		if burst++; len(d.loop.events) == 0 || burst >= 256 {
			burst = 0
			d.EndBurst(time.Now())
		}
		rearm(time.Now())
	}
}

// serveAPI answers the API calls waiting, ahead of the events.
func (d *Daemon) serveAPI() {
	for {
		select {
		case f := <-d.loop.api:
			f()
		default:
			return
		}
	}
}

// drainEvents handles every event queued, then ends the burst.
func (d *Daemon) drainEvents() {
	for {
		select {
		case f := <-d.loop.events:
			f()
		default:
			d.EndBurst(time.Now())
			return
		}
	}
}

// watchSPTSwitch watches a flow waiting to move to the SPT: its first
// packet came by the SPT and was dropped (wrong interface). Every SPT copy
// dropped from then on moves the route's wrong-interface counter; every
// shared-tree copy forwarded moves its packet counter. Switching is safe
// the moment every packet whose SPT copy was dropped has had its shared
// copy forwarded: packets forwarded since the start exceed SPT copies
// dropped since (the first one was dropped before the start). The watcher
// catches that moment right after a shared copy goes through (the next
// packet is a whole interval away); after switchWait it takes the moment
// after any shared copy. The loop re-checks before switching
// (pimComp.completeSPTSwitch). It runs on its own goroutine, reads only
// the forwarder's counters (safe to share) and posts its result to the
// loop. Without the real-time loop (synchronous tests) PIM's guard timer
// does the switch.
func (l *loop) watchSPTSwitch(d *Daemon, k dataplane.SG, guard time.Duration) {
	if !l.live {
		return
	}
	fw := d.env.Forwarder
	go func() {
		base, err := fw.SGCount(k)
		if err != nil {
			return
		}
		start := time.Now()
		last := base
		for time.Since(start) < guard {
			c, err := fw.SGCount(k)
			if err != nil {
				return
			}
			if c.Packets != last.Packets {
				caughtUp := c.Packets-base.Packets > c.WrongIf-base.WrongIf
				if caughtUp || time.Since(start) > switchWait {
					d.post(func() {
						if d.pim != nil {
							d.pim.completeSPTSwitch(time.Now(), k, c)
						}
					})
					return
				}
			}
			last = c
			time.Sleep(5 * time.Microsecond)
		}
	}()
}

// switchWait is how long the SPT watcher waits for the shared tree to
// catch up before it switches after any shared copy.
const switchWait = 3 * time.Millisecond
