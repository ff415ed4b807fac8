package daemon

// The in-process harness: one real daemon on the fake forwarder, fake
// packet I/O, a routing table and a manual clock. No root, no namespaces.

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"overcast/internal/dataplane"
	"overcast/internal/dataplane/fake"
	igmpwire "overcast/internal/packet/igmp"
	"overcast/internal/packet/ip4"
	wire "overcast/internal/packet/pim"
	"overcast/internal/pim"
	"overcast/internal/testkit/schemacheck"
)

var t0 = time.Unix(1_700_000_000, 0)

// links is a host's interfaces.
type links struct {
	ifs   map[string]dataplane.Link
	local []netip.Addr
}

func (l *links) Link(name string) (dataplane.Link, error) {
	x, ok := l.ifs[name]
	if !ok {
		return x, fmt.Errorf("no interface %s", name)
	}
	return x, nil
}

func (l *links) LocalAddrs() []netip.Addr {
	out := slices.Clone(l.local)
	for _, x := range l.ifs {
		out = append(out, x.Addr)
	}
	return out
}

// table is a unicast routing table: longest prefix wins.
type table struct {
	routes      map[netip.Prefix]pim.RPF
	invalidated int
}

func (t *table) Lookup(a netip.Addr) (pim.RPF, bool) {
	best, bits, ok := pim.RPF{}, -1, false
	for p, r := range t.routes {
		if p.Contains(a) && p.Bits() > bits {
			best, bits, ok = r, p.Bits(), true
		}
	}
	return best, ok
}

func (t *table) Invalidate() { t.invalidated++ }

type harness struct {
	t    testing.TB
	d    *Daemon
	fw   *fake.Forwarder
	io   *fake.PacketIO
	ln   *links
	rt   *table
	path string
	now  time.Time
	env  Env
}

// newHarness writes the config and starts a daemon whose interfaces are
// eth0 (10.0.0.1/24), eth1 (10.0.1.1/24) ... eth9; lo holds 10.255.0.1.
func newHarness(t testing.TB, yaml string) *harness { return newHarnessWith(t, yaml, nil) }

