package igmp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// RecordType is an IGMPv3 group record type (RFC 3376 section 4.2.12).
type RecordType uint8

const (
	ModeIsInclude   RecordType = 1 // IS_IN
	ModeIsExclude   RecordType = 2 // IS_EX
	ChangeToInclude RecordType = 3 // TO_IN
	ChangeToExclude RecordType = 4 // TO_EX
	AllowNewSources RecordType = 5 // ALLOW
	BlockOldSources RecordType = 6 // BLOCK
)

func (t RecordType) String() string {
	switch t {
	case ModeIsInclude:
		return "IS_IN"
	case ModeIsExclude:
		return "IS_EX"
	case ChangeToInclude:
		return "TO_IN"
	case ChangeToExclude:
		return "TO_EX"
	case AllowNewSources:
		return "ALLOW"
	case BlockOldSources:
		return "BLOCK"
	}
	return fmt.Sprintf("type%d", uint8(t))
}

// GroupRecord is one record of a v3 report.
type GroupRecord struct {
	Type    RecordType
	Group   netip.Addr
	Sources []netip.Addr
	Aux     []byte // auxiliary data, a multiple of 4 bytes
}

// V3Report is an IGMPv3 Membership Report (type 0x22), sent to 224.0.0.22.
type V3Report struct {
	Records []GroupRecord
}

func (*V3Report) igmpType() uint8 { return TypeV3Report }

func parseV3Report(b []byte) (*V3Report, error) {
	n := int(binary.BigEndian.Uint16(b[6:8]))
	// Each record needs at least 8 bytes: reject absurd counts before allocating.
	if n > (len(b)-8)/8 {
		return nil, errorf(ErrTruncated, 6, "%d records cannot fit in %d bytes", n, len(b))
	}
	r := &V3Report{Records: make([]GroupRecord, 0, n)}
	off := 8
	for i := range n {
		if len(b) < off+8 {
			return nil, errorf(ErrTruncated, off, "record %d header", i)
		}
		rec := GroupRecord{Type: RecordType(b[off]), Group: addrAt(b, off+4)}
		aux := int(b[off+1]) * 4
		ns := int(binary.BigEndian.Uint16(b[off+2 : off+4]))
		need := off + 8 + 4*ns + aux
		if len(b) < need {
			return nil, errorf(ErrTruncated, off+2, "record %d: %d sources and %d aux bytes need %d bytes, have %d", i, ns, aux, need, len(b))
		}
		if rec.Type < ModeIsInclude || rec.Type > BlockOldSources {
			return nil, errorf(ErrUnknownType, off, "record %d: type %d", i, rec.Type)
		}
		if !rec.Group.IsMulticast() {
			return nil, errorf(ErrBadGroup, off+4, "record %d: group %s", i, rec.Group)
		}
		if ns > 0 {
			rec.Sources = make([]netip.Addr, ns)
			for j := range ns {
				rec.Sources[j] = addrAt(b, off+8+4*j)
			}
		}
		if aux > 0 {
			rec.Aux = append([]byte(nil), b[off+8+4*ns:need]...)
		}
		r.Records = append(r.Records, rec)
		off = need
	}
	return r, nil
}

// Marshal encodes the report. Callers keep it within the MTU (see Split).
func (r *V3Report) Marshal() []byte {
	size := 8
	for _, rec := range r.Records {
		size += 8 + 4*len(rec.Sources) + (len(rec.Aux)+3)/4*4
	}
	b := make([]byte, size)
	b[0] = TypeV3Report
	binary.BigEndian.PutUint16(b[6:8], uint16(len(r.Records)))
	off := 8
	for _, rec := range r.Records {
		auxWords := (len(rec.Aux) + 3) / 4
		b[off] = uint8(rec.Type)
		b[off+1] = uint8(auxWords)
		binary.BigEndian.PutUint16(b[off+2:off+4], uint16(len(rec.Sources)))
		putAddr(b[off+4:], rec.Group)
		off += 8
		for _, s := range rec.Sources {
			putAddr(b[off:], s)
			off += 4
		}
		copy(b[off:], rec.Aux)
		off += auxWords * 4
	}
	return finish(b)
}
