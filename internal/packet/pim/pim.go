// Package pim encodes and decodes PIMv2 messages (RFC 7761 section 4.9):
// Hello, Register, Register-Stop, Join/Prune, Assert, Bootstrap and
// Candidate-RP-Advertisement, IPv4 only. Bytes in, structs out; no I/O.
package pim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"overcast/internal/packet/ip4"
)

// Message types (RFC 7761 section 4.9).
const (
	TypeHello        = 0
	TypeRegister     = 1
	TypeRegisterStop = 2
	TypeJoinPrune    = 3
	TypeBootstrap    = 4
	TypeAssert       = 5
	TypeCRPAdv       = 8
)

// HeaderLen is the PIM common header: version/type, reserved, checksum.
const HeaderLen = 4

// AllPIMRouters is 224.0.0.13, where hellos, join/prunes and asserts go.
var AllPIMRouters = netip.MustParseAddr("224.0.0.13")

// Error kinds.
var (
	ErrTruncated   = errors.New("truncated")
	ErrChecksum    = errors.New("bad checksum")
	ErrVersion     = errors.New("not PIM version 2")
	ErrUnknownType = errors.New("unknown message type")
	ErrEncoding    = errors.New("unsupported address encoding")
	ErrBadValue    = errors.New("bad value")
)

// Error says what was wrong with a message and at which byte.
type Error struct {
	Kind   error
	Offset int
	Detail string
}

func (e *Error) Error() string {
	return fmt.Sprintf("pim: %v at byte %d: %s", e.Kind, e.Offset, e.Detail)
}
func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, off int, format string, a ...any) error {
	return &Error{Kind: kind, Offset: off, Detail: fmt.Sprintf(format, a...)}
}

// Message is any decoded PIM message.
type Message interface {
	Type() uint8
	// Marshal encodes the message with its PIM header and checksum.
	Marshal() []byte
}

// Checksum is the Internet checksum (RFC 1071), shared with the IP header.
func Checksum(b []byte) uint16 { return ip4.Checksum(b) }

// Parse decodes a PIM message (the IP payload). The checksum must verify:
// over the whole message, or for a Register over the header and the next 4
// bytes only (RFC 7761 section 4.9.3); a Register checksummed over the
// whole packet, as some old implementations send, is accepted too.
func Parse(b []byte) (Message, error) {
	if len(b) < HeaderLen {
		return nil, errorf(ErrTruncated, 0, "%d bytes, the header needs 4", len(b))
	}
	if b[0]>>4 != 2 {
		return nil, errorf(ErrVersion, 0, "version %d", b[0]>>4)
	}
	t := b[0] & 0x0f
	if t == TypeRegister {
		if len(b) < 8 || (Checksum(b[:8]) != 0 && Checksum(b) != 0) {
			return nil, errorf(ErrChecksum, 2, "register checksum %#04x does not verify", binary.BigEndian.Uint16(b[2:]))
		}
	} else if Checksum(b) != 0 {
		return nil, errorf(ErrChecksum, 2, "checksum %#04x does not verify", binary.BigEndian.Uint16(b[2:]))
	}
	body := b[HeaderLen:]
	switch t {
	case TypeHello:
		return parseHello(body)
	case TypeRegister:
		return parseRegister(body)
	case TypeRegisterStop:
		return parseRegisterStop(body)
	case TypeJoinPrune:
		return parseJoinPrune(body)
	case TypeAssert:
		return parseAssert(body)
	case TypeBootstrap:
		return parseBootstrap(body)
	case TypeCRPAdv:
		return parseCRPAdv(body)
	}
	return nil, errorf(ErrUnknownType, 0, "type %d", t)
}

// finish writes the header into b[0:4] and the checksum over b[:sumLen].
func finish(t uint8, b []byte, sumLen int) []byte {
	b[0] = 2<<4 | t
	b[1] = 0
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint16(b[2:], Checksum(b[:sumLen]))
	return b
}

// Address family and encoding (RFC 7761 section 4.9.1).
const (
	familyIPv4     = 1
	encodingNative = 0
	encUnicastLen  = 6
	encGroupLen    = 8
	encSourceLen   = 8
)

// reader walks a message body, remembering the offset for errors. Offsets
// are reported from the start of the PIM message.
type reader struct {
	b   []byte
	off int
}

func (r *reader) need(n int, what string) error {
	if len(r.b)-r.off < n {
		return errorf(ErrTruncated, r.off+HeaderLen, "%s needs %d bytes, %d left", what, n, len(r.b)-r.off)
	}
	return nil
}

