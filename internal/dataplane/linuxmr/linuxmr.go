// Package linuxmr programs the Linux kernel's IPv4 multicast forwarding cache
// through the multicast routing socket (MRT_* options on a raw IGMP socket)
// and reads kernel upcalls and IGMP packets from that same socket.
//
// Opening the socket (MRT_INIT) is what turns net.ipv4.conf.all.mc_forwarding
// to 1; closing it flushes every VIF and MFC entry that socket added. VIFs
// and routes are therefore added through a second raw IGMP socket (the
// kernel flags them static): they outlive the routing socket, so a daemon
// that crashes or stops leaves the table for its successor, which adopts
// it (Leftover VIFs, Routes) and forwarding resumes at its MRT_INIT. Flush
// removes them when asked. A routing socket handed to a successor (FD,
// FromFD) never closes, and forwarding never stops.
package linuxmr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"overcast/internal/dataplane"
)

// From <linux/mroute.h>; x/sys/unix does not carry them.
const (
	mrtInit   = 200
	mrtDone   = 201
	mrtAddVIF = 202
	mrtDelVIF = 203
	mrtAddMFC = 204
	mrtDelMFC = 205
	mrtAssert = 207
	mrtPIM    = 208
	mrtFlush  = 212

	// MRT_FLUSH's flags: routes and VIFs, those of the routing socket and
	// the static ones.
	mrtFlushAll = 1 | 2 | 4 | 8

	viffRegister   = 0x4
	viffUseIfindex = 0x8
	maxVIFs        = 32

	vifctlSize = 16 // vifi u16, flags u8, threshold u8, rate_limit u32, lcl (ifindex) u32, rmt u32
	mfcctlSize = 60 // origin, grp, parent u16, ttls[32], pad 2, pkt/byte/wrong_if counters, expire
)

// Socket is the kernel's multicast routing socket for this network
// namespace, and the socket its VIFs and routes are programmed through.
type Socket struct {
	f     *os.File
	rc    syscall.RawConn
	prog  syscall.RawConn // VIFs and routes: static, they outlive f
	progF *os.File
	mrBuf []byte // Counters' read buffer, kept between polls
}

// Open opens the raw IGMP socket and claims the multicast routing table.
// Only one process per table may hold it.
func Open() (*Socket, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_IGMP)
	if err != nil {
		return nil, fmt.Errorf("raw IGMP socket: %w%s", err, NeedPrivilege(err))
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, mrtInit, 1); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			who := "another multicast routing daemon (pimd, smcroute, FRR, igmpproxy)"
			if hs := IGMPSocketHolders(); len(hs) > 0 {
				who = strings.Join(hs, ", ")
			}
			return nil, fmt.Errorf("MRT_INIT: %w: %s holds this network namespace's multicast routing socket; only one router may: stop it first", err, who)
		}
		if errors.Is(err, unix.ENOPROTOOPT) {
			return nil, fmt.Errorf("MRT_INIT: %w: this kernel cannot route multicast (it was built without CONFIG_IP_MROUTE; /proc/net/ip_mr_vif is missing). Run the router on a kernel with CONFIG_IP_MROUTE=y and CONFIG_IP_PIMSM_V2=y; a daemon with no interfaces (mirroring only) runs without it", err)
		}
		return nil, fmt.Errorf("MRT_INIT: %w (check the kernel has CONFIG_IP_MROUTE=y, and run as root or with CAP_NET_ADMIN)", err)
	}
	if err := setIPOpts(fd, []ipOpt{
		{"IP_PKTINFO", unix.IP_PKTINFO, 1},
		{"IP_HDRINCL", unix.IP_HDRINCL, 1},
		{"IP_MULTICAST_LOOP", unix.IP_MULTICAST_LOOP, 0},
	}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// IGMP reports for thousands of groups and upcalls for bursts of new
	// flows share this socket: give it room.
	setRcvBuf(fd)
	return wrap(fd)
}