// newHarnessWith lets a test change the host and the Env before start.
func newHarnessWith(t testing.TB, yaml string, hook func(h *harness, env *Env)) *harness {
	t.Helper()
	h := &harness{t: t, fw: fake.New(), io: fake.NewPacketIO(), now: t0,
		ln: &links{ifs: map[string]dataplane.Link{}, local: []netip.Addr{netip.MustParseAddr("10.255.0.1")}},
		rt: &table{routes: map[netip.Prefix]pim.RPF{}}}
	for i := range 10 {
		name := fmt.Sprintf("eth%d", i)
		h.ln.ifs[name] = dataplane.Link{Index: i + 2, Addr: netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), Prefixes: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), 0}), 24)}, Multicast: true}
		h.rt.routes[netip.MustParsePrefix(fmt.Sprintf("10.0.%d.0/24", i))] = pim.RPF{Iface: name, Protocol: "connected"}
	}
	h.path = filepath.Join(t.TempDir(), "overcast.yaml")
	h.write(yaml)
	var err error
	env := Env{Forwarder: h.fw, IO: h.io, Links: h.ln, Routing: h.rt,
		Jitter: func(max time.Duration) time.Duration { return max / 2 }, Rand32: func() uint32 { return 0x1234 },
		Now: func() time.Time { return h.now }}
	if hook != nil {
		hook(h, &env)
	}
	h.env = env
	h.d, err = New(h.path, env, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.d.Start(h.now); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) write(yaml string) {
	h.t.Helper()
	if err := os.WriteFile(h.path, []byte(yaml), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// run advances the clock by d, firing timers and ticks in order.
func (h *harness) run(d time.Duration) {
	end := h.now.Add(d)
	for i := 0; ; i++ {
		next := h.d.NextDeadline()
		if next.IsZero() || next.After(end) {
			break
		}
		if i > 100000 {
			h.t.Fatalf("timers stuck: deadline %v at %v does not move after Advance", next, h.now)
		}
		h.now = maxTime(h.now, next)
		h.d.Advance(h.now)
		h.d.EndBurst(h.now)
	}
	h.now = end
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// report delivers an IGMPv3 report from host src on iface.
func (h *harness) report(iface, src string, recs ...igmpwire.GroupRecord) {
	hd := ip4.Header{TOS: 0xc0, TTL: 1, Protocol: ip4.ProtoIGMP, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr("224.0.0.22"), Options: ip4.OptRouterAlert}
	h.d.Packet(h.now, iface, dataplane.IGMP, hd.Marshal((&igmpwire.V3Report{Records: recs}).Marshal()))
	h.d.EndBurst(h.now)
}

func asm(g string) igmpwire.GroupRecord {
	return igmpwire.GroupRecord{Type: igmpwire.ChangeToExclude, Group: netip.MustParseAddr(g)}
}

func ssm(g string, srcs ...string) igmpwire.GroupRecord {
	r := igmpwire.GroupRecord{Type: igmpwire.AllowNewSources, Group: netip.MustParseAddr(g)}
	for _, s := range srcs {
		r.Sources = append(r.Sources, netip.MustParseAddr(s))
	}
	return r
}

// pim delivers a PIM message from src on iface.
func (h *harness) pim(iface, src string, m wire.Message) {
	dst := wire.AllPIMRouters
	hd := ip4.Header{TOS: 0xc0, TTL: 1, Protocol: ip4.ProtoPIM, Src: netip.MustParseAddr(src), Dst: dst}
	h.d.Packet(h.now, iface, dataplane.PIM, hd.Marshal(m.Marshal()))
	h.d.EndBurst(h.now)
}

// hello delivers a neighbour's hello.
func (h *harness) hello(iface, src string) {
	h.pim(iface, src, wire.NewHello(105, 500, 2500, false, 1, 0xabcd, nil))
}

// data is a packet of (s, g) arriving on iface: the forwarder's upcall
// when it has no route, then forwarding as the kernel would.
func (h *harness) data(iface, s, g string) []string {
	k := dataplane.SG{Source: netip.MustParseAddr(s), Group: netip.MustParseAddr(g)}
	out, _, up := h.fw.Forward(k, iface, 100)
	if up != nil {
		h.d.Upcall(h.now, *up)
		h.d.EndBurst(h.now)
		if up.Kind == dataplane.WrongVIF {
			return nil
		}
		out, _, _ = h.fw.Forward(k, iface, 100)
	}
	return out
}

// sentPIM returns and forgets the PIM messages sent, parsed.
func (h *harness) sentPIM() []sentMsg {
	var out []sentMsg
	for _, s := range h.io.Take() {
		if s.Proto != dataplane.PIM {
			continue
		}
		m, err := wire.Parse(s.Pkt)
		if err != nil {
			h.t.Fatalf("daemon sent a PIM message that does not parse: %v", err)
		}
		out = append(out, sentMsg{s.Iface, s.Dst, m})
	}
	return out
}

type sentMsg struct {
	iface string
	dst   netip.Addr
	m     wire.Message
}

// joins finds the join/prunes sent on iface to upstream neighbour nbr:
// the (*,G) or (S,G) joins and prunes as "G" / "S,G" strings.
func joins(msgs []sentMsg, iface, nbr string) (js, ps []string) {
	for _, s := range msgs {
		jp, ok := s.m.(*wire.JoinPrune)
		if !ok || s.iface != iface || jp.Upstream != netip.MustParseAddr(nbr) {
			continue
		}
		for _, gs := range jp.Groups {
			name := func(src wire.Source) string {
				if src.WC {
					return "*," + gs.Group.Prefix.Addr().String()
				}
				return src.Addr.String() + "," + gs.Group.Prefix.Addr().String()
			}
			for _, j := range gs.Joins {
				js = append(js, name(j))
			}
			for _, p := range gs.Prunes {
				ps = append(ps, name(p))
			}
		}
	}
	return
}

// hellos are the hellos sent on iface, by holdtime.
func hellos(msgs []sentMsg, iface string) (holds []uint16, prios []uint32) {
	for _, s := range msgs {
		if hl, ok := s.m.(*wire.Hello); ok && s.iface == iface {
			holds = append(holds, hl.Holdtime)
			prios = append(prios, hl.DRPriority)
		}
	}
	return
}

// restart replaces the daemon with a new one over the same forwarder and
// packet I/O, as a restart that keeps the kernel's table: the routes stay,
// the new daemon adopts them (false: the config no longer loads).
func (h *harness) restart() bool {
	d, err := New(h.path, h.env, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return false
	}
	h.fw.ForgetInterfaces()
	if err := d.Start(h.now); err != nil {
		h.t.Fatalf("restart: %v", err)
	}
	h.d = d
	return true
}

// checkViews validates every view the daemon answers (with src and g as
// arguments) against docs/api.schema.json, as the API encodes it; views
// of components that are off answer with an error and are skipped.
func (h *harness) checkViews(src, g string) {
	h.t.Helper()
	schemacheck.Views(h.t, func(path, arg string) (any, error) { return h.d.View(h.now, path, arg) }, g, src)
}
