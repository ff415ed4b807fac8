package kernel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"overcast/internal/dataplane"
)

// Streams is dataplane.Streams over the kernel's TCP, with TCP-MD5
// (RFC 2385) keys set on the listening and dialling sockets. Each
// connection has a reader goroutine and a writer goroutine with a bounded
// queue: a peer that stops reading is disconnected, never allowed to
// block the daemon or grow its memory.
type Streams struct {
	sink dataplane.StreamSink
	log  *slog.Logger

	mu        sync.Mutex
	next      dataplane.StreamID
	conns     map[dataplane.StreamID]*stream
	listeners map[netip.AddrPort]*listener
}

type stream struct {
	c    net.Conn
	out  chan []byte
	once sync.Once
}

type listener struct {
	l  *net.TCPListener
	rc syscall.RawConn
}

// writeQueue is how many writes may wait for one slow peer.
const writeQueue = 4096

// NewStreams returns Streams reporting to sink.
func NewStreams(sink dataplane.StreamSink, log *slog.Logger) *Streams {
	return &Streams{sink: sink, log: log, conns: map[dataplane.StreamID]*stream{}, listeners: map[netip.AddrPort]*listener{}}
}

// Listen implements dataplane.Streams. Called again for the same address
// it only replaces the MD5 keys.
func (s *Streams) Listen(local netip.AddrPort, keys map[netip.Addr]string) error {
	s.mu.Lock()
	l := s.listeners[local]
	s.mu.Unlock()
	if l == nil {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) })
			return errors.Join(err, serr)
		}}
		// Go listens with MPTCP by default where the kernel has it, and
		// MPTCP sockets refuse TCP-MD5 (ENOPROTOOPT): plain TCP.
		lc.SetMultipathTCP(false)
		nl, err := lc.Listen(context.Background(), "tcp4", local.String())
		if err != nil {
			return err
		}
		tl := nl.(*net.TCPListener)
		rc, err := tl.SyscallConn()
		if err != nil {
			tl.Close()
			return err
		}
		l = &listener{l: tl, rc: rc}
		s.mu.Lock()
		s.listeners[local] = l
		s.mu.Unlock()
		go s.accept(l)
	}
	for peer, key := range keys {
		var serr error
		err := l.rc.Control(func(fd uintptr) { serr = setMD5(int(fd), peer, key) })
		if err := errors.Join(err, serr); err != nil {
			return fmt.Errorf("TCP-MD5 key for %s: %w", peer, err)
		}
	}
	return nil
}

func (s *Streams) accept(l *listener) {
	for {
		c, err := l.l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("msdp accept", "err", err)
			}
			return
		}
		id := s.add(c)
		s.sink.StreamUp(id, addrPort(c.LocalAddr()), addrPort(c.RemoteAddr()), true)
		go s.read(id, c)
	}
}

// Dial implements dataplane.Streams.
func (s *Streams) Dial(local netip.Addr, remote netip.AddrPort, key string) dataplane.StreamID {
	s.mu.Lock()
	s.next++
	id := s.next
	s.mu.Unlock()
	go func() {
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: local.AsSlice()},
			Control: func(_, _ string, c syscall.RawConn) error {
				if key == "" {
					return nil
				}
				var serr error
				err := c.Control(func(fd uintptr) { serr = setMD5(int(fd), remote.Addr(), key) })
				return errors.Join(err, serr)
			}}
		d.SetMultipathTCP(false)
		c, err := d.Dial("tcp4", remote.String())
		if err != nil {
			s.sink.StreamFailed(id, err)
			return
		}
		st := newStream(c)
		s.mu.Lock()
		s.conns[id] = st
		s.mu.Unlock()
		go s.write(id, st)
		s.sink.StreamUp(id, addrPort(c.LocalAddr()), addrPort(c.RemoteAddr()), false)
		go s.read(id, c)
	}()
	return id
}

