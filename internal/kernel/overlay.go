package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"overcast/internal/dataplane"
	"overcast/internal/packet/ip4"
	wire "overcast/internal/packet/overlay"
)

// overlayIO is the overlay's data path on a real host: a TUN device that
// is one VIF for every peer, and one UDP socket.
//
// Out: the kernel forwards an (S,G) to the device like to any VIF (or a
// local sender's route points into it); the reader takes each packet from
// the device and sends one copy per peer of the route's replication list
// with sendmmsg. In: a data datagram from a peer is written into the
// device, so the kernel receives it on that VIF and forwards it by its
// own route to the local receivers. A packet that came in this way is
// never read back out of the device, so nothing loops.
type overlayIO struct {
	h    *Host
	cfg  dataplane.OverlayConfig
	tun  *os.File
	conn *net.UDPConn
	pc   *ipv4.PacketConn
	sink dataplane.OverlaySink

	mu      sync.RWMutex
	peers   map[netip.AddrPort]*peerCtr
	routes  map[dataplane.SG][]*peerCtr // replication lists; an empty list: known, nothing to do
	pending map[dataplane.SG]*pendingSG // packets of (S,G)s with no list yet

	stats struct{ notPeer, malformed, looped, noRoute, tooBig atomic.Uint64 }
	done  chan struct{}
}

type peerCtr struct {
	addr             netip.AddrPort
	udp              *net.UDPAddr
	pktIn, bytesIn   atomic.Uint64
	pktOut, bytesOut atomic.Uint64
	sendErrors       atomic.Uint64
	up               atomic.Bool // data is accepted only from peers that are up
}

// pendingSG holds the first packets of an (S,G) leaving the device before
// the daemon has set its list (a host's own sender starting): the daemon
// hears of it by an upcall, and the packets go once the list comes.
type pendingSG struct {
	since time.Time
	pkts  [][]byte
}

const (
	maxPendingSG   = 256
	maxPendingPkts = 8
	pendingFor     = 2 * time.Second
	dataHeadroom   = wire.DataHeaderLen
)

// Overlay creates the overlay device and socket (daemon.Env.Overlay). The
// device is not persistent: it goes when the daemon's descriptor closes.
func (h *Host) Overlay(cfg dataplane.OverlayConfig, sink dataplane.OverlaySink) (dataplane.Overlay, error) {
	tun, err := openTUN(cfg.Interface)
	if err != nil {
		return nil, err
	}
	o := &overlayIO{h: h, cfg: cfg, tun: tun, sink: sink, peers: map[netip.AddrPort]*peerCtr{},
		routes: map[dataplane.SG][]*peerCtr{}, pending: map[dataplane.SG]*pendingSG{}, done: make(chan struct{})}
	if err := o.setupLink(); err != nil {
		tun.Close()
		return nil, err
	}
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(cfg.Local))
	if err != nil {
		tun.Close()
		return nil, fmt.Errorf("overlay socket %s: %w (is another daemon using the port, or is the address not on this host?)", cfg.Local, err)
	}
	conn.SetReadBuffer(4 << 20)
	conn.SetWriteBuffer(4 << 20)
	o.conn, o.pc = conn, ipv4.NewPacketConn(conn)
	h.mu.Lock()
	h.ovl = o
	h.mu.Unlock()
	go o.readTUN()
	go o.readUDP()
	go o.expire()
	return o, nil
}

func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0) // pollable: Close ends a pending Read
	if err != nil {
		return nil, fmt.Errorf("overlay device: open /dev/net/tun: %w (load the tun module: modprobe tun)", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("overlay device %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("overlay device %s: %w (a device of that name exists already? set overlay interface to another name)", name, err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}

// setupLink sets the device's MTU, address (this node's underlay address,
// /32: the source of this host's own multicast into the overlay) and
// state, turns reverse-path filtering off on it (sources arrive from
// everywhere through one device), and routes 224.0.0.0/4 into it when
// asked.
func (o *overlayIO) setupLink() error {
	l, err := netlink.LinkByName(o.cfg.Interface)
	if err != nil {
		return fmt.Errorf("overlay device %s: %w", o.cfg.Interface, err)
	}
	if err := netlink.LinkSetMTU(l, o.cfg.MTU); err != nil {
		return fmt.Errorf("overlay device %s mtu %d: %w", o.cfg.Interface, o.cfg.MTU, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: o.cfg.Local.Addr().AsSlice(), Mask: net.CIDRMask(32, 32)}}
	if err := netlink.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("overlay device %s address: %w", o.cfg.Interface, err)
	}
	o.checkUnderlayMTU()
	os.WriteFile("/proc/sys/net/ipv4/conf/"+o.cfg.Interface+"/rp_filter", []byte("0"), 0)
	if b, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/rp_filter"); err == nil && len(b) > 0 && b[0] != '0' {
		o.h.log.Warn("net.ipv4.conf.all.rp_filter is on: packets from the overlay may be dropped (sysctl -w net.ipv4.conf.all.rp_filter=0)", "interface", o.cfg.Interface)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("overlay device %s up: %w", o.cfg.Interface, err)
	}
	if o.cfg.LocalRoute {
		_, mc, _ := net.ParseCIDR("224.0.0.0/4")
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: mc, Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("overlay route 224.0.0.0/4 dev %s: %w (set overlay local-route: false to manage it yourself)", o.cfg.Interface, err)
		}
	}
	return nil
}

