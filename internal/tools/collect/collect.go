// Package collect is a mirroring collector: it receives the VXLAN copies
// tap services send (UDP, default port 4789), writes each session (VNI)
// to its own pcapng file, and can re-inject the inner frames onto a local
// interface so an IDS or tcpdump there reads them live.
package collect

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// Config says where to listen and what to do with the copies.
type Config struct {
	Listen   string   // host:port, default :4789
	PCAPDir  string   // write DIR/vni-N-TIME.pcapng per session ("" none)
	Inject   string   // re-inject inner frames out of this interface ("" none)
	VNIs     []uint32 // only these sessions (none: all)
	Duration time.Duration
	Count    uint64 // stop after this many copies (0: no limit)
}

// Session is what one VNI brought.
type Session struct {
	VNI       uint32 `json:"vni"`
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"` // inner frames
	File      string `json:"file,omitempty"`
	Injected  uint64 `json:"injected"`
	InjectErr uint64 `json:"inject_errors"`
}

// Stats is the collector's account.
type Stats struct {
	Listen    string    `json:"listen"`
	Sessions  []Session `json:"sessions"`
	Malformed uint64    `json:"malformed"` // not VXLAN (no I flag, short)
	Filtered  uint64    `json:"filtered"`  // a VNI not asked for
}

type session struct {
	Session
	f *os.File
	w *pcapgo.NgWriter
}

// ParseVXLAN reads a VXLAN datagram (RFC 7348): the I flag set, a VNI,
// and an inner Ethernet frame of at least a header.
func ParseVXLAN(b []byte) (vni uint32, inner []byte, ok bool) {
	if len(b) < 8+14 || b[0]&0x08 == 0 {
		return 0, nil, false
	}
	return binary.BigEndian.Uint32(b[4:8]) >> 8, b[8:], true
}

// Run collects until ctx ends, Duration passes or Count copies came.
// ready, when not nil, is called once the socket is bound.
func Run(ctx context.Context, cfg Config, ready func(addr string)) (Stats, error) {
	if cfg.Listen == "" {
		cfg.Listen = ":4789"
	}
	conn, err := net.ListenPacket("udp4", cfg.Listen)
	if err != nil {
		if errors.Is(err, unix.EADDRINUSE) {
			return Stats{}, fmt.Errorf("listen %s: the port is in use (a VXLAN device on this host binds it too: ip -d link show type vxlan; give the service and the collector another port)", cfg.Listen)
		}
		return Stats{}, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	defer conn.Close()
	st := Stats{Listen: conn.LocalAddr().String()}
	if cfg.PCAPDir != "" {
		if err := os.MkdirAll(cfg.PCAPDir, 0o755); err != nil {
			return st, fmt.Errorf("pcap directory: %w", err)
		}
	}
	inject := -1
	var ll unix.SockaddrLinklayer
	if cfg.Inject != "" {
		ifc, err := net.InterfaceByName(cfg.Inject)
		if err != nil {
			return st, fmt.Errorf("inject: no interface %q (ip link shows them)", cfg.Inject)
		}
		if inject, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0); err != nil {
			return st, fmt.Errorf("inject on %s: %w (needs root or CAP_NET_RAW)", cfg.Inject, err)
		}
		defer unix.Close(inject)
		ll = unix.SockaddrLinklayer{Ifindex: ifc.Index, Halen: 6}
	}
	want := map[uint32]bool{}
	for _, v := range cfg.VNIs {
		want[v] = true
	}
	sessions := map[uint32]*session{}
	defer func() {
		for _, s := range sessions {
			if s.w != nil {
				s.w.Flush()
				s.f.Close()
			}
		}
	}()
	if ready != nil {
		ready(st.Listen)
	}
	var mu sync.Mutex
	stop := make(chan struct{})
	go func() {
		var t <-chan time.Time
		if cfg.Duration > 0 {
			t = time.After(cfg.Duration)
		}
		select {
		case <-ctx.Done():
		case <-t:
		case <-stop:
		}
		conn.SetReadDeadline(time.Now())
	}()
	defer close(stop)
	buf := make([]byte, 65536)
	var total uint64
	for cfg.Count == 0 || total < cfg.Count {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			break
		}
		vni, inner, ok := ParseVXLAN(buf[:n])
		if !ok {
			st.Malformed++
			continue
		}
		if len(want) > 0 && !want[vni] {
			st.Filtered++
			continue
		}
		mu.Lock()
		s := sessions[vni]
		if s == nil {
			s = &session{Session: Session{VNI: vni}}
			if cfg.PCAPDir != "" {
				s.File = filepath.Join(cfg.PCAPDir, fmt.Sprintf("vni-%d-%s.pcapng", vni, time.Now().UTC().Format("20060102T150405.000")))
				if s.f, err = os.Create(s.File); err != nil {
					mu.Unlock()
					return st, fmt.Errorf("pcap file: %w", err)
				}
				if s.w, err = pcapgo.NewNgWriter(s.f, layers.LinkTypeEthernet); err != nil {
					mu.Unlock()
					return st, fmt.Errorf("pcap file: %w", err)
				}
			}
			sessions[vni] = s
		}
		s.Packets++
		s.Bytes += uint64(len(inner))
		total++
		if s.w != nil {
			ci := gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(inner), Length: len(inner), InterfaceIndex: 0}
			if err := s.w.WritePacket(ci, inner); err == nil {
				s.w.Flush() // a killed collector still leaves whole files
			}
		}
		if inject >= 0 {
			if err := unix.Sendto(inject, inner, 0, &ll); err != nil {
				s.InjectErr++
			} else {
				s.Injected++
			}
		}
		mu.Unlock()
	}
	keys := make([]uint32, 0, len(sessions))
	for k := range sessions {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, k := range keys {
		st.Sessions = append(st.Sessions, sessions[k].Session)
	}
	if st.Sessions == nil {
		st.Sessions = []Session{}
	}
	return st, nil
}