func newStream(c net.Conn) *stream { return &stream{c: c, out: make(chan []byte, writeQueue)} }

func (s *Streams) add(c net.Conn) dataplane.StreamID {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	st := newStream(c)
	s.conns[s.next] = st
	go s.write(s.next, st)
	return s.next
}

func (s *Streams) read(id dataplane.StreamID, c net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			s.sink.StreamData(id, append([]byte(nil), buf[:n]...))
		}
		if err != nil {
			s.mu.Lock()
			_, open := s.conns[id]
			delete(s.conns, id)
			s.mu.Unlock()
			if open {
				if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
					err = nil
				}
				s.sink.StreamDown(id, err)
			}
			c.Close()
			return
		}
	}
}

func (s *Streams) write(id dataplane.StreamID, st *stream) {
	for b := range st.out {
		st.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := st.c.Write(b); err != nil {
			st.c.Close() // the reader reports it
			for range st.out {
			}
			return
		}
	}
	st.c.Close()
}

// Write implements dataplane.Streams.
func (s *Streams) Write(id dataplane.StreamID, b []byte) error {
	s.mu.Lock()
	st := s.conns[id]
	s.mu.Unlock()
	if st == nil {
		return errors.New("no such session")
	}
	select {
	case st.out <- b:
		return nil
	default:
		s.Close(id)
		return fmt.Errorf("the peer is not reading: %d writes queued", writeQueue)
	}
}

// Close implements dataplane.Streams.
func (s *Streams) Close(id dataplane.StreamID) {
	s.mu.Lock()
	st := s.conns[id]
	delete(s.conns, id)
	s.mu.Unlock()
	if st != nil {
		st.once.Do(func() { close(st.out) })
	}
}

// Shutdown closes every listener and session.
func (s *Streams) Shutdown() {
	s.mu.Lock()
	ls := s.listeners
	ids := make([]dataplane.StreamID, 0, len(s.conns))
	for id := range s.conns {
		ids = append(ids, id)
	}
	s.listeners = map[netip.AddrPort]*listener{}
	s.mu.Unlock()
	for _, l := range ls {
		l.l.Close()
	}
	for _, id := range ids {
		s.Close(id)
	}
}

// AuthFailures reads the kernel's count of segments dropped for a missing
// or wrong TCP-MD5 signature (TcpExtTCPMD5Failure + TCPMD5NotFound +
// TCPMD5Unexpected in /proc/net/netstat). The kernel counts per network
// namespace, not per peer: the number is the same for every peer.
func (s *Streams) AuthFailures(netip.Addr) uint64 { return md5Failures() }

func md5Failures() uint64 {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0
	}
	lines := strings.Split(string(b), "\n")
	var total uint64
	for i := 0; i+1 < len(lines); i += 2 {
		names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(vals) != len(names) {
			continue
		}
		for j, n := range names {
			switch n {
			case "TCPMD5NotFound", "TCPMD5Unexpected", "TCPMD5Failure":
				v, _ := strconv.ParseUint(vals[j], 10, 64)
				total += v
			}
		}
	}
	return total
}

// setMD5 sets (or, with an empty key, removes) the TCP-MD5 key for peer
// on a socket.
func setMD5(fd int, peer netip.Addr, key string) error {
	if len(key) > unix.TCP_MD5SIG_MAXKEYLEN {
		return fmt.Errorf("key of %d bytes; at most %d", len(key), unix.TCP_MD5SIG_MAXKEYLEN)
	}
	sig := unix.TCPMD5Sig{Keylen: uint16(len(key))}
	sig.Addr.Family = unix.AF_INET
	a := peer.As4()
	// struct sockaddr_in after the family: port (2 bytes), then the address.
	copy(sig.Addr.Data[2:6], a[:])
	copy(sig.Key[:], key)
	return unix.SetsockoptTCPMD5Sig(fd, unix.IPPROTO_TCP, unix.TCP_MD5SIG, &sig)
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