// FromFD takes over a routing socket a predecessor handed over (an
// inherited descriptor): the table stays claimed, its queue of upcalls
// and reports unread, and forwarding never stopped.
func FromFD(fd int) (*Socket, error) {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil || v != unix.IPPROTO_IGMP {
		return nil, fmt.Errorf("inherited routing socket (fd %d) is not a raw IGMP socket (protocol %d, %v): start without OVERCAST_HANDOVER", fd, v, err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("inherited routing socket (fd %d): %w", fd, err)
	}
	return wrap(fd)
}

func wrap(fd int) (*Socket, error) {
	f := os.NewFile(uintptr(fd), "mroute")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &Socket{f: f, rc: rc}
	if err := s.openProg(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// openProg opens the programming socket. Every raw IGMP socket gets a
// copy of every IGMP packet: a filter that accepts nothing keeps its
// queue empty.
func (s *Socket) openProg() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_IGMP)
	if err != nil {
		return fmt.Errorf("raw IGMP socket for programming routes: %w%s", err, NeedPrivilege(err))
	}
	drop := []unix.SockFilter{{Code: 0x06, K: 0}} // BPF_RET|BPF_K 0
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: 1, Filter: &drop[0]}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("programming socket filter: %w", err)
	}
	f := os.NewFile(uintptr(fd), "mroute-prog")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	s.prog, s.progF = rc, f
	return nil
}

// FD is the routing socket's descriptor, made inheritable, for handing
// it to a successor (exec). The socket stays this one's until then.
func (s *Socket) FD() (int, error) {
	var fd int
	var serr error
	err := s.rc.Control(func(f uintptr) {
		fd = int(f)
		_, serr = unix.FcntlInt(f, unix.F_SETFD, 0)
	})
	if err == nil {
		err = serr
	}
	return fd, err
}

// SetReadDeadline ends blocked and later reads at t (a handover: the
// successor reads what is queued).
func (s *Socket) SetReadDeadline(t time.Time) error { return s.f.SetReadDeadline(t) }

// Flush removes every VIF and route of the table, the static ones too.
func (s *Socket) Flush() error {
	var serr error
	err := s.prog.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, mrtFlush, mrtFlushAll) })
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("MRT_FLUSH: %w", err)
	}
	return nil
}

// IGMPSocketHolders names the processes ("pid 123 (pimd)") that hold a raw
// IGMP socket in this network namespace: the multicast routing socket is
// one of them. It reads /proc/net/raw and every process's fds; processes
// it may not read are left out.
func IGMPSocketHolders() []string {
	b, err := os.ReadFile("/proc/net/raw")
	if err != nil {
		return nil
	}
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		if len(f) > 9 && strings.HasSuffix(f[1], ":0002") {
			inodes["socket:["+f[9]+"]"] = true
		}
	}
	var out []string
	pids, _ := os.ReadDir("/proc")
	for _, p := range pids {
		if p.Name()[0] < '0' || p.Name()[0] > '9' {
			continue
		}
		fds, err := os.ReadDir("/proc/" + p.Name() + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink("/proc/" + p.Name() + "/fd/" + fd.Name()); err == nil && inodes[l] {
				comm, _ := os.ReadFile("/proc/" + p.Name() + "/comm")
				out = append(out, fmt.Sprintf("pid %s (%s)", p.Name(), strings.TrimSpace(string(comm))))
				break
			}
		}
	}
	return out
}

// NeedPrivilege is what to do when a raw socket was refused for want of
// privilege ("" for other errors).
func NeedPrivilege(err error) string {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return ": the router needs root, or the capabilities CAP_NET_ADMIN and CAP_NET_RAW (setcap cap_net_admin,cap_net_raw+ep $(command -v overcast), or AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW in its systemd unit)"
	}
	return ""
}

// Close releases the routing table. The kernel stops forwarding until the
// next MRT_INIT; the VIFs and routes, static, stay for a successor.
func (s *Socket) Close() error {
	s.progF.Close()
	return s.f.Close()
}

// setsockopt programs the table through the programming socket.
func (s *Socket) setsockopt(opt int, b []byte) error {
	var serr error
	err := s.prog.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_IP, opt, string(b))
	})
	if err != nil {
		return err
	}
	return serr
}

// VIF is one virtual interface of the kernel's multicast routing table.
type VIF struct {
	Index    int // 0..31
	IfIndex  int
	Name     string
	Register bool // the register VIF (pimreg)
}

// MaxVIFs is the kernel's number of VIFs per multicast routing table.
const MaxVIFs = maxVIFs