func (r *reader) u8(what string) (uint8, error) {
	if err := r.need(1, what); err != nil {
		return 0, err
	}
	r.off++
	return r.b[r.off-1], nil
}

func (r *reader) u16(what string) (uint16, error) {
	if err := r.need(2, what); err != nil {
		return 0, err
	}
	r.off += 2
	return binary.BigEndian.Uint16(r.b[r.off-2:]), nil
}

func (r *reader) u32(what string) (uint32, error) {
	if err := r.need(4, what); err != nil {
		return 0, err
	}
	r.off += 4
	return binary.BigEndian.Uint32(r.b[r.off-4:]), nil
}

func (r *reader) encHeader(n int, what string) error {
	if err := r.need(n, what); err != nil {
		return err
	}
	if r.b[r.off] != familyIPv4 || r.b[r.off+1] != encodingNative {
		return errorf(ErrEncoding, r.off+HeaderLen, "%s: family %d encoding %d (IPv4 native only)", what, r.b[r.off], r.b[r.off+1])
	}
	return nil
}

// unicast reads an Encoded-Unicast address.
func (r *reader) unicast(what string) (netip.Addr, error) {
	if err := r.encHeader(encUnicastLen, what); err != nil {
		return netip.Addr{}, err
	}
	a := netip.AddrFrom4([4]byte(r.b[r.off+2 : r.off+6]))
	r.off += encUnicastLen
	return a, nil
}

// Group is an Encoded-Group address.
type Group struct {
	Bidir     bool // B
	AdminZone bool // Z
	Prefix    netip.Prefix
}

// GroupPrefix is the usual single-group encoding: G/32, no flags.
func GroupPrefix(g netip.Addr) Group { return Group{Prefix: netip.PrefixFrom(g, 32)} }

func (r *reader) group(what string) (Group, error) {
	if err := r.encHeader(encGroupLen, what); err != nil {
		return Group{}, err
	}
	flags, ml := r.b[r.off+2], int(r.b[r.off+3])
	if ml > 32 {
		return Group{}, errorf(ErrBadValue, r.off+3+HeaderLen, "%s: mask length %d", what, ml)
	}
	a := netip.AddrFrom4([4]byte(r.b[r.off+4 : r.off+8]))
	r.off += encGroupLen
	return Group{Bidir: flags&0x80 != 0, AdminZone: flags&0x01 != 0, Prefix: netip.PrefixFrom(a, ml)}, nil
}

// Source is an Encoded-Source address with its S (sparse), W (wildcard)
// and R (RPT) bits.
type Source struct {
	Addr            netip.Addr
	MaskLen         uint8
	Sparse, WC, RPT bool
}

func (r *reader) source(what string) (Source, error) {
	if err := r.encHeader(encSourceLen, what); err != nil {
		return Source{}, err
	}
	flags, ml := r.b[r.off+2], r.b[r.off+3]
	if ml > 32 {
		return Source{}, errorf(ErrBadValue, r.off+3+HeaderLen, "%s: mask length %d", what, ml)
	}
	s := Source{Addr: netip.AddrFrom4([4]byte(r.b[r.off+4 : r.off+8])), MaskLen: ml,
		Sparse: flags&0x04 != 0, WC: flags&0x02 != 0, RPT: flags&0x01 != 0}
	r.off += encSourceLen
	return s, nil
}

func appendUnicast(b []byte, a netip.Addr) []byte {
	b = append(b, familyIPv4, encodingNative)
	return append(b, as4(a)...)
}

func appendGroup(b []byte, g Group) []byte {
	var flags byte
	if g.Bidir {
		flags |= 0x80
	}
	if g.AdminZone {
		flags |= 0x01
	}
	b = append(b, familyIPv4, encodingNative, flags, byte(g.Prefix.Bits()))
	return append(b, as4(g.Prefix.Addr())...)
}

func appendSource(b []byte, s Source) []byte {
	var flags byte
	if s.Sparse {
		flags |= 0x04
	}
	if s.WC {
		flags |= 0x02
	}
	if s.RPT {
		flags |= 0x01
	}
	b = append(b, familyIPv4, encodingNative, flags, s.MaskLen)
	return append(b, as4(s.Addr)...)
}

// as4 is the address's 4 bytes, zeros for an invalid or non-IPv4 address.
func as4(a netip.Addr) []byte {
	if !a.Is4() {
		return []byte{0, 0, 0, 0}
	}
	v := a.As4()
	return v[:]
}
