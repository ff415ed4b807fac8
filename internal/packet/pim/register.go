package pim

import (
	"encoding/binary"
	"net/netip"
)

// Register carries a source's data packet from its first-hop DR to the RP
// by unicast (RFC 7761 section 4.9.3). A null-register has N set and an
// inner IP header with no payload.
type Register struct {
	Border bool   // B
	Null   bool   // N
	Packet []byte // the encapsulated IPv4 packet, header included
}

// Type implements Message.
func (*Register) Type() uint8 { return TypeRegister }

func parseRegister(b []byte) (*Register, error) {
	r := &reader{b: b}
	flags, err := r.u32("register flags")
	if err != nil {
		return nil, err
	}
	reg := &Register{Border: flags&0x80000000 != 0, Null: flags&0x40000000 != 0, Packet: b[4:]}
	if len(reg.Packet) < 20 || reg.Packet[0]>>4 != 4 {
		return nil, errorf(ErrBadValue, 8, "encapsulated packet is not IPv4 (%d bytes)", len(reg.Packet))
	}
	return reg, nil
}

// Marshal encodes the register; the checksum covers the PIM header and the
// flags word only (RFC 7761 section 4.9.3).
func (r *Register) Marshal() []byte {
	b := make([]byte, 8, 8+len(r.Packet))
	var flags uint32
	if r.Border {
		flags |= 0x80000000
	}
	if r.Null {
		flags |= 0x40000000
	}
	binary.BigEndian.PutUint32(b[4:], flags)
	b = append(b, r.Packet...)
	finish(TypeRegister, b, 8)
	return b
}

// InnerSourceGroup returns the source and destination of the encapsulated packet.
func (r *Register) InnerSourceGroup() (src, grp netip.Addr) {
	if len(r.Packet) < 20 {
		return
	}
	return netip.AddrFrom4([4]byte(r.Packet[12:16])), netip.AddrFrom4([4]byte(r.Packet[16:20]))
}

// NullRegisterPacket is the inner packet of a null-register for (S,G): an
// IPv4 header with no payload, checksummed (RFC 7761 section 4.4.1).
func NullRegisterPacket(s, g netip.Addr) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], 20)
	h[8] = 0 // TTL
	h[9] = 103
	copy(h[12:], as4(s))
	copy(h[16:], as4(g))
	binary.BigEndian.PutUint16(h[10:], Checksum(h))
	return h
}

// RegisterStop tells the DR to stop encapsulating (S,G) (RFC 7761 section
// 4.9.4). Source is unspecified (0.0.0.0) to stop all sources of the group.
type RegisterStop struct {
	Group  Group
	Source netip.Addr
}

// Type implements Message.
func (*RegisterStop) Type() uint8 { return TypeRegisterStop }

func parseRegisterStop(b []byte) (*RegisterStop, error) {
	r := &reader{b: b}
	g, err := r.group("register-stop group")
	if err != nil {
		return nil, err
	}
	s, err := r.unicast("register-stop source")
	if err != nil {
		return nil, err
	}
	return &RegisterStop{Group: g, Source: s}, nil
}

// Marshal encodes the register-stop.
func (m *RegisterStop) Marshal() []byte {
	b := make([]byte, HeaderLen, HeaderLen+encGroupLen+encUnicastLen)
	b = appendGroup(b, m.Group)
	b = appendUnicast(b, m.Source)
	return finish(TypeRegisterStop, b, len(b))
}