// AddVIF adds a VIF bound to an interface by index.
func (s *Socket) AddVIF(v VIF) error {
	if v.Index < 0 || v.Index >= maxVIFs {
		return fmt.Errorf("vif %d: the kernel allows %d VIFs per table", v.Index, maxVIFs)
	}
	b := make([]byte, vifctlSize)
	binary.NativeEndian.PutUint16(b[0:], uint16(v.Index))
	b[2] = viffUseIfindex
	b[3] = 1 // TTL threshold
	binary.NativeEndian.PutUint32(b[8:], uint32(v.IfIndex))
	if err := s.setsockopt(mrtAddVIF, b); err != nil {
		return fmt.Errorf("MRT_ADD_VIF %d (%s): %w", v.Index, v.Name, err)
	}
	return nil
}

// EnablePIM turns on the kernel's PIM support: WRONGVIF upcalls (for SPT
// switchover and asserts), and decapsulation of Registers addressed to
// this router onto the register VIF (RFC 7761 section 4.4). The daemon
// still sees every PIM packet on its raw PIM socket.
func (s *Socket) EnablePIM() error {
	for _, o := range []struct {
		name string
		opt  int
	}{{"MRT_ASSERT", mrtAssert}, {"MRT_PIM", mrtPIM}} {
		var serr error
		err := s.rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, o.opt, 1) })
		if err == nil {
			err = serr
		}
		if err != nil {
			return fmt.Errorf("%s: %w (kernel without CONFIG_IP_PIMSM_V2?)", o.name, err)
		}
	}
	return nil
}

// AddRegisterVIF adds the register VIF: the kernel creates the pimreg
// device; packets routed to it come up as WHOLEPKT upcalls for the daemon
// to encapsulate, and decapsulated Registers enter through it.
func (s *Socket) AddRegisterVIF(index int) error {
	if index < 0 || index >= maxVIFs {
		return fmt.Errorf("register vif %d: the kernel allows %d VIFs per table", index, maxVIFs)
	}
	b := make([]byte, vifctlSize)
	binary.NativeEndian.PutUint16(b[0:], uint16(index))
	b[2] = viffRegister
	b[3] = 1
	if err := s.setsockopt(mrtAddVIF, b); err != nil {
		return fmt.Errorf("MRT_ADD_VIF %d (register): %w", index, err)
	}
	return nil
}

// DelVIF removes a VIF.
func (s *Socket) DelVIF(index int) error {
	b := make([]byte, vifctlSize)
	binary.NativeEndian.PutUint16(b[0:], uint16(index))
	if err := s.setsockopt(mrtDelVIF, b); err != nil {
		return fmt.Errorf("MRT_DEL_VIF %d: %w", index, err)
	}
	return nil
}

func mfcctl(k dataplane.SG, iif int, oifs []int) []byte {
	b := make([]byte, mfcctlSize)
	src, grp := k.Source.As4(), k.Group.As4()
	copy(b[0:4], src[:])
	copy(b[4:8], grp[:])
	binary.NativeEndian.PutUint16(b[8:], uint16(iif))
	for _, o := range oifs {
		if o >= 0 && o < maxVIFs {
			b[10+o] = 1 // forward when TTL > 1
		}
	}
	return b
}

// SetRoute adds or replaces an (S,G) entry: in on VIF iif, out on oifs.
func (s *Socket) SetRoute(k dataplane.SG, iif int, oifs []int) error {
	if err := s.setsockopt(mrtAddMFC, mfcctl(k, iif, oifs)); err != nil {
		return fmt.Errorf("MRT_ADD_MFC %v: %w", k, err)
	}
	return nil
}

// DelRoute removes an (S,G) entry.
func (s *Socket) DelRoute(k dataplane.SG) error {
	if err := s.setsockopt(mrtDelMFC, mfcctl(k, 0, nil)); err != nil {
		return fmt.Errorf("MRT_DEL_MFC %v: %w", k, err)
	}
	return nil
}

// Counters calls fn with the kernel's counters of every (S,G), read from
// /proc/net/ip_mr_cache (the file belongs to the reader's network
// namespace). It reuses one 64 KB buffer across calls, so it is not safe
// for concurrent use; a poll of 10,000 routes allocates only the open file.
func (s *Socket) Counters(fn func(dataplane.SG, dataplane.Counters)) error {
	f, err := os.Open("/proc/net/ip_mr_cache")
	if err != nil {
		return err
	}
	defer f.Close()
	if s.mrBuf == nil {
		// The kernel fills as much of a read as it is given: a large
		// buffer reads 10,000 routes in ten calls, not one per 4 KB page.
		s.mrBuf = make([]byte, 64<<10)
	}
	return readMRCache(f, s.mrBuf, fn)
}

