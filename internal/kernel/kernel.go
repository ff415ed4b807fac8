// Package kernel is the daemon's seams on a real Linux host: a forwarder
// over the kernel's multicast forwarding cache (linuxmr), packet I/O on
// the multicast routing socket (IGMP) and a raw PIM socket, interface
// facts from the host, and unicast routing from netlink (rpf). It maps the
// daemon's interface names to kernel VIF numbers; nothing above it sees one.
package kernel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"overcast/internal/dataplane"
	"overcast/internal/dataplane/linuxmr"
	"overcast/internal/igmp"
	"overcast/internal/rpf"
)

// Host implements dataplane.Forwarder, Registerer, RouteLister, PacketIO
// and Links, and carries the kernel's unicast routes (Routing).
type Host struct {
	log *slog.Logger
	// mr is the multicast routing socket, opened (MRT_INIT) at the first
	// interface: a daemon that only mirrors runs on a kernel that cannot
	// route multicast, and holds no routing socket another router wants.
	mr   atomic.Pointer[linuxmr.Socket]
	mrMu sync.Mutex // serialises the open
	ctx  context.Context
	sink dataplane.Sink // where the routing socket's reader posts, once Start ran
	pimS *linuxmr.PIMSocket
	rt   *rpf.Kernel

	injFD int // raw IPPROTO_RAW socket for Inject; 0 until first use

	mu      sync.Mutex // the VIF table: read by the reader goroutine
	ovl     *overlayIO // the overlay's data path, once made (replication lists)
	vifs    VIFTable
	ifindex map[string]int
	byIndex map[int]string
}

// Open prepares the host's seams. The kernel's multicast routing table is
// claimed (MRT_INIT) when the first interface or the register VIF is
// added; only one process per network namespace may hold it.
func Open(log *slog.Logger) (*Host, error) {
	return &Host{log: log, rt: rpf.New(), ifindex: map[string]int{}, byIndex: map[int]string{}}, nil
}

// mroute is the multicast routing socket, opened on first use. Once Start
// has run, its reader starts with it.
func (h *Host) mroute() (*linuxmr.Socket, error) {
	if mr := h.mr.Load(); mr != nil {
		return mr, nil
	}
	h.mrMu.Lock()
	defer h.mrMu.Unlock()
	if mr := h.mr.Load(); mr != nil {
		return mr, nil
	}
	mr, err := linuxmr.Open()
	if err != nil {
		return nil, err
	}
	h.mr.Store(mr)
	if h.sink != nil {
		go h.readMR(h.ctx, h.sink, mr)
	}
	return mr, nil
}

// Close releases the table; the kernel flushes every VIF and route.
func (h *Host) Close() error {
	if h.pimS != nil {
		h.pimS.Close()
	}
	if mr := h.mr.Load(); mr != nil {
		return mr.Close()
	}
	return nil
}

// Routing is the kernel's unicast routing table.
func (h *Host) Routing() *rpf.Kernel { return h.rt }

// VIFTable hands out kernel VIF numbers: every interface and the register
// VIF share one space of linuxmr.MaxVIFs, so none can collide.
type VIFTable struct {
	byName map[string]int
	names  [linuxmr.MaxVIFs]string
}

// Alloc gives name the lowest free VIF.
func (t *VIFTable) Alloc(name string) (int, error) {
	if t.byName == nil {
		t.byName = map[string]int{}
	}
	if v, ok := t.byName[name]; ok {
		return v, fmt.Errorf("%s already has VIF %d", name, v)
	}
	for v, n := range t.names {
		if n == "" {
			t.names[v] = name
			t.byName[name] = v
			return v, nil
		}
	}
	return 0, fmt.Errorf("%s: all %d kernel VIFs are in use (the kernel's multicast routing table has no more; remove an interface)", name, linuxmr.MaxVIFs)
}

// Free releases name's VIF.
func (t *VIFTable) Free(name string) {
	if v, ok := t.byName[name]; ok {
		t.names[v] = ""
		delete(t.byName, name)
	}
}

// VIF is name's VIF.
func (t *VIFTable) VIF(name string) (int, bool) {
	v, ok := t.byName[name]
	return v, ok
}

