package linuxmr

import (
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PIMSocket is the raw IP protocol 103 socket PIM messages travel on.
type PIMSocket struct {
	f  *os.File
	rc syscall.RawConn
}

// rcvBuf is the receive buffer of the PIM and mroute sockets: room for
// thousands of full join/prune messages, reports or upcalls.
const rcvBuf = 8 << 20

type ipOpt struct {
	name   string
	opt, v int
}

// setIPOpts sets IPPROTO_IP integer options in order, naming the one that fails.
func setIPOpts(fd int, opts []ipOpt) error {
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, o.opt, o.v); err != nil {
			return fmt.Errorf("%s: %w", o.name, err)
		}
	}
	return nil
}

// setRcvBuf sizes a socket's receive buffer. FORCE works as root past
// net.core.rmem_max; otherwise the plain option, capped by it.
func setRcvBuf(fd int) {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf); err != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
}

// OpenPIM opens the raw PIM socket: control messages go out with TTL 1
// and TOS 0xc0 (internetwork control), and reads carry the receiving
// interface and the destination address.
func OpenPIM() (*PIMSocket, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 103)
	if err != nil {
		return nil, fmt.Errorf("raw PIM socket: %w%s", err, NeedPrivilege(err))
	}
	if err := setIPOpts(fd, []ipOpt{
		{"IP_PKTINFO", unix.IP_PKTINFO, 1},
		{"IP_MULTICAST_LOOP", unix.IP_MULTICAST_LOOP, 0},
		{"IP_MULTICAST_TTL", unix.IP_MULTICAST_TTL, 1},
		{"IP_TOS", unix.IP_TOS, 0xc0},
	}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A neighbour's triggered joins for thousands of flows arrive as a
	// burst of full-size messages; the default buffer (about 90 of them)
	// would drop the rest until the next periodic refresh.
	setRcvBuf(fd)
	f := os.NewFile(uintptr(fd), "pim")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &PIMSocket{f: f, rc: rc}, nil
}

// Close closes the socket.
func (s *PIMSocket) Close() error { return s.f.Close() }

// allPIMRouters is 224.0.0.13.
var allPIMRouters = netip.AddrFrom4([4]byte{224, 0, 0, 13})

// JoinAllPIMRouters joins 224.0.0.13 on an interface.
func (s *PIMSocket) JoinAllPIMRouters(ifindex int) error {
	return membership(s.rc, unix.IP_ADD_MEMBERSHIP, ifindex, allPIMRouters)
}

// LeaveAllPIMRouters undoes JoinAllPIMRouters.
func (s *PIMSocket) LeaveAllPIMRouters(ifindex int) error {
	return membership(s.rc, unix.IP_DROP_MEMBERSHIP, ifindex, allPIMRouters)
}

// PIMPacket is one PIM packet as read.
type PIMPacket struct {
	IfIndex  int
	Src, Dst netip.Addr
	Packet   []byte // the whole IPv4 packet, header included; aliases the read buffer
}

// Read blocks for the next PIM packet.
func (s *PIMSocket) Read(buf, oob []byte) (PIMPacket, error) {
	var n, oobn int
	var rerr error
	err := s.rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return PIMPacket{}, err
	}
	p := PIMPacket{Packet: buf[:n]}
	if n >= 20 {
		p.Src = netip.AddrFrom4([4]byte(buf[12:16]))
		p.Dst = netip.AddrFrom4([4]byte(buf[16:20]))
	}
	if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, c := range cms {
			if c.Header.Level == unix.IPPROTO_IP && c.Header.Type == unix.IP_PKTINFO && len(c.Data) >= int(unsafe.Sizeof(unix.Inet4Pktinfo{})) {
				pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&c.Data[0]))
				p.IfIndex = int(pi.Ifindex)
			}
		}
	}
	return p, nil
}

// SendFrom sends a unicast PIM message to dst from the local address src
// (IP_PKTINFO's ipi_spec_dst), routed by the kernel.
func (s *PIMSocket) SendFrom(src, dst netip.Addr, msg []byte) error {
	return s.sendmsg(dst, msg, unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: src.As4()}))
}

// Send sends a PIM message (the payload after the IP header) to dst: out
// of ifindex for link-local multicast, routed by the kernel for unicast
// (ifindex 0).
func (s *PIMSocket) Send(ifindex int, dst netip.Addr, msg []byte) error {
	var oob []byte
	if ifindex > 0 {
		oob = unix.PktInfo4(&unix.Inet4Pktinfo{Ifindex: int32(ifindex)})
	}
	return s.sendmsg(dst, msg, oob)
}

func (s *PIMSocket) sendmsg(dst netip.Addr, msg, oob []byte) error {
	sa := &unix.SockaddrInet4{Addr: dst.As4()}
	var serr error
	err := s.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), msg, oob, sa, 0)
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	return err
}