// readMRCache parses the file as it reads it through buf, which must hold
// the longest line.
func readMRCache(f io.Reader, b []byte, fn func(dataplane.SG, dataplane.Counters)) error {
	kept := 0
	for {
		n, err := f.Read(b[kept:])
		end := kept + n
		if err == io.EOF || (err == nil && n == 0) {
			return ParseMRCache(b[:end], fn)
		}
		if err != nil {
			return err
		}
		// Parse the whole lines; keep a partial last line for the next read.
		nl := bytes.LastIndexByte(b[:end], '\n')
		if nl < 0 {
			if end == len(b) {
				return fmt.Errorf("ip_mr_cache: line longer than %d bytes", len(b))
			}
			kept = end
			continue
		}
		if err := ParseMRCache(b[:nl+1], fn); err != nil {
			return err
		}
		kept = copy(b, b[nl+1:end])
	}
}

// ParseMRCache parses /proc/net/ip_mr_cache: "Group Origin Iif Pkts Bytes
// Wrong Oifs", addresses as hex of the in-memory (network order) word,
// and calls fn for each route. Fields are parsed in place.
func ParseMRCache(data []byte, fn func(dataplane.SG, dataplane.Counters)) error {
	var fs [6][]byte
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		n := 0
		for i := 0; i < len(line) && n < len(fs); {
			for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
				i++
			}
			j := i
			for j < len(line) && line[j] != ' ' && line[j] != '\t' {
				j++
			}
			if j > i {
				fs[n] = line[i:j]
				n++
			}
			i = j
		}
		if n < 6 || string(fs[0]) == "Group" {
			continue
		}
		g, ok1 := parseUint(fs[0], 16)
		src, ok2 := parseUint(fs[1], 16)
		pk, ok3 := parseUint(fs[3], 10)
		by, ok4 := parseUint(fs[4], 10)
		wr, ok5 := parseUint(fs[5], 10)
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || g > 0xffffffff || src > 0xffffffff {
			return fmt.Errorf("ip_mr_cache line %.80q: bad number", line)
		}
		fn(dataplane.SG{Source: wordAddr(uint32(src)), Group: wordAddr(uint32(g))}, dataplane.Counters{Packets: pk, Bytes: by, WrongIf: wr})
	}
	return nil
}

// parseUint reads an unsigned number in base 10 or 16.
func parseUint(b []byte, base uint64) (uint64, bool) {
	if len(b) == 0 || (base == 10 && len(b) > 19) || (base == 16 && len(b) > 16) {
		return 0, false // too long to be ours; also rules out overflow
	}
	var v uint64
	for _, c := range b {
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		v = v*base + d
	}
	return v, true
}

// wordAddr is the address whose in-memory (network order) word is printed
// as hex in /proc.
func wordAddr(v uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// Upcall is a kernel upcall as read: the VIF it names is the kernel's.
type Upcall struct {
	Kind dataplane.UpcallKind
	VIF  int
	dataplane.SG
	Packet []byte // WholePkt: the packet to encapsulate, IP header included
	IPID   int    // the packet's IP identification
}

// Message is one read from the socket: an upcall or an IGMP packet.
type Message struct {
	Upcall  *Upcall
	IfIndex int    // for packets: the receiving interface
	Packet  []byte // for packets: the whole IPv4 packet, header included
}

// Read blocks for the next message. The returned packet aliases buf.
func (s *Socket) Read(buf, oob []byte) (Message, error) {
	var n, oobn int
	var rerr error
	err := s.rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return Message{}, err
	}
	if rerr != nil {
		return Message{}, rerr
	}
	b := buf[:n]
	// struct igmpmsg: the byte where an IP header has its protocol is zero.
	if n >= 20 && b[9] == 0 {
		up := &Upcall{
			Kind: dataplane.UpcallKind(b[8]),
			VIF:  int(b[10]) | int(b[11])<<8,
			SG:   dataplane.SG{Source: netip.AddrFrom4([4]byte(b[12:16])), Group: netip.AddrFrom4([4]byte(b[16:20]))},
		}
		// struct igmpmsg begins with a copy of the packet's IP header; its
		// unused words still hold the identification.
		up.IPID = int(b[4])<<8 | int(b[5])
		if up.Kind == dataplane.WholePkt && n > 20 {
			// struct igmpmsg (a copy of the IP header) then the whole packet.
			up.Packet = append([]byte(nil), b[20:]...)
		}
		return Message{Upcall: up}, nil
	}
	m := Message{Packet: b}
	if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, c := range cms {
			if c.Header.Level == unix.IPPROTO_IP && c.Header.Type == unix.IP_PKTINFO && len(c.Data) >= int(unsafe.Sizeof(unix.Inet4Pktinfo{})) {
				pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&c.Data[0]))
				m.IfIndex = int(pi.Ifindex)
			}
		}
	}
	return m, nil
}