// checkUnderlayMTU warns when the interface holding the underlay address
// cannot carry a full packet of the device with the overlay's overhead.
func (o *overlayIO) checkUnderlayMTU() {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return
	}
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP.To4())
		if ip != o.cfg.Local.Addr() || a.LinkIndex == 0 {
			continue
		}
		l, err := netlink.LinkByIndex(a.LinkIndex)
		if err != nil || l.Attrs().Name == o.cfg.Interface {
			continue
		}
		if m := l.Attrs().MTU; m < o.cfg.MTU+wire.Overhead {
			o.h.log.Warn("overlay mtu too large for the underlay: full-size packets will not fit (set overlay mtu)",
				"interface", o.cfg.Interface, "mtu", o.cfg.MTU, "underlay", l.Attrs().Name, "underlay_mtu", m, "fix", fmt.Sprintf("overlay mtu: %d", m-wire.Overhead))
		}
	}
}

// SetPeers implements dataplane.Overlay.
func (o *overlayIO) SetPeers(all, up []netip.AddrPort) {
	o.mu.Lock()
	defer o.mu.Unlock()
	next := make(map[netip.AddrPort]*peerCtr, len(all))
	for _, p := range all {
		c := o.peers[p]
		if c == nil {
			c = &peerCtr{addr: p, udp: net.UDPAddrFromAddrPort(p)}
		}
		c.up.Store(false)
		next[p] = c
	}
	for _, p := range up {
		if c := next[p]; c != nil {
			c.up.Store(true)
		}
	}
	o.peers = next
	// Lists keep only peers that still are: a removed peer gets nothing
	// more, even before the daemon re-derives its routes.
	for k, list := range o.routes {
		kept := list[:0:0]
		for _, c := range list {
			if next[c.addr] == c {
				kept = append(kept, c)
			}
		}
		o.routes[k] = kept
	}
}

// setRoute sets an (S,G)'s replication list (Host.SetRoute).
func (o *overlayIO) setRoute(k dataplane.SG, peers []netip.AddrPort) {
	o.mu.Lock()
	list := make([]*peerCtr, 0, len(peers))
	for _, p := range peers {
		if c := o.peers[p]; c != nil {
			list = append(list, c)
		}
	}
	o.routes[k] = list
	held := o.pending[k]
	delete(o.pending, k)
	o.mu.Unlock()
	if held != nil {
		for _, pkt := range held.pkts {
			o.replicate(list, pkt)
		}
	}
}

func (o *overlayIO) delRoute(k dataplane.SG) {
	o.mu.Lock()
	delete(o.routes, k)
	o.mu.Unlock()
}

// SendControl implements dataplane.Overlay.
func (o *overlayIO) SendControl(to netip.AddrPort, b []byte) error {
	_, err := o.conn.WriteToUDPAddrPort(b, to)
	return err
}

// Counters implements dataplane.Overlay.
func (o *overlayIO) Counters(fn func(netip.AddrPort, dataplane.PeerCounters)) {
	o.mu.RLock()
	cs := make([]*peerCtr, 0, len(o.peers))
	for _, c := range o.peers {
		cs = append(cs, c)
	}
	o.mu.RUnlock()
	for _, c := range cs {
		fn(c.addr, dataplane.PeerCounters{PacketsIn: c.pktIn.Load(), BytesIn: c.bytesIn.Load(), PacketsOut: c.pktOut.Load(),
			BytesOut: c.bytesOut.Load(), SendErrors: c.sendErrors.Load()})
	}
}

// Stats implements dataplane.Overlay.
func (o *overlayIO) Stats() dataplane.OverlayStats {
	return dataplane.OverlayStats{NotPeer: o.stats.notPeer.Load(), Malformed: o.stats.malformed.Load(),
		Looped: o.stats.looped.Load(), NoRoute: o.stats.noRoute.Load(), TooBig: o.stats.tooBig.Load()}
}

// Close implements dataplane.Overlay: the socket and the device go.
func (o *overlayIO) Close() error {
	select {
	case <-o.done:
		return nil
	default:
	}
	close(o.done)
	o.h.mu.Lock()
	o.h.ovl = nil
	o.h.mu.Unlock()
	o.conn.Close()
	return o.tun.Close()
}

// sg reads an IPv4 packet's (S,G); ok is false for anything that is not
// routable multicast.
func sg(pkt []byte) (dataplane.SG, bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || int(pkt[0]&0x0f)*4 > len(pkt) {
		return dataplane.SG{}, false
	}
	k := dataplane.SG{Source: netip.AddrFrom4([4]byte(pkt[12:16])), Group: netip.AddrFrom4([4]byte(pkt[16:20]))}
	if !k.Group.IsMulticast() || k.Group.IsLinkLocalMulticast() {
		return k, false
	}
	return k, true
}