// Name is the interface on VIF v.
func (t *VIFTable) Name(v int) string {
	if v < 0 || v >= len(t.names) {
		return ""
	}
	return t.names[v]
}

func (h *Host) AddInterface(name string, ifindex int) error {
	mr, err := h.mroute()
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	v, err := h.vifs.Alloc(name)
	if err != nil {
		return err
	}
	if err := mr.AddVIF(linuxmr.VIF{Index: v, IfIndex: ifindex, Name: name}); err != nil {
		h.vifs.Free(name)
		return err
	}
	h.ifindex[name] = ifindex
	h.byIndex[ifindex] = name
	return nil
}

func (h *Host) DelInterface(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.vifs.VIF(name)
	if !ok {
		return fmt.Errorf("%s has no VIF", name)
	}
	h.vifs.Free(name)
	delete(h.byIndex, h.ifindex[name])
	delete(h.ifindex, name)
	return h.mr.Load().DelVIF(v) // a VIF means the socket is open
}

// EnableRegister turns on the kernel's PIM support and adds the register VIF.
func (h *Host) EnableRegister() error {
	mr, err := h.mroute()
	if err != nil {
		return err
	}
	if err := mr.EnablePIM(); err != nil {
		return err
	}
	if err := h.openPIM(); err != nil { // Registers arrive unicast, on any interface
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	v, err := h.vifs.Alloc(dataplane.RegisterName)
	if err != nil {
		return err
	}
	if err := mr.AddRegisterVIF(v); err != nil {
		h.vifs.Free(dataplane.RegisterName)
		return err
	}
	return nil
}

// VIF is an interface's VIF number (for `show igmp interface`).
func (h *Host) VIF(name string) (int, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.vifs.VIF(name)
}

func (h *Host) SetRoute(r dataplane.Route) error {
	h.mu.Lock()
	ovl := h.ovl
	if ovl == nil && len(r.Peers) > 0 {
		h.mu.Unlock()
		return fmt.Errorf("route %v: peers but no overlay on this host", r.SG)
	}
	iif, ok := h.vifs.VIF(r.IIF)
	var oifs []int
	var missing string
	for _, o := range r.OIFs {
		v, okO := h.vifs.VIF(o)
		if !okO {
			missing = o
			break
		}
		oifs = append(oifs, v)
	}
	h.mu.Unlock()
	if !ok {
		return fmt.Errorf("route %v: input %q has no VIF", r.SG, r.IIF)
	}
	if missing != "" {
		return fmt.Errorf("route %v: output %q has no VIF", r.SG, missing)
	}
	if ovl != nil {
		// The list first: the kernel's first packet out of the device
		// finds it.
		ovl.setRoute(r.SG, r.Peers)
	}
	return h.mr.Load().SetRoute(r.SG, iif, oifs) // VIFs mean the socket is open
}

func (h *Host) DelRoute(k dataplane.SG) error {
	h.mu.Lock()
	ovl := h.ovl
	h.mu.Unlock()
	if ovl != nil {
		ovl.delRoute(k)
	}
	mr := h.mr.Load()
	if mr == nil {
		return fmt.Errorf("route %v: no multicast routing socket", k)
	}
	return mr.DelRoute(k)
}

// errNoRouting is a read of the forwarding cache before any interface.
var errNoRouting = errors.New("no interface yet: the kernel's multicast routing table is not open")

func (h *Host) Counters(fn func(dataplane.SG, dataplane.Counters)) error {
	mr := h.mr.Load()
	if mr == nil {
		return nil // no routes
	}
	return mr.Counters(fn)
}

func (h *Host) SGCount(k dataplane.SG) (dataplane.Counters, error) {
	mr := h.mr.Load()
	if mr == nil {
		return dataplane.Counters{}, errNoRouting
	}
	return mr.SGCount(k)
}

// ListRoutes reads the routes the kernel holds, in interface names.
func (h *Host) ListRoutes() ([]dataplane.Route, error) {
	var out []dataplane.Route
	mr := h.mr.Load()
	if mr == nil {
		return nil, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	err := mr.Routes(func(k dataplane.SG, iif int, oifs []int) {
		r := dataplane.Route{SG: k, IIF: h.vifs.Name(iif)}
		for _, o := range oifs {
			if n := h.vifs.Name(o); n != "" {
				r.OIFs = append(r.OIFs, n)
			}
		}
		slices.Sort(r.OIFs)
		out = append(out, r)
	})
	return out, err
}

// Listen joins the link-local groups a protocol's packets are sent to:
// 224.0.0.2 (leaves) and 224.0.0.22 (IGMPv3 reports) for IGMP, on the
// routing socket; 224.0.0.13 for PIM, on the PIM socket (opened on first use).
func (h *Host) Listen(iface string, ifindex int, proto dataplane.Proto) error {
	switch proto {
	case dataplane.IGMP:
		mr, err := h.mroute()
		if err != nil {
			return err
		}
		for _, g := range []netip.Addr{igmp.AllRoutersGroup, igmp.V3ReportsGroup} {
			if err := mr.JoinGroup(ifindex, g); err != nil {
				return err
			}
		}
		return nil
	case dataplane.PIM:
		if err := h.openPIM(); err != nil {
			return err
		}
		return h.pimS.JoinAllPIMRouters(ifindex)
	}
	return fmt.Errorf("listen: unknown protocol %v", proto)
}

func (h *Host) Unlisten(iface string, ifindex int, proto dataplane.Proto) error {
	switch proto {
	case dataplane.IGMP:
		mr := h.mr.Load()
		if mr == nil {
			return nil
		}
		var first error
		for _, g := range []netip.Addr{igmp.AllRoutersGroup, igmp.V3ReportsGroup} {
			if err := mr.LeaveGroup(ifindex, g); err != nil && first == nil {
				first = err
			}
		}
		return first
	case dataplane.PIM:
		if h.pimS == nil {
			return nil
		}
		return h.pimS.LeaveAllPIMRouters(ifindex)
	}
	return nil
}

func (h *Host) openPIM() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pimS != nil {
		return nil
	}
	s, err := linuxmr.OpenPIM()
	if err != nil {
		return err
	}
	h.pimS = s
	return nil
}

func (h *Host) Send(iface string, proto dataplane.Proto, dst netip.Addr, pkt []byte) error {
	ifindex := 0
	if iface != "" {
		h.mu.Lock()
		ifindex = h.ifindex[iface]
		h.mu.Unlock()
		if ifindex == 0 {
			return fmt.Errorf("send on %s: not an interface of this daemon", iface)
		}
	}
	switch proto {
	case dataplane.IGMP:
		mr, err := h.mroute()
		if err != nil {
			return err
		}
		return mr.Send(ifindex, pkt, dst)
	case dataplane.PIM:
		if err := h.openPIM(); err != nil {
			return err
		}
		return h.pimS.Send(ifindex, dst, pkt)
	}
	return fmt.Errorf("send: unknown protocol %v", proto)
}

// Inject implements dataplane.Injector: the packet, header included (TTL
// already decremented), goes out of oif through a raw socket that writes
// its own headers, with multicast loopback off.
func (h *Host) Inject(oif string, pkt []byte) error {
	h.mu.Lock()
	ifindex := h.ifindex[oif]
	fd := h.injFD
	if fd == 0 {
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			h.mu.Unlock()
			return fmt.Errorf("inject: raw socket: %w", err)
		}
		unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0)
		h.injFD, fd = s, s
	}
	h.mu.Unlock()
	if ifindex == 0 {
		return fmt.Errorf("inject on %s: not an interface of this daemon", oif)
	}
	if len(pkt) < 20 {
		return errors.New("inject: not an IPv4 packet")
	}
	dst := [4]byte(pkt[16:20])
	oob := unix.PktInfo4(&unix.Inet4Pktinfo{Ifindex: int32(ifindex)})
	return unix.Sendmsg(fd, pkt, oob, &unix.SockaddrInet4{Addr: dst}, 0)
}