// Send transmits a whole IPv4 packet (header included) out of ifindex.
func (s *Socket) Send(ifindex int, pkt []byte, dst netip.Addr) error {
	pi := unix.Inet4Pktinfo{Ifindex: int32(ifindex)}
	oob := unix.PktInfo4(&pi)
	sa := &unix.SockaddrInet4{Addr: dst.As4()}
	var serr error
	err := s.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), pkt, oob, sa, 0)
		return serr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return serr
}

// JoinGroup joins a group on an interface with the routing socket itself.
// Link-local groups (224.0.0.2 for leaves, 224.0.0.22 for IGMPv3 reports)
// reach the socket only when joined; reports for routable groups carry
// Router Alert and arrive through the kernel's router-alert chain.
func (s *Socket) JoinGroup(ifindex int, group netip.Addr) error {
	return membership(s.rc, unix.IP_ADD_MEMBERSHIP, ifindex, group)
}

// LeaveGroup undoes JoinGroup.
func (s *Socket) LeaveGroup(ifindex int, group netip.Addr) error {
	return membership(s.rc, unix.IP_DROP_MEMBERSHIP, ifindex, group)
}

// membership joins (IP_ADD_MEMBERSHIP) or leaves (IP_DROP_MEMBERSHIP) a
// group on an interface with a raw socket.
func membership(rc syscall.RawConn, opt, ifindex int, group netip.Addr) error {
	mreq := &unix.IPMreqn{Multiaddr: group.As4(), Ifindex: int32(ifindex)}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, opt, mreq) }); err != nil {
		return err
	}
	if opt == unix.IP_ADD_MEMBERSHIP && errors.Is(serr, unix.EADDRINUSE) {
		serr = nil // joined already: an inherited socket keeps its memberships
	}
	if serr != nil {
		what := "join"
		if opt == unix.IP_DROP_MEMBERSHIP {
			what = "leave"
		}
		return fmt.Errorf("%s %s on ifindex %d: %w", what, group, ifindex, serr)
	}
	return nil
}

// siocGetSGCnt is SIOCGETSGCNT (SIOCPROTOPRIVATE+1): one entry's counters.
const siocGetSGCnt = 0x89e1

// SGCount reads one route's counters with an ioctl, without walking
// /proc/net/ip_mr_cache: fast enough to watch a flow packet by packet.
func (s *Socket) SGCount(k dataplane.SG) (dataplane.Counters, error) {
	// struct sioc_sg_req: src, grp, then three unsigned longs.
	var req [4 + 4 + 3*8]byte
	src, grp := k.Source.As4(), k.Group.As4()
	copy(req[0:4], src[:])
	copy(req[4:8], grp[:])
	var errno syscall.Errno
	err := s.rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, siocGetSGCnt, uintptr(unsafe.Pointer(&req[0])))
	})
	if err != nil {
		return dataplane.Counters{}, err
	}
	if errno != 0 {
		return dataplane.Counters{}, errno
	}
	return dataplane.Counters{
		Packets: binary.NativeEndian.Uint64(req[8:]),
		Bytes:   binary.NativeEndian.Uint64(req[16:]),
		WrongIf: binary.NativeEndian.Uint64(req[24:]),
	}, nil
}

