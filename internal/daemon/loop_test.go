package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/dataplane"
	"overcast/internal/dataplane/fake"
	igmpwire "overcast/internal/packet/igmp"
	"overcast/internal/packet/ip4"
	"overcast/internal/pim"
)

// runDaemon runs the real-time loop on fakes, with its API on a socket in
// a temp dir; the sink it gets from Env.Start is returned once started.
func runDaemon(t *testing.T, yaml string) (*Daemon, dataplane.Sink, *api.Client, context.CancelFunc, chan error) {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	path := filepath.Join(dir, "overcast.yaml")
	if err := os.WriteFile(path, []byte("api-socket: "+sock+"\n"+yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	ln := &links{ifs: map[string]dataplane.Link{}}
	rt := &table{routes: map[netip.Prefix]pim.RPF{}}
	for i := range 3 {
		ln.ifs[fmt.Sprintf("eth%d", i)] = dataplane.Link{Index: i + 2, Addr: netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), Multicast: true}
		rt.routes[netip.MustParsePrefix(fmt.Sprintf("10.0.%d.0/24", i))] = pim.RPF{Iface: fmt.Sprintf("eth%d", i)}
	}
	sinks := make(chan dataplane.Sink, 1)
	d, err := New(path, Env{Forwarder: fake.New(), IO: fake.NewPacketIO(), Links: ln, Routing: rt,
		Start: func(ctx context.Context, s dataplane.Sink) error { sinks <- s; return nil }}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	var s dataplane.Sink
	select {
	case s = <-sinks:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("daemon did not start")
	}
	c := api.NewClient(sock)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := c.Status(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("API never answered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return d, s, c, cancel, done
}

// An API call once the loop has exited returns an error instead of
// hanging; so does one queued while it exits.
func TestAPIAfterLoopExit(t *testing.T) {
	d, _, _, cancel, done := runDaemon(t, "interfaces:\n  - name: eth0\n")
	h := d.handlers()[api.PathStatus]
	if _, err := h(""); err != nil {
		t.Fatalf("status while running: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := make(chan error, 1)
	go func() { _, err := h(""); got <- err }()
	select {
	case err := <-got:
		if !errors.Is(err, ErrStopped) {
			t.Fatalf("API call after exit: %v, want ErrStopped", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("API call after the loop exited hangs")
	}
	// Reports after exit are dropped, not blocking the reader.
	for range 2000 {
		d.post(func() {})
	}
}

// The loop under concurrent load: packets and upcalls from reader
// goroutines, API reads over the socket. Run with -race.
func TestLoopConcurrentEventsAndAPI(t *testing.T) {
	_, s, c, cancel, done := runDaemon(t, "interfaces:\n  - name: eth0\n  - name: eth1\n  - name: eth2\n")
	defer func() { cancel(); <-done }()
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				g := netip.AddrFrom4([4]byte{239, 1, byte(r), byte(i)})
				rec := igmpwire.GroupRecord{Type: igmpwire.ChangeToExclude, Group: g}
				hd := ip4.Header{TOS: 0xc0, TTL: 1, Protocol: ip4.ProtoIGMP, Src: netip.MustParseAddr("10.0.1.10"), Dst: netip.MustParseAddr("224.0.0.22"), Options: ip4.OptRouterAlert}
				s.Packet("eth1", dataplane.IGMP, hd.Marshal((&igmpwire.V3Report{Records: []igmpwire.GroupRecord{rec}}).Marshal()))
				s.Upcall(dataplane.Upcall{Kind: dataplane.NoCache, Iface: "eth0", SG: dataplane.SG{Source: netip.MustParseAddr("10.0.0.10"), Group: g}})
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			if _, err := c.MRoutes(); err != nil {
				t.Error(err)
				return
			}
			if _, err := c.IGMPGroups(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rows, err := c.MRoutes()
		if err != nil {
			t.Fatal(err)
		}
		wired := 0
		for _, r := range rows {
			if len(r.OIFs) == 1 && r.OIFs[0].Name == "eth1" && r.Programs {
				wired++
			}
		}
		if wired == 400 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 400 routes out of eth1", wired)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := c.PIMJoins(); err == nil {
		t.Error("pim join view answered on a daemon without PIM")
	}
}