// SendFrom implements dataplane.SourceSender: unicast PIM from src.
func (h *Host) SendFrom(src, dst netip.Addr, proto dataplane.Proto, pkt []byte) error {
	if proto != dataplane.PIM {
		return fmt.Errorf("send from %s: only PIM", src)
	}
	if err := h.openPIM(); err != nil {
		return err
	}
	return h.pimS.SendFrom(src, dst, pkt)
}

// Link reads an interface's index, first IPv4 address and MULTICAST flag.
func (h *Host) Link(name string) (dataplane.Link, error) {
	ni, err := net.InterfaceByName(name)
	if err != nil {
		return dataplane.Link{}, fmt.Errorf("interface %s: %w", name, err)
	}
	l := dataplane.Link{Index: ni.Index, Multicast: ni.Flags&net.FlagMulticast != 0}
	addrs, err := ni.Addrs()
	if err != nil {
		return l, err
	}
	for _, a := range addrs {
		if pn, ok := a.(*net.IPNet); ok {
			if v4 := pn.IP.To4(); v4 != nil {
				ip, _ := netip.AddrFromSlice(v4)
				if !l.Addr.IsValid() {
					l.Addr = ip
				}
				ones, _ := pn.Mask.Size()
				l.Prefixes = append(l.Prefixes, netip.PrefixFrom(ip, ones).Masked())
			}
		}
	}
	if l.Addr.IsValid() {
		return l, nil
	}
	return l, fmt.Errorf("interface %s has %w: IGMP queries need one as their source", name, dataplane.ErrNoIPv4)
}