// ParseMRCacheRoutes parses /proc/net/ip_mr_cache for the routes
// themselves: (S,G), input VIF and output VIFs ("vif:ttl" pairs). It is
// for listing what the kernel holds, not for the per-second counter poll.
func ParseMRCacheRoutes(data []byte, fn func(k dataplane.SG, iif int, oifs []int)) error {
	for _, line := range bytes.Split(data, []byte("\n")) {
		fs := bytes.Fields(line)
		if len(fs) < 6 || string(fs[0]) == "Group" {
			continue
		}
		g, ok1 := parseUint(fs[0], 16)
		src, ok2 := parseUint(fs[1], 16)
		iif, ok3 := parseUint(fs[2], 10)
		if !ok1 || !ok2 || !ok3 || g > 0xffffffff || src > 0xffffffff || iif >= 1<<16 {
			return fmt.Errorf("ip_mr_cache line %.80q: bad number", line)
		}
		var oifs []int
		for _, o := range fs[6:] {
			v, _, ok := bytes.Cut(o, []byte(":"))
			n, okN := parseUint(v, 10)
			if !ok || !okN || n >= maxVIFs {
				return fmt.Errorf("ip_mr_cache line %.80q: bad output %q", line, o)
			}
			oifs = append(oifs, int(n))
		}
		fn(dataplane.SG{Source: wordAddr(uint32(src)), Group: wordAddr(uint32(g))}, int(iif), oifs)
	}
	return nil
}

// Routes lists the routes the kernel holds (a predecessor's too: the file
// needs no socket).
func Routes(fn func(k dataplane.SG, iif int, oifs []int)) error {
	b, err := os.ReadFile("/proc/net/ip_mr_cache")
	if err != nil {
		return err
	}
	return ParseMRCacheRoutes(b, fn)
}

// VIFs lists the VIFs the kernel's table holds: a predecessor's, for a
// successor to adopt.
func VIFs() ([]VIF, error) {
	b, err := os.ReadFile("/proc/net/ip_mr_vif")
	if err != nil {
		return nil, err
	}
	return ParseVIFs(b)
}

// ParseVIFs parses /proc/net/ip_mr_vif: "Interface BytesIn PktsIn BytesOut
// PktsOut Flags Local Remote" after the VIF's number; Flags, Local and
// Remote in hex. A VIF bound by index has its ifindex as Local.
func ParseVIFs(data []byte) ([]VIF, error) {
	var out []VIF
	for _, line := range bytes.Split(data, []byte("\n")) {
		fs := bytes.Fields(line)
		if len(fs) == 0 || string(fs[0]) == "Interface" {
			continue
		}
		if len(fs) < 9 {
			return nil, fmt.Errorf("ip_mr_vif line %.80q: %d fields, want 9", line, len(fs))
		}
		idx, ok1 := parseUint(fs[0], 10)
		flags, ok2 := parseUint(fs[6], 16)
		local, ok3 := parseUint(fs[7], 16)
		if !ok1 || !ok2 || !ok3 || idx >= maxVIFs || local > 0xffffffff {
			return nil, fmt.Errorf("ip_mr_vif line %.80q: bad number", line)
		}
		v := VIF{Index: int(idx), Name: string(fs[1]), Register: flags&viffRegister != 0}
		if flags&viffUseIfindex != 0 {
			v.IfIndex = int(local)
		}
		out = append(out, v)
	}
	return out, nil
}

// FlushLeft removes the VIFs and routes a stopped router left in this
// namespace's table, when no process holds the routing socket (with one
// running, its own stop --flush is the way; this refuses).
func FlushLeft() (vifs, routes int, err error) {
	if hs := IGMPSocketHolders(); len(hs) > 0 {
		return 0, 0, fmt.Errorf("%s holds a raw IGMP socket here (a running router): stop it with its own command (overcast stop --flush), not this", strings.Join(hs, ", "))
	}
	vs, err := VIFs()
	if err != nil {
		return 0, 0, fmt.Errorf("%w (this kernel cannot route multicast: nothing to flush)", err)
	}
	Routes(func(dataplane.SG, int, []int) { routes++ })
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_IGMP)
	if err != nil {
		return 0, 0, fmt.Errorf("raw IGMP socket: %w%s", err, NeedPrivilege(err))
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, mrtFlush, mrtFlushAll); err != nil {
		return 0, 0, fmt.Errorf("MRT_FLUSH: %w", err)
	}
	return len(vs), routes, nil
}
