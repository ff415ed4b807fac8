// Package igmp encodes and decodes IGMPv1/v2/v3 messages (RFC 1112, RFC 2236,
// RFC 3376). Bytes in, structs out and back; no I/O, no clock, no logger.
package igmp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"overcast/internal/packet/ip4"
)

// Message types (RFC 3376 section 4 and appendix).
const (
	TypeQuery    = 0x11
	TypeV1Report = 0x12
	TypeV2Report = 0x16
	TypeLeave    = 0x17
	TypeV3Report = 0x22
)

// Well-known destinations.
var (
	AllSystems   = netip.AddrFrom4([4]byte{224, 0, 0, 1})
	AllRouters   = netip.AddrFrom4([4]byte{224, 0, 0, 2})
	V3Routers    = netip.AddrFrom4([4]byte{224, 0, 0, 22})
	unspecified4 = netip.AddrFrom4([4]byte{})
)

// Sentinel errors, wrapped by *Error so callers can count by kind.
var (
	ErrTruncated   = errors.New("truncated")
	ErrChecksum    = errors.New("bad checksum")
	ErrUnknownType = errors.New("unknown type")
	ErrBadGroup    = errors.New("not a multicast group")
)

// Error says what was wrong and at which byte offset.
type Error struct {
	Kind   error
	Offset int
	Detail string
}

func (e *Error) Error() string {
	return fmt.Sprintf("igmp: %v at offset %d: %s", e.Kind, e.Offset, e.Detail)
}
func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, off int, format string, a ...any) error {
	return &Error{Kind: kind, Offset: off, Detail: fmt.Sprintf(format, a...)}
}

// Message is one of *Query, *Report, *Leave, *V3Report.
type Message interface {
	Marshal() []byte
	igmpType() uint8
}

// Parse decodes one IGMP message (the IP payload) and verifies its checksum.
func Parse(b []byte) (Message, error) {
	if len(b) < 8 {
		return nil, errorf(ErrTruncated, 0, "%d bytes, need 8", len(b))
	}
	if ip4.Checksum(b) != 0 {
		return nil, errorf(ErrChecksum, 2, "checksum 0x%04x does not verify", binary.BigEndian.Uint16(b[2:4]))
	}
	switch b[0] {
	case TypeQuery:
		return parseQuery(b)
	case TypeV1Report, TypeV2Report:
		return parseReport(b)
	case TypeLeave:
		return parseLeave(b)
	case TypeV3Report:
		return parseV3Report(b)
	}
	return nil, errorf(ErrUnknownType, 0, "type 0x%02x", b[0])
}

func addrAt(b []byte, off int) netip.Addr { return netip.AddrFrom4([4]byte(b[off : off+4])) }

func putAddr(b []byte, a netip.Addr) {
	if !a.IsValid() {
		a = unspecified4
	}
	v := a.As4()
	copy(b, v[:])
}

func finish(b []byte) []byte {
	binary.BigEndian.PutUint16(b[2:4], 0)
	binary.BigEndian.PutUint16(b[2:4], ip4.Checksum(b))
	return b
}

// DecodeCode turns an RFC 3376 section 4.1.1 "floating point" code into its value:
// codes below 128 are the value itself, others are mant|0x10 << (exp+3).
func DecodeCode(c uint8) int {
	if c < 128 {
		return int(c)
	}
	exp := int(c>>4) & 7
	mant := int(c) & 0x0f
	return (mant | 0x10) << (exp + 3)
}

// EncodeCode is the inverse of DecodeCode, rounding down to the nearest
// representable value; values beyond 31744 saturate.
func EncodeCode(v int) uint8 {
	if v < 128 {
		if v < 0 {
			return 0
		}
		return uint8(v)
	}
	for exp := 0; exp < 8; exp++ {
		mant := v>>(exp+3) - 0x10
		if mant < 16 {
			return 0x80 | uint8(exp)<<4 | uint8(mant)
		}
	}
	return 0xff
}

// deciseconds helpers for Max Resp Code.
func dsToDuration(ds int) time.Duration { return time.Duration(ds) * 100 * time.Millisecond }
func durationToDs(d time.Duration) int  { return int(d / (100 * time.Millisecond)) }