// LocalAddrs lists every IPv4 address of the host.
func (h *Host) LocalAddrs() []netip.Addr {
	var out []netip.Addr
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if pn, ok := a.(*net.IPNet); ok && pn.IP.To4() != nil {
			ip, _ := netip.AddrFromSlice(pn.IP.To4())
			out = append(out, ip)
		}
	}
	return out
}

// Start delivers packets, upcalls and routing changes to sink until ctx
// ends: one goroutine per socket and netlink's subscription.
func (h *Host) Start(ctx context.Context, sink dataplane.Sink) error {
	h.mrMu.Lock()
	h.ctx, h.sink = ctx, sink
	if mr := h.mr.Load(); mr != nil {
		go h.readMR(ctx, sink, mr)
	}
	h.mrMu.Unlock()
	if h.pimS != nil {
		go h.readPIM(ctx, sink)
	}
	if err := rpf.Subscribe(ctx, sink.RoutingChanged); err != nil {
		h.log.Warn("route notifications unavailable; RPF changes are seen on the periodic refresh only", "err", err)
	}
	return nil
}

// reads calls read until ctx ends or the socket closes; a failed read is
// logged and retried.
func (h *Host) reads(ctx context.Context, socket string, read func() error) {
	for ctx.Err() == nil {
		if err := read(); err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return
			}
			h.log.Warn(socket+" socket read", "err", err)
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// name is the daemon's interface with an ifindex ("" if none).
func (h *Host) name(ifindex int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byIndex[ifindex]
}

func (h *Host) readMR(ctx context.Context, sink dataplane.Sink, mr *linuxmr.Socket) {
	buf := make([]byte, 65536)
	oob := make([]byte, 256)
	h.reads(ctx, "mroute", func() error {
		m, err := mr.Read(buf, oob)
		if err != nil {
			return err
		}
		if u := m.Upcall; u != nil {
			h.mu.Lock()
			name := h.vifs.Name(u.VIF)
			h.mu.Unlock()
			sink.Upcall(dataplane.Upcall{Kind: u.Kind, Iface: name, SG: u.SG, Packet: u.Packet, IPID: u.IPID})
		} else if name := h.name(m.IfIndex); name != "" { // IGMP on other interfaces is not ours
			sink.Packet(name, dataplane.IGMP, slices.Clone(m.Packet))
		}
		return nil
	})
}

func (h *Host) readPIM(ctx context.Context, sink dataplane.Sink) {
	buf := make([]byte, 65536)
	oob := make([]byte, 256)
	h.reads(ctx, "pim", func() error {
		m, err := h.pimS.Read(buf, oob)
		if err == nil {
			sink.Packet(h.name(m.IfIndex), dataplane.PIM, slices.Clone(m.Packet))
		}
		return err
	})
}
