// Package ip4 parses and builds the IPv4 header around control-plane packets
// (IGMP, later PIM): options included, so Router Alert can be seen and set.
// No I/O, no clock.
package ip4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Protocol numbers used by Overcast.
const (
	ProtoIGMP = 2
	ProtoUDP  = 17
	ProtoPIM  = 103
)

// OptRouterAlert is the IPv4 Router Alert option (RFC 2113): type 148, length 4, value 0.
var OptRouterAlert = []byte{0x94, 0x04, 0x00, 0x00}

// Header is the part of an IPv4 header the control plane cares about.
type Header struct {
	TOS         uint8
	TotalLen    int // from the wire; Marshal computes it
	ID          uint16
	TTL         uint8
	Protocol    uint8
	Src, Dst    netip.Addr
	Options     []byte
	RouterAlert bool // set by Parse when the options carry Router Alert
}

// ErrTruncated is returned when the buffer is shorter than the header claims.
var ErrTruncated = errors.New("ip4: truncated")

// Parse reads an IPv4 header and returns it with the payload it frames.
// The payload is bounded by the header's total length when that is sane.
func Parse(b []byte) (Header, []byte, error) {
	var h Header
	if len(b) < 20 {
		return h, nil, fmt.Errorf("%w: %d bytes, need 20", ErrTruncated, len(b))
	}
	if v := b[0] >> 4; v != 4 {
		return h, nil, fmt.Errorf("ip4: version %d", v)
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 {
		return h, nil, fmt.Errorf("ip4: header length %d < 20", ihl)
	}
	if len(b) < ihl {
		return h, nil, fmt.Errorf("%w: header length %d, have %d", ErrTruncated, ihl, len(b))
	}
	h.TOS = b[1]
	h.TotalLen = int(binary.BigEndian.Uint16(b[2:4]))
	h.ID = binary.BigEndian.Uint16(b[4:6])
	h.TTL = b[8]
	h.Protocol = b[9]
	h.Src = netip.AddrFrom4([4]byte(b[12:16]))
	h.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	h.Options = b[20:ihl]
	h.RouterAlert = hasRouterAlert(h.Options)
	end := len(b)
	// Linux raw sockets hand over the total length as sent; trust it only if it fits.
	if h.TotalLen >= ihl && h.TotalLen <= len(b) {
		end = h.TotalLen
	}
	return h, b[ihl:end], nil
}

func hasRouterAlert(opts []byte) bool {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0: // end of options
			return false
		case 1: // no-op
			i++
			continue
		}
		if i+1 >= len(opts) {
			return false
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return false
		}
		if opts[i] == 0x94 {
			return true
		}
		i += l
	}
	return false
}

// Marshal builds a header followed by payload, with options padded to 32 bits
// and the header checksum filled in.
func (h Header) Marshal(payload []byte) []byte {
	opts := h.Options
	if pad := len(opts) % 4; pad != 0 {
		opts = append(append([]byte{}, opts...), make([]byte, 4-pad)...)
	}
	ihl := 20 + len(opts)
	b := make([]byte, ihl+len(payload))
	b[0] = 0x40 | byte(ihl/4)
	b[1] = h.TOS
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:6], h.ID)
	binary.BigEndian.PutUint16(b[6:8], 0x4000) // DF, as the Linux host stack sends IGMP
	b[8] = h.TTL
	b[9] = h.Protocol
	s, d := h.Src.As4(), h.Dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	copy(b[20:], opts)
	binary.BigEndian.PutUint16(b[10:12], Checksum(b[:ihl]))
	copy(b[ihl:], payload)
	return b
}

// Checksum is the Internet checksum (RFC 1071) of b.
func Checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// FixPartialUDPChecksum completes the UDP checksum of an IPv4 packet whose
// checksum field still holds only the pseudo-header sum, as packets do
// when the sender's stack left the checksum to offload (CHECKSUM_PARTIAL
// over veth) and the kernel hands them to user space unfinished. Packets
// with any other checksum are left alone. It reports whether it changed pkt.
func FixPartialUDPChecksum(pkt []byte) bool {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != ProtoUDP {
		return false
	}
	ihl := int(pkt[0]&0x0f) * 4
	if len(pkt) < ihl+8 || binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 { // fragments: leave them
		return false
	}
	udp := pkt[ihl:]
	ulen := int(binary.BigEndian.Uint16(udp[4:6]))
	if ulen < 8 || ulen > len(udp) {
		return false
	}
	udp = udp[:ulen]
	var pseudo uint32
	for i := 12; i < 20; i += 2 {
		pseudo += uint32(binary.BigEndian.Uint16(pkt[i:]))
	}
	pseudo += ProtoUDP + uint32(ulen)
	fold := func(s uint32) uint16 {
		for s > 0xffff {
			s = s>>16 + s&0xffff
		}
		return uint16(s)
	}
	if binary.BigEndian.Uint16(udp[6:8]) != fold(pseudo) {
		return false
	}
	udp[6], udp[7] = 0, 0
	sum := pseudo
	for i := 0; i+1 < len(udp); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(udp[i:]))
	}
	if len(udp)%2 == 1 {
		sum += uint32(udp[len(udp)-1]) << 8
	}
	c := ^fold(sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:8], c)
	return true
}
