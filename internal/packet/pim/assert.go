package pim

import (
	"encoding/binary"
	"net/netip"
)

// Assert decides which router forwards (S,G) or (*,G) onto a LAN (RFC 7761
// section 4.9.6). For (*,G) asserts RPT is set and Source is 0.0.0.0 (or
// the RP's address, as some implementations send).
type Assert struct {
	Group      Group
	Source     netip.Addr
	RPT        bool   // R bit
	Preference uint32 // metric preference, 31 bits
	Metric     uint32
}

// Type implements Message.
func (*Assert) Type() uint8 { return TypeAssert }

func parseAssert(b []byte) (*Assert, error) {
	r := &reader{b: b}
	g, err := r.group("assert group")
	if err != nil {
		return nil, err
	}
	s, err := r.unicast("assert source")
	if err != nil {
		return nil, err
	}
	pref, err := r.u32("metric preference")
	if err != nil {
		return nil, err
	}
	metric, err := r.u32("metric")
	if err != nil {
		return nil, err
	}
	return &Assert{Group: g, Source: s, RPT: pref&0x80000000 != 0, Preference: pref & 0x7fffffff, Metric: metric}, nil
}

// Marshal encodes the assert.
func (a *Assert) Marshal() []byte {
	b := make([]byte, HeaderLen, HeaderLen+encGroupLen+encUnicastLen+8)
	b = appendGroup(b, a.Group)
	b = appendUnicast(b, a.Source)
	pref := a.Preference & 0x7fffffff
	if a.RPT {
		pref |= 0x80000000
	}
	b = binary.BigEndian.AppendUint32(b, pref)
	b = binary.BigEndian.AppendUint32(b, a.Metric)
	return finish(TypeAssert, b, len(b))
}

// AssertInfinity is the preference and metric of an AssertCancel (RFC 7761
// section 4.6.1).
const AssertInfinity = 0x7fffffff

// Bootstrap is a BSR message (RFC 5059 section 4.1), decoded so a router
// can see BSR traffic and pass it on; Overcast uses static RPs.
type Bootstrap struct {
	FragmentTag uint16
	HashMaskLen uint8
	Priority    uint8
	BSR         netip.Addr
	Groups      []BSRGroup
}

// BSRGroup is one group range with its candidate RPs.
type BSRGroup struct {
	Group       Group
	RPCount     uint8 // RPs for this range in the whole bootstrap
	FragRPCount uint8 // RPs in this fragment
	RPs         []BSRRP
}

// BSRRP is a candidate RP in a bootstrap message.
type BSRRP struct {
	Addr     netip.Addr
	Holdtime uint16
	Priority uint8
}

// Type implements Message.
func (*Bootstrap) Type() uint8 { return TypeBootstrap }

func parseBootstrap(b []byte) (*Bootstrap, error) {
	r := &reader{b: b}
	tag, err := r.u16("fragment tag")
	if err != nil {
		return nil, err
	}
	hml, err := r.u8("hash mask length")
	if err != nil {
		return nil, err
	}
	prio, err := r.u8("BSR priority")
	if err != nil {
		return nil, err
	}
	bsr, err := r.unicast("BSR address")
	if err != nil {
		return nil, err
	}
	m := &Bootstrap{FragmentTag: tag, HashMaskLen: hml, Priority: prio, BSR: bsr}
	for r.off < len(b) {
		g, err := r.group("group")
		if err != nil {
			return nil, err
		}
		rc, err := r.u8("RP count")
		if err != nil {
			return nil, err
		}
		frc, err := r.u8("fragment RP count")
		if err != nil {
			return nil, err
		}
		if _, err := r.u16("reserved"); err != nil {
			return nil, err
		}
		bg := BSRGroup{Group: g, RPCount: rc, FragRPCount: frc}
		for range int(frc) {
			a, err := r.unicast("RP address")
			if err != nil {
				return nil, err
			}
			hold, err := r.u16("RP holdtime")
			if err != nil {
				return nil, err
			}
			p, err := r.u8("RP priority")
			if err != nil {
				return nil, err
			}
			if _, err := r.u8("reserved"); err != nil {
				return nil, err
			}
			bg.RPs = append(bg.RPs, BSRRP{Addr: a, Holdtime: hold, Priority: p})
		}
		m.Groups = append(m.Groups, bg)
	}
	return m, nil
}

// Marshal encodes the bootstrap message.
func (m *Bootstrap) Marshal() []byte {
	b := make([]byte, HeaderLen, 64)
	b = binary.BigEndian.AppendUint16(b, m.FragmentTag)
	b = append(b, m.HashMaskLen, m.Priority)
	b = appendUnicast(b, m.BSR)
	for _, g := range m.Groups {
		b = appendGroup(b, g.Group)
		b = append(b, g.RPCount, byte(len(g.RPs)), 0, 0)
		for _, rp := range g.RPs {
			b = appendUnicast(b, rp.Addr)
			b = binary.BigEndian.AppendUint16(b, rp.Holdtime)
			b = append(b, rp.Priority, 0)
		}
	}
	return finish(TypeBootstrap, b, len(b))
}

// CRPAdv is a Candidate-RP-Advertisement (RFC 5059 section 4.2), unicast
// to the BSR.
type CRPAdv struct {
	Priority uint8
	Holdtime uint16
	RP       netip.Addr
	Groups   []Group
}

// Type implements Message.
func (*CRPAdv) Type() uint8 { return TypeCRPAdv }

func parseCRPAdv(b []byte) (*CRPAdv, error) {
	r := &reader{b: b}
	n, err := r.u8("prefix count")
	if err != nil {
		return nil, err
	}
	p, err := r.u8("priority")
	if err != nil {
		return nil, err
	}
	hold, err := r.u16("holdtime")
	if err != nil {
		return nil, err
	}
	rp, err := r.unicast("RP address")
	if err != nil {
		return nil, err
	}
	m := &CRPAdv{Priority: p, Holdtime: hold, RP: rp}
	if err := r.need(int(n)*encGroupLen, "group prefixes"); err != nil {
		return nil, err
	}
	for range int(n) {
		g, err := r.group("group prefix")
		if err != nil {
			return nil, err
		}
		m.Groups = append(m.Groups, g)
	}
	return m, nil
}

// Marshal encodes the advertisement.
func (m *CRPAdv) Marshal() []byte {
	b := make([]byte, HeaderLen, 64)
	b = append(b, byte(len(m.Groups)), m.Priority)
	b = binary.BigEndian.AppendUint16(b, m.Holdtime)
	b = appendUnicast(b, m.RP)
	for _, g := range m.Groups {
		b = appendGroup(b, g)
	}
	return finish(TypeCRPAdv, b, len(b))
}
