package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/dataplane"
	wire "overcast/internal/packet/pim"
)

func pimConf() string { return fmt.Sprintf(pimBase, "10.255.0.11") }

// A stop leaves the forwarder's routes for the next run, whatever the
// goodbyes change (only a stop that asks flushes them: TestStopActionFlushes).
func TestStopLeavesRoutes(t *testing.T) {
	h := newHarness(t, igmpOnly)
	h.report("eth1", "10.0.1.10", asm("239.1.1.1"))
	h.data("eth0", "10.0.0.10", "239.1.1.1")
	k := sgOf("10.0.0.10", "239.1.1.1")
	before, ok := h.fw.Routes[k]
	if !ok {
		t.Fatal("no route to start from")
	}
	h.d.Stop(h.now)
	if r, ok := h.fw.Routes[k]; !ok || r.IIF != before.IIF || len(r.OIFs) != len(before.OIFs) {
		t.Fatalf("after a stop the route is %+v (%v); want it left as %+v", r, ok, before)
	}
}

// runLive runs the harness's daemon under the real loop, returning what
// Run returned.
func runLive(t *testing.T, h *harness) (errc chan error, c *api.Client) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	h.d.cfg.APISocket = sock
	errc = make(chan error, 1)
	h.now = time.Now() // the live loop's clock
	// Run starts the daemon itself: a fresh one over the same seams.
	nd, err := New(h.path, h.env, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	nd.cfg.APISocket = sock
	h.fw.ForgetInterfaces()
	h.d = nd
	go func() { errc <- nd.Run(context.Background(), nil) }()
	c = api.NewClient(sock)
	for i := 0; ; i++ {
		if _, err := c.Status(); err == nil {
			break
		}
		select {
		case err := <-errc:
			t.Fatalf("Run: %v", err)
		default:
		}
		if i > 200 {
			t.Fatal("the daemon's API never answered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errc, c
}

// The stop action answers, then the loop ends; with flush the
// forwarder's routes go too.
func TestStopActionFlushes(t *testing.T) {
	h := newHarness(t, igmpOnly)
	k := sgOf("10.0.0.10", "239.1.1.1")
	h.fw.Routes[k] = dataplane.Route{SG: k, IIF: "eth0", OIFs: []string{"eth1"}}
	errc, c := runLive(t, h)
	var lc api.Lifecycle
	if err := c.PostJSON(api.PathStop, api.StopRequest{Flush: true}, &lc); err != nil || lc.Action != "stopping" {
		t.Fatalf("stop: %+v %v", lc, err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not end")
	}
	if rs, _ := h.fw.ListRoutes(); len(rs) != 0 {
		n := len(rs)
		t.Fatalf("stop --flush left %d routes", n)
	}
}

// A restart whose successor does not run is refused and the daemon runs
// on; one that does ends the loop with ErrRestart, routes untouched and
// the generation IDs in the handover; the successor says Hello with them
// and knows its neighbours at once.
func TestRestartHandsOver(t *testing.T) {
	var checked []string
	h := newHarnessWith(t, pimConf(), func(h *harness, env *Env) {
		env.CheckSuccessor = func(bin string) error {
			checked = append(checked, bin)
			if bin == "/bad" {
				return errors.New("/bad --version: exit status 1")
			}
			return nil
		}
		env.Rand32 = func() uint32 { return 0x1111 }
	})
	errc, c := runLive(t, h)
	// A neighbour, through the live loop.
	h.d.post(func() { h.hello("eth1", "10.0.1.2") })
	k := sgOf("10.0.0.10", "239.1.1.1")
	h.d.post(func() { h.fw.Routes[k] = dataplane.Route{SG: k, IIF: "eth0", OIFs: []string{"eth1"}} })
	var lc api.Lifecycle
	if err := c.PostJSON(api.PathRestart, api.RestartRequest{Binary: "/bad"}, &lc); err == nil {
		t.Fatal("a successor that cannot run was accepted")
	}
	if _, err := c.Status(); err != nil {
		t.Fatalf("after a refused restart the daemon does not answer: %v", err)
	}
	if err := c.PostJSON(api.PathRestart, api.RestartRequest{Binary: "/next"}, &lc); err != nil || lc.Action != "restarting" {
		t.Fatalf("restart: %+v %v", lc, err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrRestart) {
			t.Fatalf("Run returned %v, want ErrRestart", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not end")
	}
	if h.d.RestartBinary() != "/next" || len(checked) != 2 {
		t.Fatalf("successor %q, checked %v", h.d.RestartBinary(), checked)
	}
	if _, ok := h.fw.Routes[k]; !ok {
		t.Fatal("the handover touched the routes")
	}
	for _, m := range h.sentPIM() {
		if hl, ok := m.m.(*wire.Hello); ok && hl.Holdtime == 0 {
			t.Fatalf("a goodbye went out at the handover on %s", m.iface)
		}
	}
	ho := h.d.HandoverState(h.now)
	if ho.GenIDs["eth1"] != 0x1111 || len(ho.Hellos["eth1"]) != 1 || ho.Count != 1 {
		t.Fatalf("handover %+v", ho)
	}

	// The successor: other random numbers, the handover's IDs.
	env := h.env
	env.Rand32 = func() uint32 { return 0x2222 }
	env.Handover = &ho
	d2, err := New(h.path, env, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	h.io.Take()
	h.fw.ForgetInterfaces()
	if err := d2.Start(h.now); err != nil {
		t.Fatal(err)
	}
	if g := d2.PIM().Interface("eth1").GenerationID(); g != 0x1111 {
		t.Errorf("the successor's generation ID on eth1 is %#x, want the predecessor's 0x1111", g)
	}
	if d2.PIM().Interface("eth1").Neighbor(mustAddr("10.0.1.2")) == nil {
		t.Error("the successor does not know the neighbour the predecessor had")
	}
	if st, _ := d2.View(h.now, api.PathStatus, ""); st.(api.Status).Handovers != 1 || st.(api.Status).AdoptedRoutes != 1 {
		t.Errorf("status after the handover: %+v", st)
	}
}