// readTUN takes packets leaving the device and replicates them.
func (o *overlayIO) readTUN() {
	buf := make([]byte, dataHeadroom+65536)
	for {
		n, err := o.tun.Read(buf[dataHeadroom:])
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			select {
			case <-o.done:
				return
			default:
			}
			time.Sleep(time.Millisecond)
			continue
		}
		pkt := buf[dataHeadroom : dataHeadroom+n]
		k, ok := sg(pkt)
		if !ok {
			continue // IGMP and link-local traffic stay on this host
		}
		// A packet an RP decapsulated from a Register may carry the
		// partial UDP checksum its source left to offload (a sender
		// behind a veth; FRR registers the bytes as they are): complete
		// it, or every receiver across the overlay drops the packet.
		ip4.FixPartialUDPChecksum(pkt)
		o.mu.RLock()
		list, known := o.routes[k]
		o.mu.RUnlock()
		if known {
			if len(list) > 0 {
				o.replicate(list, buf[:dataHeadroom+n])
			}
			continue
		}
		o.hold(k, pkt)
	}
}

// hold keeps a packet of an (S,G) with no list and tells the daemon.
func (o *overlayIO) hold(k dataplane.SG, pkt []byte) {
	o.mu.Lock()
	p := o.pending[k]
	first := p == nil
	switch {
	case p == nil && len(o.pending) >= maxPendingSG:
		o.mu.Unlock()
		o.stats.noRoute.Add(1)
		return
	case p == nil:
		p = &pendingSG{since: time.Now()}
		o.pending[k] = p
	}
	if len(p.pkts) < maxPendingPkts {
		b := make([]byte, dataHeadroom+len(pkt))
		copy(b[dataHeadroom:], pkt)
		p.pkts = append(p.pkts, b)
	} else {
		o.stats.noRoute.Add(1)
	}
	o.mu.Unlock()
	if first {
		o.sink.Upcall(dataplane.Upcall{Kind: dataplane.NoCache, Iface: o.cfg.Interface, SG: k, IPID: -1})
	}
}

// expire drops held packets whose (S,G) got no list in time.
func (o *overlayIO) expire() {
	t := time.NewTicker(pendingFor / 2)
	defer t.Stop()
	for {
		select {
		case <-o.done:
			return
		case now := <-t.C:
			o.mu.Lock()
			for k, p := range o.pending {
				if now.Sub(p.since) > pendingFor {
					o.stats.noRoute.Add(uint64(len(p.pkts)))
					delete(o.pending, k)
				}
			}
			o.mu.Unlock()
		}
	}
}

// replicate sends b (data header room, then the packet) to every peer of
// list with one sendmmsg per 64 peers.
func (o *overlayIO) replicate(list []*peerCtr, b []byte) {
	b = wire.EncodeData(b[:0], b[dataHeadroom:]) // the header goes in the room: no copy when b has it
	var msgs [64]ipv4.Message
	for len(list) > 0 {
		n := min(len(list), len(msgs))
		for i := range n {
			msgs[i] = ipv4.Message{Buffers: [][]byte{b}, Addr: list[i].udp}
		}
		sent := 0
		for sent < n {
			k, err := o.pc.WriteBatch(msgs[sent:n], 0)
			if err != nil {
				if errors.Is(err, unix.EMSGSIZE) {
					o.stats.tooBig.Add(1)
				}
				list[sent].sendErrors.Add(1)
				sent++
				continue
			}
			for _, c := range list[sent : sent+k] {
				c.pktOut.Add(1)
				c.bytesOut.Add(uint64(len(b) - dataHeadroom))
			}
			sent += k
		}
		list = list[n:]
	}
}

// readUDP takes datagrams from the underlay: data from peers into the
// device, control to the daemon, everything else counted and dropped.
func (o *overlayIO) readUDP() {
	const batch = 32
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 65536)}
	}
	local := o.cfg.Local.Addr()
	for {
		n, err := o.pc.ReadBatch(msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(time.Millisecond)
			continue
		}
		for _, m := range msgs[:n] {
			b := m.Buffers[0][:m.N]
			ua, _ := m.Addr.(*net.UDPAddr)
			if ua == nil {
				continue
			}
			from := ua.AddrPort()
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			o.mu.RLock()
			c := o.peers[from]
			o.mu.RUnlock()
			if c == nil {
				o.stats.notPeer.Add(1)
				continue
			}
			kind, err := wire.Kind(b)
			if err != nil {
				o.stats.malformed.Add(1)
				continue
			}
			if kind != wire.TypeData {
				o.sink.OverlayControl(from, append([]byte(nil), b...))
				continue
			}
			if !c.up.Load() {
				o.stats.notPeer.Add(1)
				continue
			}
			pkt, err := wire.DecodeData(b)
			k, ok := sg(pkt)
			if err != nil || !ok {
				o.stats.malformed.Add(1)
				continue
			}
			if k.Source == local {
				o.stats.looped.Add(1)
				continue
			}
			c.pktIn.Add(1)
			c.bytesIn.Add(uint64(len(pkt)))
			if _, err := o.tun.Write(pkt); err != nil {
				o.stats.malformed.Add(1)
			}
		}
	}
}
