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
	// left are the VIFs a predecessor left in the table, by VIF number,
	// until an interface of this run claims its own (AddInterface) or
	// Start removes the rest.
	left     map[int]linuxmr.VIF
	handover int         // an inherited routing socket's descriptor (0: none)
	quiet    atomic.Bool // Quiesce: a successor reads the routing socket
}

// Options are what a predecessor hands over.
type Options struct {
	// RoutingFD is the multicast routing socket a predecessor handed over
	// (0: open one).
	RoutingFD int
}

// Open prepares the host's seams. The kernel's multicast routing table is
// claimed (MRT_INIT) when the first interface or the register VIF is
// added, or taken over from a predecessor (Options.RoutingFD); only one
// process per network namespace may hold it. The VIFs a predecessor left
// are noted, to be adopted by the interfaces they serve.
func Open(log *slog.Logger, o Options) (*Host, error) {
	h := &Host{log: log, rt: rpf.New(), ifindex: map[string]int{}, byIndex: map[int]string{}, left: map[int]linuxmr.VIF{}, handover: o.RoutingFD}
	if vs, err := linuxmr.VIFs(); err == nil {
		for _, v := range vs {
			h.left[v.Index] = v
			h.vifs.reserve(v.Index)
		}
	}
	if o.RoutingFD > 0 {
		// Taken now: the descriptor is only valid in this process.
		if _, err := h.mroute(); err != nil {
			return nil, err
		}
	}
	return h, nil
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
	var mr *linuxmr.Socket
	var err error
	if h.handover > 0 {
		mr, err = linuxmr.FromFD(h.handover)
		h.handover = 0
	} else {
		mr, err = linuxmr.Open()
	}
	if err != nil {
		return nil, err
	}
	h.mr.Store(mr)
	if h.sink != nil {
		go h.readMR(h.ctx, h.sink, mr)
	}
	return mr, nil
}

// Close releases the table. The kernel stops forwarding; its VIFs and
// routes stay for the next run to adopt (Flush removes them).
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
	byName   map[string]int
	names    [linuxmr.MaxVIFs]string
	reserved [linuxmr.MaxVIFs]bool // a predecessor's, not yet claimed or removed
}

// reserve keeps VIF v from Alloc: the kernel has it.
func (t *VIFTable) reserve(v int) { t.reserved[v] = true }

// release ends a reservation (the VIF was removed).
func (t *VIFTable) release(v int) { t.reserved[v] = false }

// Claim gives name the VIF v a predecessor left.
func (t *VIFTable) Claim(name string, v int) {
	if t.byName == nil {
		t.byName = map[string]int{}
	}
	t.reserved[v] = false
	t.names[v] = name
	t.byName[name] = v
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
		if n == "" && !t.reserved[v] {
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
	if lv, ok := h.leftVIF(func(v linuxmr.VIF) bool { return !v.Register && v.Name == name }); ok {
		if lv.IfIndex == ifindex {
			// The predecessor's VIF for this very device: kept, and with
			// it every route through it.
			h.vifs.Claim(name, lv.Index)
			h.ifindex[name] = ifindex
			h.byIndex[ifindex] = name
			h.log.Info("adopted the VIF a previous run left", "interface", name, "vif", lv.Index)
			return nil
		}
		// The device was re-created since: its old VIF is stale.
		if err := mr.DelVIF(lv.Index); err != nil {
			h.log.Warn("removing a stale VIF a previous run left", "interface", name, "vif", lv.Index, "err", err)
		} else {
			h.vifs.release(lv.Index)
		}
	}
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
	if lv, ok := h.leftVIF(func(v linuxmr.VIF) bool { return v.Register }); ok {
		h.vifs.Claim(dataplane.RegisterName, lv.Index)
		return nil
	}
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

// leftVIF takes the first VIF a predecessor left that match accepts out
// of the left set. h.mu is held.
func (h *Host) leftVIF(match func(linuxmr.VIF) bool) (linuxmr.VIF, bool) {
	for i, v := range h.left {
		if match(v) {
			delete(h.left, i)
			return v, true
		}
	}
	return linuxmr.VIF{}, false
}

// vifName is VIF v's interface: this run's, or the device a predecessor's
// VIF serves. h.mu is held.
func (h *Host) vifName(v int) string {
	if n := h.vifs.Name(v); n != "" {
		return n
	}
	if lv, ok := h.left[v]; ok {
		if lv.Register {
			return dataplane.RegisterName
		}
		return lv.Name
	}
	return ""
}

// ListRoutes reads the routes the kernel holds, in interface names: a
// predecessor's too, before this run has a socket.
func (h *Host) ListRoutes() ([]dataplane.Route, error) {
	var out []dataplane.Route
	h.mu.Lock()
	defer h.mu.Unlock()
	err := linuxmr.Routes(func(k dataplane.SG, iif int, oifs []int) {
		r := dataplane.Route{SG: k, IIF: h.vifName(iif)}
		for _, o := range oifs {
			if n := h.vifName(o); n != "" {
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
	h.dropLeftVIFs()
	if err := rpf.Subscribe(ctx, sink.RoutingChanged); err != nil {
		h.log.Warn("route notifications unavailable; RPF changes are seen on the periodic refresh only", "err", err)
	}
	return nil
}

// reads calls read until ctx ends or the socket closes; a failed read is
// logged and retried.
func (h *Host) reads(ctx context.Context, socket string, read func() error) {
	for ctx.Err() == nil && !h.quiet.Load() {
		if err := read(); err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) || h.quiet.Load() {
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

// dropLeftVIFs removes the VIFs a predecessor left that no interface of
// this run claimed (the daemon removed their routes at its first pass).
// Without a routing socket (no interface) they are left alone.
func (h *Host) dropLeftVIFs() {
	mr := h.mr.Load()
	h.mu.Lock()
	defer h.mu.Unlock()
	if mr == nil {
		return
	}
	for i, v := range h.left {
		if err := mr.DelVIF(i); err != nil {
			h.log.Warn("removing a VIF a previous run left", "vif", i, "device", v.Name, "err", err)
			continue
		}
		h.vifs.release(i)
		delete(h.left, i)
		h.log.Info("removed a VIF a previous run left for an interface this one does not run on", "vif", i, "device", v.Name)
	}
}

// Flush removes every VIF and route from the kernel's table, those a
// previous run left too (a stop with --flush).
func (h *Host) Flush() error {
	mr := h.mr.Load()
	if mr == nil {
		return nil
	}
	return mr.Flush()
}

// Quiesce stops this process reading the routing socket: what arrives
// from now on is queued for the successor.
func (h *Host) Quiesce() {
	h.quiet.Store(true)
	if mr := h.mr.Load(); mr != nil {
		mr.SetReadDeadline(time.Unix(1, 0))
	}
}

// RoutingFD is the routing socket's descriptor made inheritable, for a
// successor exec'd in this process (0: no socket open).
func (h *Host) RoutingFD() (int, error) {
	mr := h.mr.Load()
	if mr == nil {
		return 0, nil
	}
	return mr.FD()
}
